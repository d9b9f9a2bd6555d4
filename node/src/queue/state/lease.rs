//! The lease rules: granting tasks (`Lease`), and everything that names a lease afterwards
//! (`Complete`, `Heartbeat`, `Progress`, `Release`, `ReleasePool`, expiry), with the retry rules a
//! failed attempt follows.
//!
//! A lease is `(task, attempt)`; the attempt is the fencing token. One function says what a
//! task's current lease is (`Task::lease`: its id and attempt while it is `Leased`), and
//! **`Table::held` is the lease check**: a lease is honoured iff it is its task's current
//! lease. Every command that names a lease goes through it (complete, heartbeat, release; and
//! release_pool, which releases its pool's current leases), and so does the read a pool
//! makes before it runs a grant ([`QueueState::holds`]). The pool name is not part of the
//! fence.

use bytes::Bytes;

use super::ApplyEffects;
use super::Index;
use super::Output;
use super::QueueState;
use super::Table;
use super::Task;
use super::To;
use super::seen::Why;
use crate::bugs;
use crate::queue::command::*;

/// Error recorded when a lease runs out.
pub const LEASE_EXPIRED_ERROR: &str = "lease expired (worker lost)";
/// Error recorded when a task's attempt counter is exhausted.
pub const ATTEMPTS_EXHAUSTED_ERROR: &str = "attempt counter exhausted";

impl Task {
    /// **The lease rule**: the current lease of this task (`id`): `(id, attempt)` while it is
    /// `Leased`, none otherwise. A lease named by a command or a read is honoured iff it equals
    /// this ([`Table::held`]).
    pub(super) fn lease(&self, id: TaskId) -> Option<LeaseRef> {
        (self.state == TaskState::Leased).then_some(LeaseRef {
            task: id,
            attempt: self.attempt,
        })
    }
}

impl Table<Task> {
    /// **The lease check**: the task `lease` names, if `lease` is its current lease.
    pub(super) fn held(&self, lease: LeaseRef) -> Option<&Task> {
        self.get(lease.task)
            .filter(|t| t.lease(lease.task) == Some(lease))
    }

    /// [`Self::held`], for a command that changes the task.
    pub(super) fn held_mut(&mut self, lease: LeaseRef) -> Option<&mut Task> {
        // Checked before borrowing mutably: a stale lease must not copy a chunk a snapshot
        // shares (`table.rs`).
        self.held(lease)?;
        self.get_mut(lease.task)
    }
}

/// Delay before retry number `failures` (≥ 1): `backoff_ms * 2^(failures-1)`, capped.
pub(super) fn backoff_delay(backoff_ms: u64, failures: u32) -> u64 {
    let exp = failures.saturating_sub(1).min(63);
    backoff_ms.saturating_mul(1u64 << exp).min(MAX_BACKOFF_MS)
}

/// How a failed attempt wants to be retried.
#[derive(Clone, Copy)]
enum Retry {
    /// Not at all: the task is dead.
    Never,
    /// After the task's backoff.
    Backoff,
    /// After this delay (the worker's), capped at [`MAX_BACKOFF_MS`].
    After(u64),
}

impl Retry {
    fn of(outcome: &Outcome) -> Self {
        match outcome {
            Outcome::Success(_) | Outcome::Failure { retry: false, .. } => Retry::Never,
            Outcome::Failure { retry: true, .. } => Retry::Backoff,
            Outcome::RetryAfter { delay_ms, .. } => Retry::After(*delay_ms),
        }
    }
}

/// Record a failed attempt and move the task on by the retry rules.
fn fail(
    idx: &mut Index,
    id: TaskId,
    t: &mut Task,
    error: &str,
    retry: Retry,
    now: UnixMs,
    effects: &mut ApplyEffects,
) {
    t.failures = t.failures.saturating_add(1);
    t.set_output(Output::Error(error.into()));
    let opts = idx.options(t);
    let delay = match retry {
        Retry::Never => None,
        Retry::Backoff => Some(backoff_delay(opts.backoff_ms, t.failures)),
        Retry::After(ms) => Some(ms.min(MAX_BACKOFF_MS)),
    };
    if let Some(delay) = delay.filter(|_| t.failures <= opts.max_retries) {
        if delay == 0 {
            idx.set_state(id, t, To::RetryNow, now);
            effects.became_pending += 1;
        } else {
            let due = now.saturating_add(delay);
            idx.set_state(id, t, To::Retrying { due }, now);
        }
    } else {
        idx.set_state(id, t, To::Final(TaskState::Dead), now);
        effects.finished.push(id);
    }
}

/// A leased task's deadline passed (its worker was lost): pending again without using a
/// retry, or `Dead` at the [`MAX_LOST_LEASES`]-th loss.
pub(super) fn expire(idx: &mut Index, id: TaskId, t: &mut Task, now: UnixMs, effects: &mut ApplyEffects) {
    t.lost_leases = t.lost_leases.saturating_add(1);
    t.set_output(Output::Error(LEASE_EXPIRED_ERROR.into()));
    if t.lost_leases >= MAX_LOST_LEASES {
        idx.set_state(id, t, To::Final(TaskState::Dead), now);
        effects.finished.push(id);
    } else {
        idx.set_state(id, t, To::Pending, now);
        effects.became_pending += 1;
    }
}

impl QueueState {
    pub(super) fn lease(
        &mut self,
        pool: &str,
        queues: &[String],
        max: u32,
        lease_ms: u64,
        effects: &mut ApplyEffects,
    ) -> Vec<Grant> {
        let now = self.now_ms;
        let deadline = now.saturating_add(lease_ms);
        let max = max as usize;
        let pool_name = pool;
        let mut grants = Vec::new();
        if max == 0 {
            return grants;
        }
        // The pool name is interned once for the whole command, held by `hold` meanwhile.
        let mut hold: Option<u32> = None;
        for q in self.idx.lease_order(queues) {
            while grants.len() < max {
                // The next task no limit holds back (`limits.rs`).
                let Some((priority, id)) = self.idx.next_grant(q, now) else {
                    break;
                };
                let Some(t) = self.tasks.get_mut(id) else {
                    // Cannot happen while the invariants hold; drop the entry so the loop ends.
                    if !self.idx.queues[q as usize].pending.remove(priority, id) {
                        break;
                    }
                    continue;
                };
                if t.attempt == u32::MAX {
                    t.set_output(Output::Error(ATTEMPTS_EXHAUSTED_ERROR.into()));
                    self.idx.set_state(id, t, To::Final(TaskState::Dead), now);
                    effects.finished.push(id);
                    continue;
                }
                let pool = *hold.get_or_insert_with(|| self.idx.pools.acquire(pool));
                t.attempt += 1;
                self.attempts.start(id, t.attempt, pool_name, now);
                self.idx.set_state(id, t, To::Leased { pool, deadline }, now);
                self.idx.granted(q, id, t, now);
                grants.push(Grant {
                    lease: LeaseRef {
                        task: id,
                        attempt: t.attempt,
                    },
                    name: self.task_names.name(t.name).to_owned(),
                    queue: self.idx.queue_names.name(q).to_owned(),
                    args: Bytes::copy_from_slice(t.args()),
                    time_limit_ms: self.idx.options(t).time_limit_ms,
                    lease_deadline_ms: deadline,
                    headers: self.extras.headers(id).cloned().unwrap_or_default(),
                });
            }
        }
        if let Some(w) = hold {
            self.idx.pools.release(w);
        }
        grants
    }

    pub(super) fn complete(&mut self, c: &Completion, effects: &mut ApplyEffects) -> CompletionResult {
        let now = self.now_ms;
        let id = c.lease.task;
        let lease = if bugs::active(bugs::Bug::AcceptStaleCompletion) {
            // The deliberate bug (for the simulator to catch) drops the fence: the completion is
            // taken for whatever attempt holds the task now.
            self.tasks.get(id).map_or(c.lease, |t| LeaseRef {
                task: id,
                attempt: t.attempt,
            })
        } else {
            c.lease
        };
        let Some(t) = self.tasks.held_mut(lease) else {
            return CompletionResult::Stale;
        };
        let how = match c.outcome.failure() {
            None => AttemptEnd::Succeeded,
            Some((_, retryable)) => AttemptEnd::Failed { retryable },
        };
        self.attempts.end(lease, how, now);
        match &c.outcome {
            Outcome::Success(result) => {
                t.set_output(Output::Result(result.clone()));
                self.idx.set_state(id, t, To::Final(TaskState::Succeeded), now);
                effects.finished.push(id);
            }
            Outcome::Failure { error, .. } | Outcome::RetryAfter { error, .. } => {
                fail(&mut self.idx, id, t, error, Retry::of(&c.outcome), now, effects);
            }
        }
        CompletionResult::Accepted
    }

    pub(super) fn heartbeat(&mut self, lease: LeaseRef, lease_ms: u64) -> bool {
        let deadline = self.now_ms.saturating_add(lease_ms);
        let Some(t) = self.tasks.held_mut(lease) else {
            return false;
        };
        // Not a change of state (`updated_ms` stays): only the deadline moves.
        self.idx.set_timer(lease.task, t, deadline);
        true
    }

    pub(super) fn progress(&mut self, lease: LeaseRef, data: &Bytes) -> bool {
        let Some(t) = self.tasks.held(lease) else {
            return false;
        };
        // Seen (for the events stream) as a change from `Leased` to `Leased`.
        let (leased, now) = (TaskState::Leased, self.now_ms);
        let of = || t.seen_as(lease.task);
        self.idx
            .seen
            .record(of, Some(leased), leased, Why::Progress, (now, now));
        self.extras.set_progress(lease, data, self.now_ms);
        true
    }

    pub(super) fn release(&mut self, lease: LeaseRef, effects: &mut ApplyEffects) -> bool {
        let now = self.now_ms;
        let Some(t) = self.tasks.held_mut(lease) else {
            return false;
        };
        self.attempts.end(lease, AttemptEnd::Released, now);
        self.idx.set_state(lease.task, t, To::Pending, now);
        effects.became_pending += 1;
        true
    }

    pub(super) fn release_pool(&mut self, pool: &str, effects: &mut ApplyEffects) -> u64 {
        self.leases_of(pool)
            .into_iter()
            .map(|l| u64::from(self.release(l, effects)))
            .sum()
    }

    /// Every current lease held by `pool`, in deadline order. Leased tasks are indexed only
    /// by deadline: this scans the timers (once per pool start, or a remote worker's resume).
    pub fn leases_of(&self, pool: &str) -> Vec<LeaseRef> {
        let Some(slot) = self.idx.pools.get(pool) else {
            return Vec::new();
        };
        self.idx
            .timers
            .iter()
            .filter_map(|(_, id)| {
                let t = self.tasks.get(*id)?;
                t.lease(*id).filter(|_| t.pool == slot)
            })
            .collect()
    }

    /// The current lease of a task: `(lease, pool, deadline)`, if it is leased.
    pub fn current_lease(&self, id: TaskId) -> Option<(LeaseRef, &str, UnixMs)> {
        let t = self.tasks.get(id)?;
        Some((t.lease(id)?, self.idx.pools.name(t.pool), t.timer_ms))
    }

    /// Whether `lease` is the current lease of its task, held by `pool`: what a pool checks
    /// on its own replica before it runs a grant.
    pub fn holds(&self, pool: &str, lease: LeaseRef) -> bool {
        self.tasks
            .held(lease)
            .is_some_and(|t| self.idx.pools.name(t.pool) == pool)
    }
}
