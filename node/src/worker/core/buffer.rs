//! The buffer: grants held for a slot (lease-ahead, sized in `core/prefetch.rs`), when they
//! start, and when they go back to the queue instead.
//!
//! A buffered grant is leased like a running one: heartbeated, fenced, counted against the
//! pool's capacity. It starts when a slot frees, oldest first, and goes back (a `Release`,
//! which spends no attempt) rather than run late or hold up a task another pool could run:
//!
//! - **Lease running short.** A grant starts only while its lease has
//!   [`CoreConfig::min_lease_to_start`](super::CoreConfig) plus one commit round trip left, by
//!   the pool's own bound on it, on its own clock: a lease begins after the `Lease` that asked
//!   for it was proposed, and a heartbeat the log accepted extends it from when that heartbeat
//!   was proposed. A grant to standing capacity (the entry that granted it was not this
//!   pool's) is bounded through the log's clock: its deadline is in log time, and the log's
//!   clock is at most `apply − proposed` ahead of the pool's, measured on the pool's last
//!   `Lease` that granted anything (a grant's deadline less its lease length is its apply
//!   time). So a grant a lagging replica reports long after the fact is released, not run
//!   (`sim dst --seed 18`). Clocks are taken to run at one rate; a leader whose clock jumps
//!   ahead is seen at the next such `Lease`. With no measurement yet, a grant counts from one
//!   round trip before the pool heard of it, an estimate. A leader whose clock jumps back
//!   makes the measurement too high for good (the log's clock never goes back: it stands
//!   still, and the pool's only `Lease`s may be renewals that grant nothing): a grant judged
//!   short on the log's clock alone is released and the measurement forgotten, back to the
//!   estimate until a `Lease` measures again (`sim dst --seed 55868944`).
//! - **Stall.** Tasks wait and every slot is busy: if no run ends within two round trips (5 ms
//!   at least, below which a scheduling hiccup would pass for a long run), the buffer goes
//!   back at once and the oldest run's age counts as a run time, which ends lease-ahead (a
//!   task longer than a round trip) until shorter runs bring the average down. So a long task
//!   never holds short ones that another pool could run now. A fixed prefetch keeps its
//!   buffer (as asked).
//! - A fall of the allowance (runs got longer) only makes the pool ask for less: what it
//!   was granted was within the allowance when asked for, and a stall sends it back if it
//!   does not move. Releasing on every dip would spend a log entry and an attempt per task
//!   whenever run times hover around a round trip.
//! - **Drain**: everything buffered goes back at once (`core/drain.rs`).
//!
//! A runner that queues is handed part of the buffer (`core/queued.rs`); the stall rule and the
//! drain take that part back too, and its leases are bounded the same way.

use std::collections::BTreeSet;
use std::time::Duration;

use tracing::debug;

use super::Decision;
use super::PoolCore;
use super::Running;
use super::Timer;
use crate::queue::Grant;
use crate::queue::LeaseRef;

/// The shortest stall window: below it, a scheduling hiccup would pass for a long run.
const STALL_MIN: Duration = Duration::from_millis(5);

/// A grant waiting for a slot.
#[derive(Debug)]
pub(super) struct Buffered {
    pub(super) grant: Grant,
    /// The pool's bound on when its lease ends (the core's time), unless heartbeated again.
    pub(super) alive_until: Duration,
    /// That bound came from the log's clock alone (a grant to standing capacity, measured):
    /// if it says "too short", the measurement may be what is stale (see [`PoolCore::buffer`]).
    pub(super) by_log: bool,
}

impl PoolCore {
    /// Hold `grant`, whose lease began after `since` (the core's time) when known.
    pub(super) fn buffer(&mut self, grant: Grant, since: Option<Duration>) {
        let lease = Duration::from_millis(self.cfg.lease_ms);
        let by_log = self.log_ahead_ms.map(|ahead| {
            let until_ms = i128::from(grant.lease_deadline_ms) - i128::from(ahead);
            Duration::from_millis(u64::try_from(until_ms).unwrap_or(0))
        });
        let by_ask = since.map(|asked| asked + lease);
        let only_log = by_ask.is_none() && by_log.is_some();
        let alive_until = match (by_ask, by_log) {
            // Both are lower bounds: the later is the tighter.
            (Some(a), Some(b)) => a.max(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => {
                let rtt = self.pacer.rtt().unwrap_or_default();
                self.now.saturating_sub(rtt) + lease
            }
        };
        self.buffered.push_back(Buffered {
            grant,
            alive_until,
            by_log: only_log,
        });
    }

    /// Give back a buffered grant whose lease runs too short to start. If only the log's
    /// clock said so, the measurement may be what is wrong, not the grant: the log's clock
    /// never goes back, so after the leader's clock jumped back it stands still while the
    /// pool's runs on, and every grant to standing capacity looks short by the jump. Such a
    /// task goes back to standing capacity in the release's own entry, is judged on the same
    /// measurement, and loops for good (`sim dst --seed 55868944`: ~50 releases a second;
    /// with five pools, each in turn, `--seed 313`). So the measurement is forgotten: what
    /// comes next counts from one round trip before the pool heard of it, until a `Lease` of
    /// the pool's grants something and measures again. A grant a lagging replica reports late
    /// in the same apply was judged before and still goes back.
    pub(super) fn release_short(&mut self, b: Buffered) {
        debug!(
            task = b.grant.lease.task,
            attempt = b.grant.lease.attempt,
            by_log = b.by_log,
            left_ms = b.alive_until.saturating_sub(self.now).as_millis() as u64,
            rtt_ms = self.pacer.rtt().unwrap_or_default().as_millis() as u64,
            "lease too short to start; releasing it"
        );
        self.stats.short_lease_released_total += 1;
        if b.by_log && self.log_ahead_ms.take().is_some() {
            debug!("the log clock's measurement may be stale; forgotten");
        }
        self.outbox.releases.push(b.grant.lease);
    }

    /// A `Lease` proposed at `asked_at` (the core's time) granted these: the log's clock is at
    /// most `apply − asked_at` ahead of the core's.
    pub(super) fn measure_log_clock(&mut self, grants: &[Grant], asked_at: Duration) {
        let asked_ms = i64::try_from(asked_at.as_millis()).unwrap_or(i64::MAX);
        let applied_ms = grants
            .iter()
            .map(|g| g.lease_deadline_ms.saturating_sub(self.cfg.lease_ms))
            .min();
        if let Some(applied_ms) = applied_ms {
            let applied_ms = i64::try_from(applied_ms).unwrap_or(i64::MAX);
            self.log_ahead_ms = Some(applied_ms.saturating_sub(asked_ms));
        }
    }

    /// Hand queued, then buffered grants to free slots, oldest first; give back the ones whose
    /// lease runs short; queue ahead at a runner that queues; watch for a stall.
    pub(super) fn dispatch(&mut self) {
        let rtt = self.pacer.rtt().unwrap_or_default();
        let start_by = self.now + self.cfg.min_lease_to_start + rtt;
        self.start_queued();
        while self.running.len() < self.cfg.slots {
            let Some(b) = self.buffered.pop_front() else {
                break;
            };
            let lease = b.grant.lease;
            if b.alive_until < start_by {
                self.release_short(b);
                continue;
            }
            self.running.insert(
                lease,
                Running {
                    aborted: false,
                    started: self.now,
                },
            );
            self.out.push_back(Decision::Run(b.grant));
        }
        self.queue_ahead(start_by);
        self.watch_stall();
    }

    /// Ask for a look after the stall window while tasks wait for busy slots (`auto` only).
    fn watch_stall(&mut self) {
        let held_up = !self.buffered.is_empty() || self.queued_waiting() > 0;
        let waiting = held_up && self.running.len() >= self.cfg.slots;
        if !waiting || self.stall.is_some() || !self.pacer.is_auto() || self.drain.is_some() {
            return;
        }
        self.stall = Some(self.runs_ended);
        // Not the run time: while lease-ahead is on, runs take less than a round trip anyway,
        // and once long runs turned it off, a window of theirs would keep what waits waiting.
        // A remote run cannot end sooner than its stream's round trip: two of what lease-ahead
        // covers (`core/prefetch.rs`).
        let window = (self.pacer.cover().unwrap_or_default() * 2).max(STALL_MIN);
        self.out.push_back(Decision::After(window, Timer::Stall));
    }

    /// The stall timer fired: if no run ended since it was set and tasks still wait, they go
    /// back, and the oldest run's age counts as a run time (which ends lease-ahead).
    pub(super) fn stall_check(&mut self) {
        let Some(ended_then) = self.stall.take() else {
            return;
        };
        if self.runs_ended != ended_then || (self.buffered.is_empty() && self.queued_waiting() == 0) {
            return;
        }
        if let Some(oldest) = self.running.values().map(|r| r.started).min() {
            let age = self.now.saturating_sub(oldest);
            debug!(
                age_ms = age.as_millis() as u64,
                buffered = self.buffered.len(),
                "runs hold up the buffer"
            );
            self.pacer.running_at_least(age);
        }
        while let Some(b) = self.buffered.pop_back() {
            self.stats.unbuffered_total += 1;
            self.outbox.releases.push(b.grant.lease);
        }
        // Released once the runner answers (or the drain aborts them, if it is gone).
        let asked = self.take_back_queued();
        self.stats.unbuffered_total += asked as u64;
    }

    /// The log extended these leases with a heartbeat proposed at `sent_at`.
    pub(super) fn extended(&mut self, leases: &BTreeSet<LeaseRef>, sent_at: Duration) {
        let until = sent_at + Duration::from_millis(self.cfg.lease_ms);
        for b in &mut self.buffered {
            if leases.contains(&b.grant.lease) {
                b.alive_until = b.alive_until.max(until);
            }
        }
        for q in &mut self.queued {
            if leases.contains(&q.lease) {
                q.alive_until = q.alive_until.max(until);
            }
        }
    }
}
