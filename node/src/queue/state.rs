//! [`QueueState`]: the replicated task queue as a pure, deterministic state machine.
//!
//! Every replica applies the same [`Request`]s in the same order and so holds the same state and
//! serializes it to the same bytes. Hence: ordered containers only (the one hash table, the key
//! index, is never iterated nor serialized, so its randomly keyed hash cannot reach the state), no
//! wall clock, no RNG in what `apply` decides, and `apply` is total (it never panics and never
//! fails; problems are reported in responses).
//!
//! # Semantics
//!
//! - **Time.** `apply` first sets `now = max(now, req.now_ms)` (time never runs backwards) and
//!   fires every timer with `due <= now`, then applies the commands in order, all at that same
//!   `now`. Timers created by a command with `due <= now` (a `lease_ms` of 0, a result TTL of 0)
//!   fire at the start of the next apply, not between commands of the same entry. All time
//!   arithmetic saturates.
//! - **Ids** are sequential from 1 and never reused.
//! - **Submit.** Headers are kept with the task (`state/extras.rs`) and given with every grant
//!   of it; they are bounded at the gRPC edge ([`check_headers`]), never by `apply`. An empty queue name means [`DEFAULT_QUEUE`]. `due = max(eta_ms, now +
//!   countdown_ms)` (absent = 0); `due > now` makes the task `Scheduled`, otherwise `Pending`. An
//!   idempotency key that maps to an existing task returns `{id: existing, duplicate: true}` and
//!   creates nothing, also within one batch. The key is forgotten when its task is purged.
//! - **Lease** takes up to `max` pending tasks from the listed queues in the given order (an
//!   empty list means every queue in name order; an empty name means the default queue),
//!   skipping paused and unknown queues. Within a queue: highest priority first, then FIFO by id.
//!   Each grant increments the task's `attempt`: attempts are never reused or decremented, they
//!   are the fencing tokens. The lease runs until `now + lease_ms`.
//! - **Complete.** Accepted only if the task is `Leased` with exactly that attempt; otherwise it
//!   is `Stale` and changes nothing (the first valid completion wins). The pool name is not
//!   part of the fence. `Success` → `Succeeded` with the result. `Failure{retry: true}` counts a
//!   failure (failures are counted apart from attempts); while `failures <= max_retries` the task
//!   waits `min(backoff_ms * 2^(failures-1), MAX_BACKOFF_MS)` in `Retrying` (a `backoff_ms` of 0
//!   goes straight to `Pending`), else it is `Dead`. `RetryAfter{delay_ms}` is a retryable
//!   failure that waits `min(delay_ms, MAX_BACKOFF_MS)` instead of the backoff (0: `Pending`
//!   at once). `Failure{retry: false}` is `Dead` at once.
//!   The last error is kept; a success clears it (the view shows either result or error).
//! - **Heartbeat** sets a matching lease's deadline to `now + lease_ms`.
//! - **Progress** keeps a matching lease's report as the task's latest progress (with its
//!   attempt and `now`), until the task is purged or a later report replaces it; like a
//!   heartbeat it is not a change of state.
//! - **Release** puts a matching lease back to `Pending` without counting a failure. Its attempt
//!   number stays consumed: the next lease gets `attempt + 1`.
//! - **Lease expiry** (`deadline <= now`: the worker died or was cut off) puts the task back to
//!   `Pending` with error `"lease expired (worker lost)"`, without using up a retry: a node crash
//!   must not cost a task one of its `max_retries`. Lost leases are counted on their own; the
//!   [`MAX_LOST_LEASES`]-th makes the task `Dead`, so a task that keeps killing its workers
//!   does not run forever.
//! - **Standing capacity** (`state/standing.rs`). A `Lease` with a `standing_ticket` leaves
//!   `max − granted` as the pool's standing capacity, added to what it had, and renews all of
//!   it until `now + lease_ms` (a `max` of 0 only renews). It is dropped at the start of the
//!   first apply with `now >= expiry`, before timers fire. Whenever a task may have become
//!   pending (after the advance; after any command that made one pending, un-paused a queue or
//!   stood), pending tasks are granted to standing capacity one at a time: the covering pool
//!   granted to least recently (ties: name order) takes exactly the task its own `Lease { max:
//!   1, lease_ms }` would take then (its queues in order, priority, id), as an ordinary lease.
//!   Such tasks are not counted in `became_pending`; the grants are reported per pool in
//!   [`ApplyEffects::pools`]. Invariant: no standing capacity covers a pending task of an
//!   unpaused queue. `ClearStanding` drops a pool's standing capacity; so does `ReleasePool`
//!   (first, so the tasks it releases go to other pools' standing capacity, not back), and
//!   [`QueueState::new_term`] drops everyone's (applied for a new leader's first entry).
//! - **ReleasePool** releases every lease held by the named pool (a pool that restarted
//!   under the same name): those tasks are pending again at once, nothing counted. It scans the
//!   timer set, which is fine for a command proposed once per pool start.
//! - **Cancel** turns `Scheduled`/`Pending`/`Retrying` into `Cancelled`; a leased, final or
//!   unknown task answers `false`. **Revoke** (`state/operator.rs`) cancels leased tasks too:
//!   the lease is fenced (the task is final) and its pool is told in
//!   [`PoolEffects::revoked`]; the reason is the task's error. **Retry** takes a `Dead` or
//!   `Cancelled` task back to `Pending` with a fresh retry budget (failures and lost leases
//!   reset; attempts keep counting). **PurgeQueue** cancels every scheduled, pending and retrying
//!   task of the queue and returns how many. **PauseQueue** makes `Lease` skip the queue.
//! - **Tokens** (`state/tokens.rs`): `CreateToken` stores a token's role and hash under the
//!   next id (a hash already stored answers `None`), expiring at `now + ttl_ms`; `RevokeToken`
//!   removes it. Expiry is judged where a token is checked, not by a timer.
//! - **Catalogue** (`state/catalog.rs`): `DeclareTasks` records task names with their
//!   declarer and default queue, all or nothing, idempotently, within fixed bounds. Submits
//!   are checked against it at the gRPC edge, never in `apply`.
//! - **Schedules** (`state/schedule.rs`): `AddSchedule`, `RemoveSchedule` and `PauseSchedule`
//!   keep periodic schedules (cron in a time zone, or intervals). After the timers, advancing
//!   the clock fires every unpaused schedule whose next slot is due: each slot at most once
//!   (one task keyed `schedule:<id>:<slot>`), never before its time; slots missed by more than
//!   the schedule's grace are skipped or run once, as it says.
//! - **Workflows** (`state/deps.rs`, docs/WORKFLOWS.md): `SubmitWorkflow` creates a workflow's
//!   tasks all or nothing; a task with parents is created *waiting* (`Scheduled`, its timer the
//!   end of time, its wait in the side table). After the timers and after each command, every
//!   task that reached a final state in this apply (`effects.finished`, walked as a work list)
//!   decides its waiting dependents: the last parent to succeed releases one (pending, or
//!   scheduled if its ETA is ahead, with the header `flotilla-parent-results`); a parent dead or
//!   cancelled cancels it with the reason; an error callback is released by the first failure
//!   and cancelled when every parent succeeded. A waiting task is cancelled by `Cancel` and
//!   `PurgeQueue` like a scheduled one. A workflow's record goes with its last purged task.
//! - **Attempt histories** (`state/attempts.rs`): nothing until `RecordAttempts` is applied;
//!   from then on each grant opens an entry in its task's history (attempt, holder, time) and
//!   the attempt's end closes it (completion, expiry, release, revoke), the last 16 kept,
//!   dropped with the task.
//! - **Final** tasks (`Succeeded`/`Dead`/`Cancelled`) keep their record and result until
//!   `now >= finished_at + result_ttl_ms`, then they are purged entirely.
//! - `TaskView::updated_ms` is the time of the last state change (a heartbeat is not one).
//! - [`ApplyEffects::finished`] lists every task that reached a final state in this apply;
//!   [`ApplyEffects::became_pending`] counts tasks that became `Pending` (new submits, ETA or
//!   retry coming due, backoff 0, lease expiry, release) plus, since its purpose is to wake idle
//!   workers, the pending tasks of a queue that is un-paused.
//! - If a task's attempt counter would overflow `u32` (four billion leases), leasing it makes it
//!   `Dead` instead, so a fencing token is never repeated.
//!
//! # Layout
//!
//! This file keeps the semantics above, [`QueueState`] and `apply` (time, timers, dispatch),
//! and the commands that are not about leases (submit, cancel, node ids; purge and pause in
//! `queues.rs`). The
//! rest sits in `state/`, one concern per file:
//!
//! - `task.rs`: the task record. Names and the rarely varied options (retries, backoff, result
//!   TTL, time limit) are interned slot numbers; the idempotency key is stored once, in front
//!   of the args in one allocation.
//! - `table.rs`: tasks by id, a ring over the recent ids (ids are sequential) with long-lived
//!   older tasks moved to a side `BTreeMap` by a fixed rule, so one old task cannot pin the ring.
//!   The ring is `Arc` chunks of 1,024 slots, copied on write, so a clone costs O(chunks).
//! - `frozen.rs`: [`QueueState::freeze`], the snapshot's view of the state, taken between two
//!   applies at O(chunks) (the table shared, the key index and timers left out and rebuilt).
//! - `interner.rs`: reference-counted interning of names and options, slots recycled through a
//!   free list.
//! - `index.rs`: everything derived from the table that `apply` searches. Each non-pending
//!   task has exactly one entry in a single timer set keyed `(due, id)` (ETA/retry time, lease
//!   deadline, or purge time of a final task); pending tasks sit instead in their queue's
//!   `Pending` set (`pending.rs`: `(Reverse(priority), id)` order, as 64-id bitmaps), and each
//!   queue counts its tasks per state. `Index::set_state` is the one way a task changes state.
//!   A queue disappears when it holds no task and is not paused.
//! - `key_index.rs`: idempotency key → task, a hash table of task ids that reads the keys from
//!   the tasks: the one randomly keyed structure, never iterated nor serialized (rebuilt on load).
//! - `lease.rs`: the lease rules (lease, complete, heartbeat, release, release pool, expiry,
//!   retries), all fenced by the one lease check `(task, attempt)`.
//! - `standing.rs`: idle pools' standing capacity and granting to it.
//! - `tokens.rs`: API tokens (role, hash of the secret, expiry), checked by `grpc/auth.rs`.
//! - `catalog.rs`: the task catalogue (declared task names, their declarers and default
//!   queues), checked by `grpc/queue_service.rs`.
//! - `extras.rs`: what few tasks carry, beside the table: submit headers, latest progress.
//! - `reads.rs`: the reads (a task's view, counts per queue, the next deadline, the tables).
//! - `listing.rs`: finding tasks (`ListTasks`: a page walks the ids down from a cursor, under a
//!   scan budget) and one task's detail (`DescribeTask`).
//! - `operator.rs`: an operator's `Retry` and `Revoke`.
//! - `schedule.rs`: periodic schedules, their firing; `schedule/slots.rs` the slot arithmetic
//!   (cron with croner, time zones and the DST rule with jiff).
//! - `deps.rs` (and `deps/`: submit, resolve, view, check): tasks waiting for parents,
//!   workflows, and their rules.
//! - `attempts.rs`: each task's last 16 attempts (holder, when, how it ended), recorded once
//!   `RecordAttempts` was applied; `attempts/cow.rs` keeps them in `Arc` chunks of 1,024 ids,
//!   so the freeze shares them like the task table.
//! - `invariants.rs`: [`QueueState::check_invariants`], that the table and every index agree.
//! - `format.rs`: the serialized form (format version 11: everything as held, except the key
//!   index; 9 and 7 are reserved slots, 8 adds flow control, 10 the workflows, 11 the attempt
//!   histories; version 5 is the same without the schedules, version 4 also without the extras,
//!   version 3 also without the catalogue,
//!   version 2 also without the token table); `v1.rs` converts snapshots of format version 1.

use std::collections::BTreeMap;

use super::command::*;
use index::Index;
use index::QueueData;
use index::STATES;
use index::To;
use index::queue_name;
use interner::Interner;
use key_index::KeyIndex;
use pending::Pending;
use table::Table;
use task::Output;
use task::Task;
use task::TaskOptions;

mod attempts;
mod catalog;
mod deps;
mod extras;
mod format;
mod frozen;
mod index;
mod interner;
mod invariants;
mod key_index;
mod lanes;
mod lease;
mod limits;
mod listing;
mod operator;
mod pending;
#[cfg(test)]
mod proptests;
mod queues;
mod reads;
pub mod schedule;
mod seen;
mod standing;
mod table;
mod task;
#[cfg(test)]
mod tests;
mod tokens;
mod v1;

pub use attempts::Attempts;
pub use catalog::Catalog;
pub use deps::Deps;
pub use extras::Extras;
pub use extras::Progress;
pub use format::InFormat;
pub use format::NEWEST_FORMAT as NEWEST_SNAPSHOT_FORMAT;
pub use format::ReadFormat;
pub use frozen::Frozen;
pub use lease::ATTEMPTS_EXHAUSTED_ERROR;
pub use lease::LEASE_EXPIRED_ERROR;
pub use listing::MAX_PAGE_SIZE;
pub use listing::TaskDetail;
pub use listing::TaskFilter;
pub use listing::TaskPage;
pub use operator::REVOKED_ERROR;
pub use reads::PoolHolding;
pub use schedule::Schedules;
pub use seen::Change;
pub use seen::SeenChange;
pub use seen::Why;
pub use standing::PoolEffects;
pub use tokens::TokenRecord;
pub use tokens::Tokens;
pub use v1::QueueStateV1;
#[cfg(test)]
pub(crate) use v1::downgrade as downgrade_to_v1;

/// What applying an entry did that the node (not the replicated state) wants to know: which
/// tasks reached a final state (to answer waiting clients) and whether new work became
/// leasable (to wake idle workers).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyEffects {
    /// Tasks that reached a final state during this apply, in order.
    pub finished: Vec<TaskId>,
    /// Tasks that became pending (leasable) during this apply and were not granted to standing
    /// capacity in it.
    pub became_pending: u64,
    /// Per pool name: tasks granted to its standing capacity, its ticketed leases applied,
    /// its standing capacity after the apply. Only pools this apply touched.
    pub pools: BTreeMap<String, PoolEffects>,
}

/// The whole replicated queue.
#[derive(Clone, Debug)]
pub struct QueueState {
    now_ms: UnixMs,
    next_id: TaskId,
    tasks: Table<Task>,
    /// Idempotency key → the live task that claimed it. Derived from `tasks`: not serialized.
    idempotency: KeyIndex,
    task_names: Interner<Box<str>>,
    idx: Index,
    /// Next id `AllocateNodeId` hands out; the founding node is 1.
    next_node_id: u64,
    /// Idle pools' standing capacity (see [`standing`]).
    standing: standing::Standing,
    /// API tokens (see [`tokens`]).
    tokens: tokens::Tokens,
    /// Declared task names (see [`catalog`]).
    catalog: Catalog,
    /// Headers and progress of the tasks that have some (see [`extras`]).
    extras: Extras,
    /// Periodic schedules (see [`schedule`]).
    schedules: Schedules,
    /// Tasks waiting for parents, and workflows (see [`deps`]).
    deps: Deps,
    /// The attempt histories of tasks that ran (see [`attempts`]).
    attempts: Attempts,
}

impl Default for QueueState {
    fn default() -> Self {
        Self {
            now_ms: 0,
            next_id: 1,
            tasks: Table::default(),
            idempotency: KeyIndex::default(),
            task_names: Interner::default(),
            idx: Index::default(),
            next_node_id: 2,
            standing: standing::Standing::default(),
            tokens: tokens::Tokens::default(),
            catalog: Catalog::default(),
            extras: Extras::default(),
            schedules: Schedules::default(),
            deps: Deps::default(),
            attempts: Attempts::default(),
        }
    }
}

impl QueueState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Apply one log entry: advance time to `max(now, req.now_ms)` (firing due timers), then
    /// each command in order. Returns one response per command. Never panics on any input.
    pub fn apply(&mut self, req: &Request, effects: &mut ApplyEffects) -> Vec<Response> {
        // Tasks that end tell their waiting dependents (`state/deps.rs`), from here on.
        let mut finished = effects.finished.len();
        self.advance(req.now_ms, effects);
        self.resolve_deps(&mut finished, effects);
        self.grant_standing(effects);
        req.commands
            .iter()
            .map(|cmd| {
                let pending_before = effects.became_pending;
                let response = self.apply_command(cmd, effects);
                self.resolve_deps(&mut finished, effects);
                // Tasks a limit let go count as pending again (`state/limits.rs`).
                effects.became_pending += self.idx.flow.take_woke();
                self.after_command(cmd, pending_before, effects);
                response
            })
            .collect()
    }

    /// After each command: grant to standing capacity where the command may have made a task
    /// pending (`became_pending` moved from `pending_before`) or changed what stands.
    fn after_command(&mut self, cmd: &Command, pending_before: u64, effects: &mut ApplyEffects) {
        let may_grant = effects.became_pending != pending_before
            || matches!(
                cmd,
                Command::PauseQueue { .. }
                    | Command::Lease {
                        standing_ticket: Some(_),
                        ..
                    }
            );
        if may_grant {
            self.grant_standing(effects);
        }
    }

    /// Move the clock forward to `to` (never back) and fire every timer due by then.
    fn advance(&mut self, to: UnixMs, effects: &mut ApplyEffects) {
        self.now_ms = self.now_ms.max(to);
        self.expire_standing(effects);
        // Each firing moves its task strictly forward in its lifecycle (Leased → Retrying/Pending/
        // Dead, Scheduled/Retrying → Pending, final → gone), so this loop ends even if new timers
        // are already due.
        while let Some(&(due, id)) = self.timers_first() {
            if due > self.now_ms {
                break;
            }
            if due == deps::WAITING_MS && self.deps.waiting_count() > 0 {
                // The end of time: a waiting task's timer never comes due (`state/deps.rs`),
                // every other one does.
                self.fire_at_end_of_time(effects);
                break;
            }
            self.idx.timers.pop_first();
            self.fire(id, effects);
        }
        self.fire_schedules(effects);
        self.idx.fire_wakes(self.now_ms);
        effects.became_pending += self.idx.flow.take_woke();
    }

    /// Fire every timer at [`deps::WAITING_MS`] except waiting tasks'. Each firing moves its
    /// task forward (it may set another timer there, a final task's purge), hence the loop.
    fn fire_at_end_of_time(&mut self, effects: &mut ApplyEffects) {
        loop {
            let due: Vec<TaskId> = self
                .idx
                .timers
                .range((deps::WAITING_MS, 0)..)
                .map(|(_, id)| *id)
                .filter(|id| !self.is_waiting(*id))
                .collect();
            if due.is_empty() {
                return;
            }
            for id in due {
                self.idx.timers.remove(&(deps::WAITING_MS, id));
                self.fire(id, effects);
            }
        }
    }

    fn timers_first(&self) -> Option<&(UnixMs, TaskId)> {
        self.idx.timers.first()
    }

    fn fire(&mut self, id: TaskId, effects: &mut ApplyEffects) {
        let now = self.now_ms;
        let Some(t) = self.tasks.get_mut(id) else { return };
        match t.state {
            TaskState::Scheduled | TaskState::Retrying => {
                self.idx.set_state(id, t, To::Pending, now);
                effects.became_pending += 1;
            }
            TaskState::Leased => {
                let lost = LeaseRef {
                    task: id,
                    attempt: t.attempt,
                };
                self.attempts.end(lost, AttemptEnd::LostLease, now);
                lease::expire(&mut self.idx, id, t, now, effects);
            }
            TaskState::Succeeded | TaskState::Dead | TaskState::Cancelled => self.purge(id),
            TaskState::Pending => {}
        }
    }

    /// Forget a task entirely (its result TTL ran out).
    fn purge(&mut self, id: TaskId) {
        let Some(t) = self.tasks.remove(id) else { return };
        self.idx.unlink(id, &t);
        self.idx.release_queue(t.queue);
        self.idx.options.release(t.options);
        if self.task_names.release(t.name) {
            self.idx.flow.limited_names.remove(&t.name);
        }
        self.idx.flow.lanes.detach_key(id);
        self.extras.remove(id);
        self.deps.purged(id);
        self.attempts.remove(id);
        if let Some(key) = t.idempotency_key() {
            self.idempotency.remove(key, id);
        }
    }

    fn apply_command(&mut self, cmd: &Command, effects: &mut ApplyEffects) -> Response {
        match cmd {
            Command::Submit { tasks } => {
                Response::Submitted(tasks.iter().map(|spec| self.submit(spec, effects)).collect())
            }
            Command::Lease {
                pool,
                queues,
                max,
                lease_ms,
                standing_ticket,
            } => {
                let grants = self.lease(pool, queues, *max, *lease_ms, effects);
                if let Some(ticket) = standing_ticket {
                    let granted = u32::try_from(grants.len()).unwrap_or(u32::MAX);
                    self.stand(pool, queues, (*max, granted), *lease_ms, *ticket, effects);
                }
                Response::Leased(grants)
            }
            Command::Complete { pool: _, completions } => {
                Response::Completed(completions.iter().map(|c| self.complete(c, effects)).collect())
            }
            Command::Heartbeat {
                pool: _,
                leases,
                lease_ms,
            } => Response::Heartbeated(leases.iter().map(|l| self.heartbeat(*l, *lease_ms)).collect()),
            Command::Release { pool: _, leases } => {
                Response::Released(leases.iter().map(|l| self.release(*l, effects)).collect())
            }
            Command::ReleasePool { pool } => {
                self.clear_standing(pool, effects);
                Response::ReleasedPool(self.release_pool(pool, effects))
            }
            Command::ClearStanding { pool } => Response::ClearedStanding(self.clear_standing(pool, effects)),
            Command::Cancel { ids } => {
                Response::Cancelled(ids.iter().map(|id| self.cancel(*id, effects)).collect())
            }
            Command::Tick => Response::Ticked,
            Command::PurgeQueue { queue } => Response::Purged(self.purge_queue(queue, effects)),
            Command::AllocateNodeId => {
                let id = self.next_node_id;
                self.next_node_id = self.next_node_id.saturating_add(1);
                Response::NodeId(id)
            }
            Command::PauseQueue { queue, paused } => {
                self.pause_queue(queue, *paused, effects);
                Response::Paused
            }
            Command::CreateToken {
                role,
                hash,
                label,
                ttl_ms,
            } => Response::TokenCreated(self.tokens.create(*role, *hash, label, *ttl_ms, self.now_ms)),
            Command::RevokeToken { id } => Response::TokenRevoked(self.tokens.revoke(*id)),
            Command::DeclareTasks { declarer, tasks } => {
                Response::TasksDeclared(self.catalog.declare(declarer, tasks))
            }
            Command::Progress { reports } => {
                Response::Progressed(reports.iter().map(|r| self.progress(r.lease, &r.data)).collect())
            }
            Command::AddSchedule { schedule, replace } => {
                Response::ScheduleAdded(self.schedules.add(schedule, *replace, self.now_ms))
            }
            Command::RemoveSchedule { name } => Response::ScheduleRemoved(self.schedules.remove(name)),
            Command::PauseSchedule { name, paused } => {
                Response::SchedulePaused(self.schedules.pause(name, *paused, self.now_ms))
            }
            Command::SetLimit { scope, rule } => Response::LimitSet(self.set_limit(scope, rule)),
            Command::RemoveLimit { scope } => Response::LimitRemoved(self.remove_limit(scope)),
            Command::Retry { ids } => {
                Response::Retried(ids.iter().map(|id| self.retry(*id, effects)).collect())
            }
            Command::Revoke { ids, reason } => {
                Response::Revoked(ids.iter().map(|id| self.revoke(*id, reason, effects)).collect())
            }
            Command::SubmitWorkflow { workflow } => {
                Response::WorkflowSubmitted(self.submit_workflow(workflow, effects))
            }
            Command::RecordAttempts => Response::RecordingAttempts(self.attempts.switch_on()),
        }
    }

    fn submit(&mut self, spec: &TaskSpec, effects: &mut ApplyEffects) -> Submitted {
        self.submit_task(spec, false, effects)
    }

    /// Submit one task; `waiting`: it waits for parents (`state/deps.rs` keeps what for), so
    /// it is created `Scheduled` with a timer that never comes due.
    fn submit_task(&mut self, spec: &TaskSpec, waiting: bool, effects: &mut ApplyEffects) -> Submitted {
        if let Some(key) = &spec.idempotency_key
            && let Some(id) = self.idempotency.get(&self.tasks, key.as_bytes())
        {
            return Submitted { id, duplicate: true };
        }
        let now = self.now_ms;
        // Unreachable in practice (2^64 submits); saturating keeps apply total.
        let id = self.next_id;
        self.next_id = self.next_id.saturating_add(1);
        let due = spec
            .eta_ms
            .unwrap_or(0)
            .max(spec.countdown_ms.map_or(0, |c| now.saturating_add(c)));
        let (state, timer_ms) = if waiting {
            (TaskState::Scheduled, deps::WAITING_MS)
        } else if due > now {
            (TaskState::Scheduled, due)
        } else {
            (TaskState::Pending, 0)
        };
        let key = spec.idempotency_key.as_deref().unwrap_or_default().as_bytes();
        let options = TaskOptions {
            max_retries: spec.max_retries,
            backoff_ms: spec.backoff_ms,
            result_ttl_ms: spec.result_ttl_ms,
            time_limit_ms: spec.time_limit_ms,
        };
        let name = self.task_names.acquire(spec.name.as_str());
        self.mark_name(name, &spec.name);
        if let Some(key) = &spec.concurrency_key {
            self.idx.flow.lanes.attach_key(id, key);
        }
        let task = Task {
            data: Task::pack(key, &spec.args),
            output: None,
            created_ms: now,
            updated_ms: now,
            timer_ms,
            name,
            queue: self.idx.acquire_queue(queue_name(&spec.queue)),
            options: self.idx.options.acquire(&options),
            pool: 0,
            attempt: 0,
            failures: 0,
            // A key can't reach 4 GiB: a log entry is smaller.
            key_len: u32::try_from(key.len()).unwrap_or(u32::MAX),
            lost_leases: 0,
            priority: spec.priority,
            state,
            keyed: spec.idempotency_key.is_some(),
        };
        self.idx.link(id, &task);
        let of = || task.seen_as(id);
        self.idx
            .seen
            .record(of, None, state, seen::Why::Plain, (now, now));
        self.extras.set_headers(id, &spec.headers);
        let keyed = task.keyed;
        self.tasks.insert(id, task);
        if keyed {
            self.idempotency.insert(&self.tasks, key, id);
        }
        if state == TaskState::Pending {
            effects.became_pending += 1;
        }
        Submitted { id, duplicate: false }
    }

    fn cancel(&mut self, id: TaskId, effects: &mut ApplyEffects) -> bool {
        let now = self.now_ms;
        let Some(t) = self.tasks.get_mut(id) else {
            return false;
        };
        if !matches!(
            t.state,
            TaskState::Scheduled | TaskState::Pending | TaskState::Retrying
        ) {
            return false;
        }
        self.idx.set_state(id, t, To::Final(TaskState::Cancelled), now);
        effects.finished.push(id);
        true
    }
}
