//! The properties every simulated run must keep, one file each. Each checker returns the
//! [`Violation`]s it found; the driver gathers them.
//!
//! - [`one_leader_per_term`]: at most one leader per term (checked at every step).
//! - [`state_consistent`]: every replica's task table and indexes agree (the queue's own
//!   `check_invariants`, at a bounded cadence while the run goes on and at the end).
//! - [`durable_vote`]: a node's term never lags what it applied (the vote survives crashes).
//! - [`durable_log`]: a follower's log never goes back past what it acknowledged (openraft's
//!   own debug check; its panic ends the run, read from the run's stderr).
//! - [`acknowledged_not_lost`]: an acknowledged submit is never lost, nor its key reused.
//! - [`one_result`]: no task has two recorded results (a final task never changes).
//! - [`no_stale_completion`]: a completion from an expired lease never takes effect.
//! - [`all_final`]: once faults heal, the cluster makes progress and every task ends final.
//! - [`replicas_agree`]: once faults heal, every replica's state machine is identical.
//! - [`schedules_exact`]: every due slot of every schedule is enqueued exactly once, none
//!   early (on the log's time).
//! - [`revoked_stay_cancelled`]: a task an operator revoked (`cancel --terminate`) ends
//!   cancelled: the attempt it was running never completes it, and it never runs again.
//! - [`limits_respected`]: no limit has more tasks leased than its concurrency, at every
//!   applied index of every replica (checked with `state_consistent`).
//! - [`callbacks_exact`]: every waiting task (a chord's callback, a chain's link) becomes
//!   pending exactly once, after all its parents are final, never before (checked with
//!   `state_consistent`).
//! - [`attempts_agree`]: once faults heal, every replica records the same attempt history of
//!   each task, and it agrees with the task's final attempt and state.
//! - [`attempts_bounded`]: once faults heal, no task has been leased over and over (no loop
//!   between a pool and the log spending attempts).

pub mod acknowledged_not_lost;
pub mod all_final;
pub mod attempts_agree;
pub mod attempts_bounded;
pub mod callbacks_exact;
pub mod durable_log;
pub mod durable_vote;
pub mod limits_respected;
pub mod no_stale_completion;
pub mod one_leader_per_term;
pub mod one_result;
pub mod replicas_agree;
pub mod revoked_stay_cancelled;
pub mod schedules_exact;
pub mod state_consistent;

use serde::Deserialize;
use serde::Serialize;

use crate::history::Problem;

/// A broken property.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The checker's name (its file's name).
    pub invariant: String,
    /// Simulated ms since the start when it was found.
    pub at_ms: u64,
    pub detail: String,
}

impl Violation {
    pub fn new(invariant: &str, at_ms: u64, detail: impl Into<String>) -> Violation {
        Violation {
            invariant: invariant.to_string(),
            at_ms,
            detail: detail.into(),
        }
    }

    /// A violation when the client-side history found `problem` (`what`: e.g. "tasks lost").
    pub fn of(invariant: &str, at_ms: u64, problem: &Problem, what: &str) -> Option<Violation> {
        (problem.count > 0).then(|| {
            let detail = format!("{} {what}, e.g. {:?}", problem.count, problem.examples);
            Violation::new(invariant, at_ms, detail)
        })
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] at {} ms: {}", self.invariant, self.at_ms, self.detail)
    }
}
