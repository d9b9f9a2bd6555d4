//! An operator's commands on tasks (issue 13, entry format 8): `Retry` requeues final tasks,
//! `Revoke` cancels tasks, running ones too.
//!
//! - **Retry** takes a `Dead` or `Cancelled` task back to `Pending` with a fresh retry budget:
//!   `failures` and `lost_leases` start again from 0, so it gets its `max_retries` and its
//!   [`MAX_LOST_LEASES`] anew. Its `attempt` keeps counting (attempts are the fencing tokens:
//!   the lease of an attempt before the retry can never complete it), its last error stays
//!   until an attempt ends (the view shows it), and it is not moved: same id, same queue,
//!   same priority, at its place by id among the pending tasks. A `Succeeded` task is not
//!   retried (its result is what a client waited for); nor is a task that is not final.
//!   Cancelled tasks are retried because an operator who cancelled by mistake has no other
//!   way back that keeps the id clients wait on; the filter form of the call defaults to dead
//!   tasks only (`grpc/ops_service.rs`).
//! - **Revoke** cancels what `Cancel` cancels (scheduled, pending, retrying) and also a
//!   `Leased` task: it becomes `Cancelled` at once, which ends its lease (every later
//!   `Complete`, `Heartbeat`, `Progress` or `Release` of that attempt is stale: the one lease
//!   check of `lease.rs`), with the reason as its error. The apply reports the lease in its
//!   pool's [`PoolEffects::revoked`](super::PoolEffects), so the pool on the node that holds
//!   it aborts the run (a local handler is cancelled, a remote worker is sent `Abort`). The
//!   command is in the log, so a replica that restarts and replays it ends the task the same
//!   way; a pool that missed the effect (it was restarting) loses the lease anyway: its next
//!   heartbeat is refused, and its result would be stale.

use super::ApplyEffects;
use super::Output;
use super::QueueState;
use super::To;
use crate::queue::command::*;

/// The error a revoked task shows when the operator gave no reason.
pub const REVOKED_ERROR: &str = "revoked by an operator";

impl QueueState {
    /// `Retry` of one task: whether it was requeued.
    pub(super) fn retry(&mut self, id: TaskId, effects: &mut ApplyEffects) -> bool {
        let now = self.now_ms;
        let Some(t) = self.tasks.get_mut(id) else {
            return false;
        };
        if !matches!(t.state, TaskState::Dead | TaskState::Cancelled) {
            return false;
        }
        t.failures = 0;
        t.lost_leases = 0;
        self.idx.set_state(id, t, To::Pending, now);
        effects.became_pending += 1;
        true
    }

    /// `Revoke` of one task (see the module docs).
    pub(super) fn revoke(&mut self, id: TaskId, reason: &str, effects: &mut ApplyEffects) -> Revoked {
        let now = self.now_ms;
        let Some(t) = self.tasks.get_mut(id) else {
            return Revoked::Unchanged;
        };
        let lease = t.lease(id);
        let outcome = match t.state {
            TaskState::Scheduled | TaskState::Pending | TaskState::Retrying => Revoked::Cancelled,
            TaskState::Leased => Revoked::Terminated,
            TaskState::Succeeded | TaskState::Dead | TaskState::Cancelled => return Revoked::Unchanged,
        };
        if lease.is_some() && crate::bugs::active(crate::bugs::Bug::RevokeKeepsLease) {
            // The deliberate bug (for the simulator to catch): the running task is left be.
            return Revoked::Terminated;
        }
        let holder = self.idx.pools.name(t.pool).to_owned();
        let error = if reason.is_empty() { REVOKED_ERROR } else { reason };
        t.set_output(Output::Error(error.into()));
        self.idx.set_state(id, t, To::Final(TaskState::Cancelled), now);
        effects.finished.push(id);
        if let Some(lease) = lease {
            self.attempts.end(lease, AttemptEnd::Revoked, now);
            effects.pool(&holder).revoked.push(lease);
        }
        outcome
    }
}
