//! [`Outbox`]: every proposal the pool owes the log, the ones in flight (by [`Token`]), and the
//! one [`Backoff`] that paces retries of all of them.
//!
//! Completions and releases queue here until proposed; a proposal that fails puts its items
//! back in front, and the `ReleasePool` (or `Resume`), `Lease` or `ClearStanding` it carried is owed
//! again (the core proposes those from its state: not recovered, work hinted, drain not
//! cleared). One failure holds every retried proposal until one timer fires, then all that is
//! owed goes out again; a success resets the delay. Heartbeats are not retried (the next tick
//! sends a fresh one) and do not wait for a retry.

use std::collections::BTreeMap;
use std::time::Duration;

use flotilla_proto::backoff::Backoff;

use super::Token;
use crate::error::ProposeError;
use crate::queue::Command;
use crate::queue::Completion;
use crate::queue::LeaseRef;
use crate::queue::Response;
use crate::queue::ops;
use crate::queue::ops::Op;

/// First retry after a failed proposal; doubled per failure up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(10);
const RETRY_MAX: Duration = Duration::from_secs(1);

/// What the pool proposes: one op, or a `Complete` and the `Lease` of the capacity it frees
/// in one entry (applied together, all or none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Proposal {
    /// Release whatever an earlier run of this pool still holds (proposed first, once).
    ReleasePool(ops::ReleasePool),
    /// Instead of `ReleasePool`, for a remote worker that resumes leases after its node
    /// failed: drop its standing capacity and release the leases it does not keep.
    Resume(ops::ClearStanding, ops::Release),
    Lease(ops::Lease),
    /// Drop the standing capacity and stand again for less, in one entry: the lease-ahead
    /// allowance fell below what the pool stands for (`core/leasing.rs`).
    ClearAndLease(ops::ClearStanding, ops::Lease),
    Complete(ops::Complete),
    CompleteAndLease(ops::Complete, ops::Lease),
    Release(ops::Release),
    Heartbeat(ops::Heartbeat),
    ClearStanding(ops::ClearStanding),
}

impl Proposal {
    /// The commands of its entry, in order.
    pub fn into_commands(self) -> Vec<Command> {
        match self {
            Proposal::ReleasePool(op) => vec![op.command()],
            Proposal::Resume(clear, release) => vec![clear.command(), release.command()],
            Proposal::Lease(op) => vec![op.command()],
            Proposal::ClearAndLease(clear, lease) => vec![clear.command(), lease.command()],
            Proposal::Complete(op) => vec![op.command()],
            Proposal::CompleteAndLease(complete, lease) => vec![complete.command(), lease.command()],
            Proposal::Release(op) => vec![op.command()],
            Proposal::Heartbeat(op) => vec![op.command()],
            Proposal::ClearStanding(op) => vec![op.command()],
        }
    }
}

/// What the core remembers of a proposal in flight: enough to read its answer and, if it
/// fails, to owe its items again.
#[derive(Debug)]
pub(super) enum Sent {
    ReleasePool,
    Resume,
    Lease { ticket: u64 },
    ClearAndLease { ticket: u64 },
    Complete(Vec<Completion>),
    CompleteAndLease(Vec<Completion>, u64),
    Release(Vec<LeaseRef>),
    Heartbeat(Vec<LeaseRef>),
    ClearStanding,
}

impl Sent {
    /// What was proposed, for logs.
    pub(super) fn name(&self) -> &'static str {
        match self {
            Sent::ReleasePool => "release-worker",
            Sent::Resume => "resume",
            Sent::Lease { .. } => "lease",
            Sent::ClearAndLease { .. } => "clear+lease",
            Sent::Complete(_) => "complete",
            Sent::CompleteAndLease(..) => "complete+lease",
            Sent::Release(_) => "release",
            Sent::Heartbeat(_) => "heartbeat",
            Sent::ClearStanding => "clear-standing",
        }
    }

    fn leases(&self) -> bool {
        matches!(
            self,
            Sent::Lease { .. } | Sent::ClearAndLease { .. } | Sent::CompleteAndLease(..)
        )
    }

    fn completions(&self) -> usize {
        match self {
            Sent::Complete(batch) | Sent::CompleteAndLease(batch, _) => batch.len(),
            _ => 0,
        }
    }

    fn releases(&self) -> usize {
        match self {
            Sent::Release(batch) => batch.len(),
            _ => 0,
        }
    }
}

#[derive(Debug)]
pub(super) struct Outbox {
    /// Outcomes not yet proposed, oldest first.
    pub(super) completions: Vec<Completion>,
    /// Leases to give back, not yet proposed.
    pub(super) releases: Vec<LeaseRef>,
    /// With when each was proposed (the core's time).
    in_flight: BTreeMap<Token, (Sent, Duration)>,
    next_token: u64,
    backoff: Backoff,
    /// A proposal failed and its retry timer has not fired yet.
    retry_pending: bool,
}

impl Default for Outbox {
    fn default() -> Self {
        Self {
            completions: Vec::new(),
            releases: Vec::new(),
            in_flight: BTreeMap::new(),
            next_token: 0,
            backoff: Backoff::new(RETRY_MIN, RETRY_MAX),
            retry_pending: false,
        }
    }
}

impl Outbox {
    /// Record `sent`, proposed at `now`, as in flight; its reply comes back with the token
    /// returned.
    pub(super) fn send(&mut self, sent: Sent, now: Duration) -> Token {
        self.next_token += 1;
        let token = Token(self.next_token);
        self.in_flight.insert(token, (sent, now));
        token
    }

    /// The reply to `token` came back: what was sent and when, if it was in flight.
    pub(super) fn answered(&mut self, token: Token) -> Option<(Sent, Duration)> {
        self.in_flight.remove(&token)
    }

    /// Whether retried proposals may go out now (no retry is pending).
    pub(super) fn may_send(&self) -> bool {
        !self.retry_pending
    }

    /// A retried proposal succeeded: the next failure waits the shortest delay again.
    pub(super) fn succeeded(&mut self) {
        self.backoff.reset();
    }

    /// A retried proposal failed: owe its items again, in front. Returns how long to wait
    /// before sending anything retried again, unless a retry is already pending.
    pub(super) fn failed(&mut self, sent: Sent) -> Option<Duration> {
        match sent {
            Sent::Complete(batch) | Sent::CompleteAndLease(batch, _) => {
                self.completions.splice(0..0, batch);
            }
            Sent::Release(batch) => {
                self.releases.splice(0..0, batch);
            }
            // Owed again from the core's state; a heartbeat is never retried.
            Sent::ReleasePool
            | Sent::Resume
            | Sent::Lease { .. }
            | Sent::ClearAndLease { .. }
            | Sent::Heartbeat(_)
            | Sent::ClearStanding => {}
        }
        if self.retry_pending {
            return None;
        }
        self.retry_pending = true;
        Some(self.backoff.next_delay())
    }

    /// The retry timer fired.
    pub(super) fn retry_due(&mut self) {
        self.retry_pending = false;
    }

    fn count(&self, f: impl Fn(&Sent) -> bool) -> usize {
        self.in_flight.values().filter(|(s, _)| f(s)).count()
    }

    /// `Lease` proposals in flight (alone or with completions).
    pub(super) fn leases_in_flight(&self) -> usize {
        self.count(Sent::leases)
    }

    /// `Complete` proposals in flight (alone or with a lease).
    pub(super) fn completes_in_flight(&self) -> usize {
        self.count(|s| matches!(s, Sent::Complete(_) | Sent::CompleteAndLease(..)))
    }

    /// When the newest `Complete` proposal in flight (alone or with a lease) was proposed.
    pub(super) fn newest_complete_at(&self) -> Option<Duration> {
        self.in_flight
            .values()
            .filter(|(s, _)| matches!(s, Sent::Complete(_) | Sent::CompleteAndLease(..)))
            .map(|(_, at)| *at)
            .max()
    }

    pub(super) fn releases_in_flight(&self) -> usize {
        self.count(|s| matches!(s, Sent::Release(_)))
    }

    pub(super) fn heartbeat_in_flight(&self) -> bool {
        self.count(|s| matches!(s, Sent::Heartbeat(_))) > 0
    }

    pub(super) fn recovering(&self) -> bool {
        self.count(|s| matches!(s, Sent::ReleasePool | Sent::Resume)) > 0
    }

    pub(super) fn clearing(&self) -> bool {
        self.count(|s| matches!(s, Sent::ClearStanding)) > 0
    }

    /// Whether a completion or release of `lease` is owed (queued or in flight).
    pub(super) fn owes(&self, lease: LeaseRef) -> bool {
        let sent = |s: &Sent| match s {
            Sent::Complete(batch) | Sent::CompleteAndLease(batch, _) => {
                batch.iter().any(|c| c.lease == lease)
            }
            Sent::Release(batch) => batch.contains(&lease),
            _ => false,
        };
        self.completions.iter().any(|c| c.lease == lease)
            || self.releases.contains(&lease)
            || self.in_flight.values().any(|(s, _)| sent(s))
    }

    /// Completions owed: queued or in flight.
    pub(super) fn completions_held(&self) -> usize {
        self.completions.len()
            + self
                .in_flight
                .values()
                .map(|(s, _)| s.completions())
                .sum::<usize>()
    }

    /// Releases owed: queued or in flight.
    pub(super) fn releases_held(&self) -> usize {
        self.releases.len() + self.in_flight.values().map(|(s, _)| s.releases()).sum::<usize>()
    }
}

/// The typed answer of a one-op entry.
pub(super) fn one<O: ops::Op>(reply: Result<Vec<Response>, ProposeError>) -> Result<O::Answer, ProposeError> {
    Ok(ops::answer_one::<O>(reply?)?)
}

/// The typed answers of a two-op entry.
pub(super) fn pair<A: ops::Op, B: ops::Op>(
    reply: Result<Vec<Response>, ProposeError>,
) -> Result<(A::Answer, B::Answer), ProposeError> {
    Ok(ops::answer_pair::<A, B>(reply?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::Outcome;

    const T0: Duration = Duration::from_millis(3);

    fn completion(task: u64) -> Completion {
        Completion {
            lease: LeaseRef { task, attempt: 1 },
            outcome: Outcome::Success(Default::default()),
        }
    }

    #[test]
    fn a_failure_puts_items_back_in_front_and_holds_everything_for_one_timer() {
        let mut o = Outbox::default();
        o.completions.push(completion(3));
        let a = o.send(Sent::CompleteAndLease(vec![completion(1), completion(2)], 7), T0);
        let b = o.send(Sent::Release(vec![LeaseRef { task: 9, attempt: 1 }]), T0);
        assert_eq!(
            (o.completions_held(), o.releases_held(), o.leases_in_flight()),
            (3, 1, 1)
        );
        let (sent, at) = o.answered(a).unwrap();
        assert_eq!(at, T0);
        assert_eq!(o.failed(sent), Some(RETRY_MIN));
        let tasks: Vec<u64> = o.completions.iter().map(|c| c.lease.task).collect();
        assert_eq!(tasks, vec![1, 2, 3]);
        assert!(!o.may_send());
        // A second failure while the retry is pending waits for the same timer.
        let (sent, _) = o.answered(b).unwrap();
        assert_eq!(o.failed(sent), None);
        assert_eq!(o.releases.len(), 1);
        o.retry_due();
        assert!(o.may_send());
        // The delay doubled; a success starts it over.
        let c = o.send(Sent::ClearStanding, T0);
        let (sent, _) = o.answered(c).unwrap();
        assert_eq!(o.failed(sent), Some(RETRY_MIN * 2));
        o.retry_due();
        o.succeeded();
        let d = o.send(Sent::ReleasePool, T0);
        let (sent, _) = o.answered(d).unwrap();
        assert_eq!(o.failed(sent), Some(RETRY_MIN));
    }

    #[test]
    fn a_pair_is_one_entry_complete_first() {
        let complete = ops::Complete {
            pool: "p".into(),
            completions: vec![completion(1)],
        };
        let lease = ops::Lease {
            pool: "p".into(),
            queues: vec![],
            max: 2,
            lease_ms: 10,
            standing_ticket: Some(1),
        };
        let cmds = Proposal::CompleteAndLease(complete, lease).into_commands();
        assert!(matches!(
            cmds.as_slice(),
            [Command::Complete { .. }, Command::Lease { max: 2, .. }]
        ));
    }
}
