//! [`Backoff`]: the one retry-delay rule shared by every side of the wire (the node's proposer,
//! its worker pools and its join, and the client).
//!
//! Waits double from `initial` up to `max` and start over after a success. It is pure: it reads
//! no clock and draws no random number (a caller that wants jitter passes a draw in `[0, 1)`), so
//! the simulator's runs stay deterministic and the rule is tested without sleeping. Time budgets
//! ("give up after 30 s") belong to the caller, which knows its clock.

use std::time::Duration;

/// Exponentially growing retry delays: `initial`, `2·initial`, ... capped at `max`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Delays from `initial`, doubling up to `max` (a `max` below `initial` caps at `initial`).
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            next: initial,
        }
    }

    /// The delay before the next retry; the one after it doubles (up to the cap).
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next.min(self.max.max(self.initial));
        self.next = delay.saturating_mul(2).min(self.max.max(self.initial));
        delay
    }

    /// [`Self::next_delay`] with jitter: `jitter` in `[0, 1)` picks the wait within
    /// `[delay/2, delay]`, so callers that failed together do not retry in lockstep.
    pub fn next_jittered(&mut self, jitter: f64) -> Duration {
        let delay = self.next_delay();
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        delay / 2 + (delay / 2).mul_f64(jitter)
    }

    /// After a success: the next failure waits `initial` again.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }

    /// The delay [`Self::next_delay`] would return now, without counting a retry.
    pub fn peek(&self) -> Duration {
        self.next.min(self.max.max(self.initial))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn doubles_up_to_the_cap_and_starts_over_after_reset() {
        let mut b = Backoff::new(MS(10), MS(50));
        let seen: Vec<_> = (0..5).map(|_| b.next_delay()).collect();
        assert_eq!(seen, vec![MS(10), MS(20), MS(40), MS(50), MS(50)]);
        b.reset();
        assert_eq!(b.peek(), MS(10));
        assert_eq!(b.next_delay(), MS(10));
    }

    #[test]
    fn jitter_stays_in_the_upper_half_and_tolerates_nonsense() {
        let mut b = Backoff::new(MS(100), MS(400));
        assert_eq!(b.next_jittered(0.0), MS(50));
        assert_eq!(b.next_jittered(1.0), MS(200));
        assert_eq!(b.next_jittered(0.5), MS(300));
        assert_eq!(b.next_jittered(f64::NAN), MS(200));
        assert_eq!(b.next_jittered(-3.0), MS(200));
    }

    #[test]
    fn a_cap_below_the_start_caps_at_the_start_and_never_overflows() {
        let mut b = Backoff::new(MS(100), MS(1));
        assert_eq!(b.next_delay(), MS(100));
        assert_eq!(b.next_delay(), MS(100));
        let mut huge = Backoff::new(Duration::MAX, Duration::MAX);
        assert_eq!(huge.next_delay(), Duration::MAX);
        assert_eq!(huge.next_delay(), Duration::MAX);
    }
}
