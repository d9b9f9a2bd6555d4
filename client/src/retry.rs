//! [`RetryPolicy`]: which failures are retried, and how long to wait between attempts.
//!
//! A failure is *transient* when the server says `UNAVAILABLE` (no leader ready, forwarding
//! failed, node shutting down) or when the call never got a reply from a server at all
//! (connection refused or reset, request timeout). Transient failures are retried with
//! exponential backoff and jitter, each retry on the next node, until the policy's
//! `max_elapsed` has passed. Every other status is final.

use std::time::Duration;

use flotilla_proto::backoff::Backoff as DelayRule;
use tokio::time::Instant;
use tonic::{Code, Status};

/// How long and how often a transient failure is retried.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Give up once this much time has passed since the first attempt (default 30 s).
    pub max_elapsed: Duration,
    /// Wait before the first retry (default 20 ms); it doubles with each retry.
    pub initial_backoff: Duration,
    /// Upper bound on the wait between two attempts (default 1 s).
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_elapsed: Duration::from_secs(30),
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// A policy that makes exactly one attempt.
    pub fn never() -> Self {
        RetryPolicy {
            max_elapsed: Duration::ZERO,
            ..RetryPolicy::default()
        }
    }
}

/// The backoff state of one logical call (which may span many attempts): the policy's time
/// budget and the attempt count here, the delays from the shared [`DelayRule`].
#[derive(Debug)]
pub(crate) struct Backoff {
    max_elapsed: Duration,
    started: Instant,
    delays: DelayRule,
    attempts: u32,
}

impl Backoff {
    pub(crate) fn new(policy: &RetryPolicy, now: Instant) -> Self {
        Backoff {
            max_elapsed: policy.max_elapsed,
            started: now,
            // `max_backoff` bounds every wait, the first one too.
            delays: DelayRule::new(policy.initial_backoff.min(policy.max_backoff), policy.max_backoff),
            attempts: 0,
        }
    }

    /// Counts a failed attempt and returns how long to wait before the next one, or `None` when
    /// the policy's time is up. `jitter` in `[0, 1)` picks the wait within `[base/2, base]`, so
    /// clients that failed together do not retry in lockstep.
    pub(crate) fn on_failure(&mut self, now: Instant, jitter: f64) -> Option<Duration> {
        self.attempts += 1;
        let elapsed = now.saturating_duration_since(self.started);
        let left = self.max_elapsed.checked_sub(elapsed).filter(|d| !d.is_zero())?;
        Some(self.delays.next_jittered(jitter).min(left))
    }

    /// Starts over after progress (a wait stream delivered results before it broke): the time
    /// budget and backoff apply to consecutive failures only.
    pub(crate) fn reset(&mut self, now: Instant) {
        self.started = now;
        self.delays.reset();
    }

    /// Failed attempts counted so far.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempts
    }
}

/// Whether a failed call may be retried (on another node).
///
/// `UNAVAILABLE` is retried whether a server or the transport produced it. A status with a
/// source error was made on this side from a transport failure (e.g. a connection reset
/// mid-call shows up as `UNKNOWN` or `INTERNAL`): the server never answered, so it is retried
/// too. Statuses the server sent carry no source and keep their meaning.
pub(crate) fn is_transient(status: &Status) -> bool {
    match status.code() {
        Code::Unavailable => true,
        // A node never cancels a call itself: CANCELLED ("Timeout expired") is tonic enforcing
        // this attempt's own deadline on the server. Its outcome is unknown, like a timeout
        // here; every call is safe to repeat (submits carry idempotency keys). Found by `sim
        // chaos`: a submit failed for good on one slow attempt.
        Code::Cancelled => true,
        Code::Unknown | Code::Internal => std::error::Error::source(status).is_some(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_elapsed: Duration::from_secs(1),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(400),
        }
    }

    #[test]
    fn a_server_side_deadline_is_retried_but_a_refusal_is_not() {
        assert!(is_transient(&Status::cancelled("Timeout expired")));
        assert!(is_transient(&Status::unavailable("no leader")));
        assert!(!is_transient(&Status::invalid_argument("too big")));
        assert!(!is_transient(&Status::internal("disk")));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let t0 = Instant::now();
        let mut b = Backoff::new(&policy(), t0);
        let full: Vec<_> = (0..4).map(|_| b.on_failure(t0, 1.0).unwrap()).collect();
        let ms = |d: Duration| d.as_millis();
        assert_eq!(
            full.into_iter().map(ms).collect::<Vec<_>>(),
            vec![100, 200, 400, 400]
        );
        let mut b = Backoff::new(&policy(), t0);
        assert_eq!(b.on_failure(t0, 0.0), Some(Duration::from_millis(50)));
        assert_eq!(b.on_failure(t0, 0.5), Some(Duration::from_millis(150)));
        assert_eq!(b.attempts(), 2);
    }

    #[test]
    fn backoff_stops_at_max_elapsed_and_never_sleeps_past_it() {
        let t0 = Instant::now();
        let mut b = Backoff::new(&policy(), t0);
        assert_eq!(
            b.on_failure(t0 + Duration::from_millis(950), 1.0),
            Some(Duration::from_millis(50))
        );
        assert_eq!(b.on_failure(t0 + Duration::from_millis(1000), 1.0), None);
        b.reset(t0 + Duration::from_millis(1000));
        assert_eq!(
            b.on_failure(t0 + Duration::from_millis(1000), 1.0),
            Some(Duration::from_millis(100))
        );
        let mut never = Backoff::new(&RetryPolicy::never(), t0);
        assert_eq!(never.on_failure(t0, 0.5), None);
    }

    #[test]
    fn only_unavailable_and_transport_failures_are_transient() {
        assert!(is_transient(&Status::unavailable("no leader")));
        assert!(!is_transient(&Status::invalid_argument("too big")));
        assert!(!is_transient(&Status::internal("fatal")));
        assert!(!is_transient(&Status::unknown("server said so")));
        assert!(!is_transient(&Status::deadline_exceeded("timeout")));
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let local = Status::from_error(Box::new(io));
        assert_eq!(local.code(), Code::Unknown);
        assert!(is_transient(&local));
    }
}
