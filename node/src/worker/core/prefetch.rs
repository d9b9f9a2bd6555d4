//! Lease-ahead: how many tasks a pool holds beyond its slots ([`Prefetch`]), sized by the
//! bandwidth-delay product of its own measurements ([`Pacer`]).
//!
//! A task that finishes frees a slot; the `Lease` of that capacity comes back one commit round
//! trip `R` later. A pool of `s` slots whose tasks run for `T` finishes `s·R/T` tasks in that
//! round: holding that many ahead keeps every slot busy across the round (the bandwidth-delay
//! product: throughput `s/T` times delay `R`). So, with `auto`:
//!
//! - `allowance = ⌈s·R/T⌉`, at most `max_batch` (what one `Complete` can record);
//! - `0` while `T > R` (long tasks: a task held behind a long one would wait for it while another
//!   pool could run it at once, Celery's prefetch trap), and before both are measured.
//!
//! `R` is the smoothed round trip of the pool's own `Lease` and `Complete` entries (propose to
//! reply), `T` the smoothed time from a run's start to its end as the core sees them. Both are
//! weighted moving averages, a new sample weighing 1/8 (TCP's smoothed round trip). A run that
//! is still going counts too, once it holds up the buffer: [`Pacer::running_at_least`] raises
//! `T` to its age (see `core/buffer.rs`).
//!
//! **A remote worker** (`worker/remote.rs`) adds its stream: the core's `T` of a run is the
//! grant sent to the result received, so it holds the stream's round trip `D` (both ways
//! through gRPC and the worker's own loop) besides the task; and a slot the worker frees waits
//! `D` on top of `R` for the next task when none is held. So for a remote pool the delay to
//! cover is `R + D`, and a task is long when `T > R + D` (its own run, `T − D`, is longer than
//! a commit round trip: the same cut as a local pool's). `D` is measured apart from any task,
//! by the session's pings ([`Pacer::stream_round_trip`]); a local pool has none (`D` = 0).
//! Without it, a Python worker (~1 ms of stream against ~0.5 ms of commit) never got any
//! lease-ahead (issue 11; docs/BENCHMARKS.md).
//!
//! **A remote worker that queues** (`Hello.queue_ahead`; `core/queued.rs`) is handed its
//! lease-ahead, and starts a queued task as soon as any of its `s` slots frees: a queued task
//! waits for the next run to end, `T/s` on average, not for a whole run. So for it a task is
//! long when `T > s·(R + D)`, i.e. when runs end less often than once per delay covered. This
//! matters for a thread pool sharing one interpreter (Python's GIL): 8 threads of 0.2 ms tasks
//! take ~1.6 ms each from start to result, longer than `R + D`, though a slot frees every
//! 0.2 ms. The trap stays closed: tasks held behind long runs are taken back by the stall rule
//! (`core/buffer.rs`), whose oldest run's age then counts as `T`.
//!
//! `N` holds exactly `N` ahead whatever the measurements; `0` holds none (the pool leases only
//! for free slots).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use serde::Serialize;

/// How many tasks a pool leases ahead of its free slots (`--prefetch auto|N|0`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Prefetch {
    /// Enough to keep the slots busy across one commit round (the module doc's rule).
    #[default]
    Auto,
    /// Exactly this many (0: none, lease for free slots only).
    Fixed(u32),
}

/// Not `auto` nor a count.
#[derive(Debug, thiserror::Error)]
#[error("prefetch must be 'auto' or a number of tasks, not '{0}'")]
pub struct PrefetchError(String);

impl FromStr for Prefetch {
    type Err = PrefetchError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "auto" => Ok(Prefetch::Auto),
            n => n
                .parse()
                .map(Prefetch::Fixed)
                .map_err(|_| PrefetchError(s.into())),
        }
    }
}

impl TryFrom<String> for Prefetch {
    type Error = PrefetchError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Prefetch> for String {
    fn from(p: Prefetch) -> String {
        p.to_string()
    }
}

impl fmt::Display for Prefetch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Prefetch::Auto => f.write_str("auto"),
            Prefetch::Fixed(n) => write!(f, "{n}"),
        }
    }
}

/// A weighted moving average of durations (a new sample weighs 1/8), in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Smoothed(Option<f64>);

impl Smoothed {
    fn add(&mut self, sample: Duration) {
        let x = sample.as_nanos() as f64;
        self.0 = Some(self.0.map_or(x, |avg| avg + (x - avg) / 8.0));
    }

    fn at_least(&mut self, floor: Duration) {
        let x = floor.as_nanos() as f64;
        self.0 = Some(self.0.map_or(x, |avg| avg.max(x)));
    }

    fn get(&self) -> Option<Duration> {
        self.0.map(|ns| Duration::from_nanos(ns as u64))
    }
}

/// The measurements and the rule that sizes a pool's lease-ahead.
#[derive(Clone, Debug)]
pub(super) struct Pacer {
    prefetch: Prefetch,
    slots: usize,
    /// Most tasks held ahead (`auto` only).
    cap: usize,
    round_trip: Smoothed,
    run: Smoothed,
    /// A remote worker's stream round trip (none for a local pool).
    stream: Smoothed,
    /// The runner queues what it is handed (the module doc): long runs are cut at `s·(R + D)`.
    queuing: bool,
}

impl Pacer {
    pub(super) fn new(prefetch: Prefetch, slots: usize, cap: usize) -> Self {
        Self {
            prefetch,
            slots,
            cap,
            round_trip: Smoothed::default(),
            run: Smoothed::default(),
            stream: Smoothed::default(),
            queuing: false,
        }
    }

    /// The runner queues what it is handed (the module doc).
    pub(super) fn queuing_runner(mut self, queuing: bool) -> Self {
        self.queuing = queuing;
        self
    }

    /// Runs longer than this on average (ns) are long: the delay covered, or for a runner that
    /// queues, its slots times that delay (the module doc).
    fn long_after(&self, delay: f64) -> f64 {
        if self.queuing {
            delay * self.slots as f64
        } else {
            delay
        }
    }

    /// Tasks to hold beyond the slots now.
    pub(super) fn allowance(&self) -> usize {
        match self.prefetch {
            Prefetch::Fixed(n) => n as usize,
            Prefetch::Auto => match (self.delay(), self.run.0) {
                (Some(r), Some(t)) if t <= self.long_after(r) => {
                    let ahead = if t <= 0.0 {
                        self.cap as f64
                    } else {
                        (self.slots as f64 * r / t).ceil()
                    };
                    (ahead as usize).min(self.cap)
                }
                _ => 0,
            },
        }
    }

    /// The delay lease-ahead covers, in ns: the commit round trip, plus the stream's for a
    /// remote worker (the module doc).
    fn delay(&self) -> Option<f64> {
        self.round_trip.0.map(|r| r + self.stream.0.unwrap_or(0.0))
    }

    /// The most [`Pacer::allowance`] can be.
    pub(super) fn max_allowance(&self) -> usize {
        match self.prefetch {
            Prefetch::Fixed(n) => n as usize,
            Prefetch::Auto => self.cap,
        }
    }

    /// Whether the allowance follows the measurements (and may fall to 0 when a run blocks).
    pub(super) fn is_auto(&self) -> bool {
        self.prefetch == Prefetch::Auto
    }

    /// A `Lease` or `Complete` entry came back this long after it was proposed.
    pub(super) fn round_trip(&mut self, took: Duration) {
        self.round_trip.add(took);
    }

    /// A remote worker answered a ping this long after it was sent.
    pub(super) fn stream_round_trip(&mut self, took: Duration) {
        self.stream.add(took);
    }

    /// The smoothed delay lease-ahead covers (commit and stream round trips), once measured.
    pub(super) fn cover(&self) -> Option<Duration> {
        self.delay().map(|ns| Duration::from_nanos(ns as u64))
    }

    /// A run ended this long after it started.
    pub(super) fn ran(&mut self, took: Duration) {
        self.run.add(took);
    }

    /// A run has been going this long and holds up the buffered tasks: tasks take at least
    /// this long for now.
    pub(super) fn running_at_least(&mut self, age: Duration) {
        self.run.at_least(age);
    }

    /// The smoothed commit round trip, once measured.
    pub(super) fn rtt(&self) -> Option<Duration> {
        self.round_trip.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn pacer(slots: usize, rtt: Duration, run: Duration) -> Pacer {
        let mut p = Pacer::new(Prefetch::Auto, slots, 1024);
        p.round_trip(rtt);
        p.ran(run);
        p
    }

    #[test]
    fn prefetch_parses_auto_or_a_count() {
        assert_eq!("auto".parse::<Prefetch>().unwrap(), Prefetch::Auto);
        assert_eq!("0".parse::<Prefetch>().unwrap(), Prefetch::Fixed(0));
        assert_eq!("16".parse::<Prefetch>().unwrap(), Prefetch::Fixed(16));
        assert!("-1".parse::<Prefetch>().is_err());
        assert!(
            "lots"
                .parse::<Prefetch>()
                .unwrap_err()
                .to_string()
                .contains("lots")
        );
        for p in [Prefetch::Auto, Prefetch::Fixed(0), Prefetch::Fixed(7)] {
            assert_eq!(p.to_string().parse::<Prefetch>().unwrap(), p);
        }
    }

    #[test]
    fn auto_holds_the_bandwidth_delay_product() {
        // 2 slots, 4 ms round trip, 1 ms tasks: 8 finish in one round.
        assert_eq!(pacer(2, ms(4), ms(1)).allowance(), 8);
        assert_eq!(pacer(3, ms(2), ms(4)).allowance(), 0, "tasks longer than a round");
        assert_eq!(pacer(3, ms(4), ms(4)).allowance(), 3, "a task per slot per round");
        assert_eq!(pacer(3, ms(5), ms(4)).allowance(), 4, "3.75 rounded up");
        // Capped.
        assert_eq!(pacer(2, ms(4), Duration::from_micros(1)).allowance(), 1024);
        assert_eq!(pacer(2, ms(4), Duration::ZERO).allowance(), 1024);
    }

    #[test]
    fn auto_holds_nothing_before_it_has_measured() {
        let mut p = Pacer::new(Prefetch::Auto, 4, 1024);
        assert_eq!(p.allowance(), 0);
        p.round_trip(ms(4));
        assert_eq!(p.allowance(), 0, "no run time yet");
        p.ran(ms(1));
        assert_eq!(p.allowance(), 16);
    }

    #[test]
    fn a_remote_pool_covers_the_stream_round_trip_too() {
        // A Python worker: 8 threads, 0.5 ms commit, 1 ms stream, 1.2 ms from grant to result
        // (0.2 ms of its own): no lease-ahead by the commit alone.
        let us = Duration::from_micros;
        let mut p = pacer(8, us(500), us(1_200));
        assert_eq!(p.allowance(), 0, "longer than a commit round trip");
        p.stream_round_trip(us(1_000));
        assert_eq!(p.allowance(), 10, "8 slots · 1.5 ms / 1.2 ms, rounded up");
        assert_eq!(p.cover(), Some(us(1_500)));
        // Long tasks still get none: 2 s of its own beyond the stream.
        let mut long = pacer(8, us(500), ms(2_001));
        long.stream_round_trip(us(1_000));
        assert_eq!(long.allowance(), 0);
        // Without a stream (a local pool), the cover is the commit round trip.
        assert_eq!(pacer(2, ms(4), ms(1)).cover(), Some(ms(4)));
    }

    #[test]
    fn a_runner_that_queues_counts_a_run_long_by_its_slots() {
        // 8 threads sharing one interpreter: 1.6 ms from start to result, a slot free every
        // 0.2 ms; 0.5 ms commit + 1 ms stream to cover.
        let us = Duration::from_micros;
        let mut local = pacer(8, us(500), us(1_600));
        local.stream_round_trip(us(1_000));
        assert_eq!(local.allowance(), 0, "a run is longer than the delay");
        let mut queuing = Pacer::new(Prefetch::Auto, 8, 1024).queuing_runner(true);
        queuing.round_trip(us(500));
        queuing.stream_round_trip(us(1_000));
        queuing.ran(us(1_600));
        assert_eq!(queuing.allowance(), 8, "8 slots · 1.5 ms / 1.6 ms, rounded up");
        // Long tasks still get none: a run beyond 8 · 1.5 ms.
        queuing.running_at_least(us(12_001));
        assert_eq!(queuing.allowance(), 0);
    }

    #[test]
    fn a_fixed_prefetch_ignores_the_measurements() {
        for n in [0, 5] {
            let mut p = Pacer::new(Prefetch::Fixed(n), 2, 1024);
            assert_eq!(p.allowance(), n as usize);
            p.round_trip(ms(4));
            p.ran(ms(100));
            assert_eq!(p.allowance(), n as usize);
            assert_eq!(p.max_allowance(), n as usize);
        }
    }

    #[test]
    fn a_long_run_turns_prefetch_off_until_short_runs_bring_the_average_down() {
        let mut p = pacer(2, ms(4), ms(1));
        assert_eq!(p.allowance(), 8);
        p.running_at_least(ms(1_000));
        assert_eq!(p.allowance(), 0);
        let mut finished = 0;
        while p.allowance() == 0 {
            p.ran(ms(1));
            finished += 1;
        }
        // (7/8)^n · 1 s falls under 4 ms after about 42 short runs.
        assert!((35..50).contains(&finished), "{finished}");
    }

    #[test]
    fn the_averages_weigh_a_new_sample_an_eighth() {
        let mut s = Smoothed::default();
        s.add(ms(8));
        s.add(ms(16));
        assert_eq!(s.get(), Some(ms(9)));
        s.at_least(ms(5));
        assert_eq!(s.get(), Some(ms(9)));
        s.at_least(ms(20));
        assert_eq!(s.get(), Some(ms(20)));
    }
}
