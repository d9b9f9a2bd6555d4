//! [`QueueState`]: the replicated task queue as a pure, deterministic state machine.
//!
//! Every replica applies the same [`Request`]s in the same order and so holds the same state and
//! serializes it to the same bytes. Hence: ordered containers only, no wall clock, no RNG, and
//! `apply` is total (it never panics and never fails; problems are reported in responses).
//!
//! # Semantics
//!
//! - **Time.** `apply` first sets `now = max(now, req.now_ms)` (time never runs backwards) and
//!   fires every timer with `due <= now`, then applies the commands in order, all at that same
//!   `now`. Timers created by a command with `due <= now` (a `lease_ms` of 0, a result TTL of 0)
//!   fire at the start of the next apply, not between commands of the same entry. All time
//!   arithmetic saturates.
//! - **Ids** are sequential from 1 and never reused.
//! - **Submit.** An empty queue name means [`DEFAULT_QUEUE`]. `due = max(eta_ms, now +
//!   countdown_ms)` (absent = 0); `due > now` makes the task `Scheduled`, otherwise `Pending`. An
//!   idempotency key that maps to an existing task returns `{id: existing, duplicate: true}` and
//!   creates nothing, also within one batch. The key is forgotten when its task is purged.
//! - **Lease** takes up to `max` pending tasks from the listed queues in the given order (an
//!   empty list means every queue in name order; an empty name means the default queue),
//!   skipping paused and unknown queues. Within a queue: highest priority first, then FIFO by id.
//!   Each grant increments the task's `attempt`: attempts are never reused or decremented, they
//!   are the fencing tokens. The lease runs until `now + lease_ms`.
//! - **Complete.** Accepted only if the task is `Leased` with exactly that attempt; otherwise it
//!   is `Stale` and changes nothing (the first valid completion wins). The worker name is not
//!   part of the fence. `Success` → `Succeeded` with the result. `Failure{retry: true}` counts a
//!   failure (failures are counted apart from attempts); while `failures <= max_retries` the task
//!   waits `min(backoff_ms * 2^(failures-1), MAX_BACKOFF_MS)` in `Retrying` (a `backoff_ms` of 0
//!   goes straight to `Pending`), else it is `Dead`. `Failure{retry: false}` is `Dead` at once.
//!   The last error is kept; a success clears it (the view shows either result or error).
//! - **Heartbeat** sets a matching lease's deadline to `now + lease_ms`.
//! - **Release** puts a matching lease back to `Pending` without counting a failure. Its attempt
//!   number stays consumed: the next lease gets `attempt + 1`.
//! - **Lease expiry** (`deadline <= now`: the worker died or was cut off) puts the task back to
//!   `Pending` with error `"lease expired (worker lost)"`, without using up a retry: a node crash
//!   must not cost a task one of its `max_retries`. Lost leases are counted on their own; the
//!   [`MAX_LOST_LEASES`]-th makes the task `Dead`, so a task that keeps killing its workers
//!   does not run forever.
//! - **Standing capacity** (`state/standing.rs`). A `Lease` with a `standing_ticket` leaves
//!   `max − granted` as the worker's standing capacity, added to what it had, and renews all of
//!   it until `now + lease_ms` (a `max` of 0 only renews). It is dropped at the start of the
//!   first apply with `now >= expiry`, before timers fire. Whenever a task may have become
//!   pending (after the advance; after any command that made one pending, un-paused a queue or
//!   stood), pending tasks are granted to standing capacity one at a time: the covering worker
//!   granted to least recently (ties: name order) takes exactly the task its own `Lease { max:
//!   1, lease_ms }` would take then (its queues in order, priority, id), as an ordinary lease.
//!   Such tasks are not counted in `became_pending`; the grants are reported per worker in
//!   [`ApplyEffects::workers`]. Invariant: no standing capacity covers a pending task of an
//!   unpaused queue. `ClearStanding` drops a worker's standing capacity; so does `ReleaseWorker`
//!   (first, so the tasks it releases go to other workers' standing capacity, not back).
//! - **ReleaseWorker** releases every lease held by the named worker (a pool that restarted
//!   under the same name): those tasks are pending again at once, nothing counted. It scans the
//!   timer set, which is fine for a command proposed once per pool start.
//! - **Cancel** turns `Scheduled`/`Pending`/`Retrying` into `Cancelled`; a leased, final or
//!   unknown task answers `false`. **PurgeQueue** cancels every scheduled, pending and retrying
//!   task of the queue and returns how many. **PauseQueue** makes `Lease` skip the queue.
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
//! Tasks live in one `BTreeMap` by id. Each non-pending task has exactly one entry in a single
//! timer set keyed `(due, id)`: the ETA/retry time, the lease deadline, or the purge time of a
//! final task. Pending tasks instead sit in their queue's index keyed `(Reverse(priority), id)`.
//! Task, queue and worker names are interned (reference-counted, slots recycled through a free
//! list) so a task holds small integers instead of strings; a queue disappears when it holds no
//! task and is not paused. Everything is serialized as is (no derived state is rebuilt on load),
//! and [`QueueState::check_invariants`] verifies that the indexes agree with the task table.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::collections::BTreeSet;

use bytes::Bytes;
use serde::Deserialize;
use serde::Serialize;

use super::command::*;

#[cfg(test)]
mod proptests;
mod standing;
#[cfg(test)]
mod tests;

pub use standing::WorkerEffects;

/// Error recorded when a lease runs out.
pub const LEASE_EXPIRED_ERROR: &str = "lease expired (worker lost)";
/// Error recorded when a task's attempt counter is exhausted.
pub const ATTEMPTS_EXHAUSTED_ERROR: &str = "attempt counter exhausted";

const STATES: usize = 7;

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
    /// Per worker name: tasks granted to its standing capacity, its ticketed leases applied,
    /// its standing capacity after the apply. Only workers this apply touched.
    pub workers: BTreeMap<String, WorkerEffects>,
}

/// The whole replicated queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueState {
    now_ms: UnixMs,
    next_id: TaskId,
    tasks: BTreeMap<TaskId, Task>,
    /// Idempotency key → the live task that claimed it.
    idempotency: BTreeMap<Box<str>, TaskId>,
    task_names: Interner,
    idx: Index,
    /// Next id `AllocateNodeId` hands out; the founding node is 1.
    next_node_id: u64,
    /// Idle pools' standing capacity (see [`standing`]).
    standing: standing::Standing,
}

impl Default for QueueState {
    fn default() -> Self {
        Self {
            now_ms: 0,
            next_id: 1,
            tasks: BTreeMap::new(),
            idempotency: BTreeMap::new(),
            task_names: Interner::default(),
            idx: Index::default(),
            next_node_id: 2,
            standing: standing::Standing::default(),
        }
    }
}

/// One task. Kept compact because a queue can hold millions: names are interned ids, fields
/// a pending task rarely has live behind one optional box, and `timer_ms` is the one time that
/// matters in the current state (ETA, retry time, lease deadline, or purge time once final).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Task {
    args: Bytes,
    /// `Some` iff there is an idempotency key or an output.
    extra: Option<Box<Extra>>,
    /// Meaningful only if `has_time_limit` (an `Option<u64>` would cost 8 more bytes).
    time_limit_ms: u64,
    created_ms: UnixMs,
    updated_ms: UnixMs,
    /// 0 while pending (pending tasks have no timer).
    timer_ms: UnixMs,
    backoff_ms: u64,
    result_ttl_ms: u64,
    name: u32,
    queue: u32,
    /// Worker slot while leased, 0 otherwise.
    worker: u32,
    attempt: u32,
    failures: u32,
    max_retries: u32,
    /// Leases that expired (worker lost); see [`MAX_LOST_LEASES`].
    lost_leases: u8,
    priority: u8,
    state: TaskState,
    has_time_limit: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Extra {
    idempotency_key: Option<Box<str>>,
    output: Output,
}

impl Task {
    fn output(&self) -> &Output {
        self.extra.as_ref().map_or(&Output::None, |e| &e.output)
    }

    fn set_output(&mut self, output: Output) {
        match &mut self.extra {
            Some(e) => e.output = output,
            None => {
                self.extra = Some(Box::new(Extra {
                    idempotency_key: None,
                    output,
                }))
            }
        }
    }

    fn idempotency_key(&self) -> Option<&str> {
        self.extra.as_ref().and_then(|e| e.idempotency_key.as_deref())
    }

    fn time_limit_ms(&self) -> Option<u64> {
        self.has_time_limit.then_some(self.time_limit_ms)
    }
}

/// The result or the last error: a task shows one or the other, never both.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Output {
    None,
    Result(Bytes),
    Error(Box<str>),
}

/// Reference-counted string interning. Freed slots are recycled (LIFO), which is deterministic.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Interner {
    ids: BTreeMap<Box<str>, u32>,
    slots: Vec<Slot>,
    free: Vec<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Slot {
    name: Box<str>,
    refs: u64,
}

impl Interner {
    fn get(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    fn name(&self, id: u32) -> &str {
        self.slots.get(id as usize).map_or("", |s| &s.name)
    }

    /// Interns `name` and takes one reference to it.
    fn acquire(&mut self, name: &str) -> u32 {
        if let Some(id) = self.get(name) {
            self.add_ref(id);
            return id;
        }
        let slot = Slot {
            name: name.into(),
            refs: 1,
        };
        let id = match self.free.pop() {
            Some(id) if (id as usize) < self.slots.len() => {
                self.slots[id as usize] = slot;
                id
            }
            _ => {
                self.slots.push(slot);
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.ids.insert(name.into(), id);
        id
    }

    fn add_ref(&mut self, id: u32) {
        if let Some(s) = self.slots.get_mut(id as usize) {
            s.refs = s.refs.saturating_add(1);
        }
    }

    /// Drops one reference; returns true if that freed the slot.
    fn release(&mut self, id: u32) -> bool {
        let Some(s) = self.slots.get_mut(id as usize) else {
            return false;
        };
        if s.refs == 0 {
            return false;
        }
        s.refs -= 1;
        if s.refs > 0 {
            return false;
        }
        let name = std::mem::take(&mut s.name);
        self.ids.remove(&name);
        self.free.push(id);
        true
    }

    /// `expected`: slot → number of references the owner holds.
    fn check(&self, what: &str, expected: &BTreeMap<u32, u64>) -> Result<(), String> {
        let mut live = 0usize;
        for (id, slot) in self.slots.iter().enumerate() {
            let id = id as u32;
            let want = expected.get(&id).copied().unwrap_or(0);
            if slot.refs != want {
                return Err(format!(
                    "{what} slot {id} ({:?}) has {} refs, expected {want}",
                    slot.name, slot.refs
                ));
            }
            if slot.refs > 0 {
                live += 1;
                if self.get(&slot.name) != Some(id) {
                    return Err(format!(
                        "{what} slot {id} ({:?}) missing from the name map",
                        slot.name
                    ));
                }
            } else if !slot.name.is_empty() || !self.free.contains(&id) {
                return Err(format!("{what} slot {id} is dead but not cleared and free"));
            }
        }
        if let Some(id) = expected.keys().find(|id| **id as usize >= self.slots.len()) {
            return Err(format!("{what} slot {id} referenced but does not exist"));
        }
        if self.ids.len() != live || self.free.len() + live != self.slots.len() {
            return Err(format!("{what} name map or free list out of sync with slots"));
        }
        Ok(())
    }
}

/// Per-queue data. Lives in [`Index::queues`] at the queue name's interner slot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct QueueData {
    pending: BTreeSet<(Reverse<u8>, TaskId)>,
    /// Tasks of this queue by `TaskState as usize`.
    counts: [u64; STATES],
    paused: bool,
}

/// Everything derived from the task table. Kept apart from `tasks` so a `&mut Task` borrowed
/// from the table and `&mut Index` can be used together.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Index {
    /// A queue's refs = its tasks + 1 if paused.
    queue_names: Interner,
    queues: Vec<QueueData>,
    /// A worker's refs = the tasks it holds leased.
    workers: Interner,
    /// `(timer_ms, id)` of every task that is not pending.
    timers: BTreeSet<(UnixMs, TaskId)>,
}

impl Index {
    fn acquire_queue(&mut self, name: &str) -> u32 {
        let q = self.queue_names.acquire(name);
        if self.queues.len() <= q as usize {
            self.queues.resize_with(q as usize + 1, QueueData::default);
        }
        q
    }

    fn release_queue(&mut self, q: u32) {
        if self.queue_names.release(q)
            && let Some(data) = self.queues.get_mut(q as usize)
        {
            *data = QueueData::default();
        }
    }

    /// Add a task (in its current state) to the indexes.
    fn link(&mut self, id: TaskId, t: &Task) {
        if let Some(q) = self.queues.get_mut(t.queue as usize) {
            let c = &mut q.counts[t.state as usize];
            *c = c.saturating_add(1);
            if t.state == TaskState::Pending {
                q.pending.insert((Reverse(t.priority), id));
            }
        }
        if t.state != TaskState::Pending {
            self.timers.insert((t.timer_ms, id));
        }
        if t.state == TaskState::Leased {
            self.workers.add_ref(t.worker);
        }
    }

    /// Remove a task (in its current state) from the indexes.
    fn unlink(&mut self, id: TaskId, t: &Task) {
        if let Some(q) = self.queues.get_mut(t.queue as usize) {
            let c = &mut q.counts[t.state as usize];
            *c = c.saturating_sub(1);
            if t.state == TaskState::Pending {
                q.pending.remove(&(Reverse(t.priority), id));
            }
        }
        if t.state != TaskState::Pending {
            self.timers.remove(&(t.timer_ms, id));
        }
        if t.state == TaskState::Leased {
            self.workers.release(t.worker);
        }
    }

    /// The one way a live task changes state: unlink, update, relink.
    fn set_state(&mut self, id: TaskId, t: &mut Task, to: To, now: UnixMs) {
        self.unlink(id, t);
        (t.state, t.timer_ms, t.worker) = match to {
            To::Pending => (TaskState::Pending, 0, 0),
            To::Leased { worker, deadline } => (TaskState::Leased, deadline, worker),
            To::Retrying { due } => (TaskState::Retrying, due, 0),
            To::Final(state) => (state, now.saturating_add(t.result_ttl_ms), 0),
        };
        t.updated_ms = now;
        self.link(id, t);
    }

    /// Queue slots a lease (or `leasable`) draws from, in order: unknown and paused ones skipped.
    fn lease_order(&self, queues: &[String]) -> Vec<u32> {
        let ids: Vec<u32> = if queues.is_empty() {
            self.queue_names.ids.values().copied().collect()
        } else {
            queues
                .iter()
                .filter_map(|n| self.queue_names.get(queue_name(n)))
                .collect()
        };
        ids.into_iter()
            .filter(|q| self.queues.get(*q as usize).is_some_and(|d| !d.paused))
            .collect()
    }
}

/// Target of [`Index::set_state`].
#[derive(Clone, Copy)]
enum To {
    Pending,
    Leased { worker: u32, deadline: UnixMs },
    Retrying { due: UnixMs },
    Final(TaskState),
}

fn queue_name(name: &str) -> &str {
    if name.is_empty() { DEFAULT_QUEUE } else { name }
}

/// Delay before retry number `failures` (≥ 1): `backoff_ms * 2^(failures-1)`, capped.
fn backoff_delay(backoff_ms: u64, failures: u32) -> u64 {
    let exp = failures.saturating_sub(1).min(63);
    backoff_ms.saturating_mul(1u64 << exp).min(MAX_BACKOFF_MS)
}

/// Record a failed attempt and move the task on by the retry rules.
fn fail(
    idx: &mut Index,
    id: TaskId,
    t: &mut Task,
    error: &str,
    retry: bool,
    now: UnixMs,
    effects: &mut ApplyEffects,
) {
    t.failures = t.failures.saturating_add(1);
    t.set_output(Output::Error(error.into()));
    if retry && t.failures <= t.max_retries {
        if t.backoff_ms == 0 {
            idx.set_state(id, t, To::Pending, now);
            effects.became_pending += 1;
        } else {
            let due = now.saturating_add(backoff_delay(t.backoff_ms, t.failures));
            idx.set_state(id, t, To::Retrying { due }, now);
        }
    } else {
        idx.set_state(id, t, To::Final(TaskState::Dead), now);
        effects.finished.push(id);
    }
}

impl QueueState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Apply one log entry: advance time to `max(now, req.now_ms)` (firing due timers), then
    /// each command in order. Returns one response per command. Never panics on any input.
    pub fn apply(&mut self, req: &Request, effects: &mut ApplyEffects) -> Vec<Response> {
        self.advance(req.now_ms, effects);
        self.grant_standing(effects);
        req.commands
            .iter()
            .map(|cmd| {
                let pending_before = effects.became_pending;
                let response = self.apply_command(cmd, effects);
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
            self.idx.timers.pop_first();
            self.fire(id, effects);
        }
    }

    fn timers_first(&self) -> Option<&(UnixMs, TaskId)> {
        self.idx.timers.first()
    }

    fn fire(&mut self, id: TaskId, effects: &mut ApplyEffects) {
        let now = self.now_ms;
        let Some(t) = self.tasks.get_mut(&id) else { return };
        match t.state {
            TaskState::Scheduled | TaskState::Retrying => {
                self.idx.set_state(id, t, To::Pending, now);
                effects.became_pending += 1;
            }
            TaskState::Leased => {
                t.lost_leases = t.lost_leases.saturating_add(1);
                t.set_output(Output::Error(LEASE_EXPIRED_ERROR.into()));
                if t.lost_leases >= MAX_LOST_LEASES {
                    self.idx.set_state(id, t, To::Final(TaskState::Dead), now);
                    effects.finished.push(id);
                } else {
                    self.idx.set_state(id, t, To::Pending, now);
                    effects.became_pending += 1;
                }
            }
            TaskState::Succeeded | TaskState::Dead | TaskState::Cancelled => self.purge(id),
            TaskState::Pending => {}
        }
    }

    /// Forget a task entirely (its result TTL ran out).
    fn purge(&mut self, id: TaskId) {
        let Some(t) = self.tasks.remove(&id) else { return };
        self.idx.unlink(id, &t);
        self.idx.release_queue(t.queue);
        self.task_names.release(t.name);
        if let Some(key) = t.idempotency_key()
            && self.idempotency.get(key) == Some(&id)
        {
            self.idempotency.remove(key);
        }
    }

    fn apply_command(&mut self, cmd: &Command, effects: &mut ApplyEffects) -> Response {
        match cmd {
            Command::Submit { tasks } => {
                Response::Submitted(tasks.iter().map(|spec| self.submit(spec, effects)).collect())
            }
            Command::Lease {
                worker,
                queues,
                max,
                lease_ms,
                standing_ticket,
            } => {
                let grants = self.lease(worker, queues, *max, *lease_ms, effects);
                if let Some(ticket) = standing_ticket {
                    let granted = u32::try_from(grants.len()).unwrap_or(u32::MAX);
                    self.stand(worker, queues, (*max, granted), *lease_ms, *ticket, effects);
                }
                Response::Leased(grants)
            }
            Command::Complete {
                worker: _,
                completions,
            } => Response::Completed(completions.iter().map(|c| self.complete(c, effects)).collect()),
            Command::Heartbeat {
                worker: _,
                leases,
                lease_ms,
            } => Response::Heartbeated(leases.iter().map(|l| self.heartbeat(*l, *lease_ms)).collect()),
            Command::Release { worker: _, leases } => {
                Response::Released(leases.iter().map(|l| self.release(*l, effects)).collect())
            }
            Command::ReleaseWorker { worker } => {
                self.clear_standing(worker, effects);
                Response::ReleasedWorker(self.release_worker(worker, effects))
            }
            Command::ClearStanding { worker } => {
                Response::ClearedStanding(self.clear_standing(worker, effects))
            }
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
        }
    }

    fn submit(&mut self, spec: &TaskSpec, effects: &mut ApplyEffects) -> Submitted {
        if let Some(key) = &spec.idempotency_key
            && let Some(&id) = self.idempotency.get(key.as_str())
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
        let (state, timer_ms) = if due > now {
            (TaskState::Scheduled, due)
        } else {
            (TaskState::Pending, 0)
        };
        let task = Task {
            args: spec.args.clone(),
            extra: spec.idempotency_key.as_deref().map(|k| {
                Box::new(Extra {
                    idempotency_key: Some(k.into()),
                    output: Output::None,
                })
            }),
            time_limit_ms: spec.time_limit_ms.unwrap_or(0),
            has_time_limit: spec.time_limit_ms.is_some(),
            created_ms: now,
            updated_ms: now,
            timer_ms,
            backoff_ms: spec.backoff_ms,
            result_ttl_ms: spec.result_ttl_ms,
            name: self.task_names.acquire(&spec.name),
            queue: self.idx.acquire_queue(queue_name(&spec.queue)),
            worker: 0,
            attempt: 0,
            failures: 0,
            lost_leases: 0,
            max_retries: spec.max_retries,
            priority: spec.priority,
            state,
        };
        self.idx.link(id, &task);
        if let Some(key) = task.idempotency_key() {
            self.idempotency.insert(key.into(), id);
        }
        self.tasks.insert(id, task);
        if state == TaskState::Pending {
            effects.became_pending += 1;
        }
        Submitted { id, duplicate: false }
    }

    fn lease(
        &mut self,
        worker: &str,
        queues: &[String],
        max: u32,
        lease_ms: u64,
        effects: &mut ApplyEffects,
    ) -> Vec<Grant> {
        let now = self.now_ms;
        let deadline = now.saturating_add(lease_ms);
        let max = max as usize;
        let mut grants = Vec::new();
        if max == 0 {
            return grants;
        }
        // The worker name is interned once for the whole command, held by `hold` meanwhile.
        let mut hold: Option<u32> = None;
        for q in self.idx.lease_order(queues) {
            while grants.len() < max {
                let Some(&(_, id)) = self.idx.queues.get(q as usize).and_then(|d| d.pending.first()) else {
                    break;
                };
                let Some(t) = self.tasks.get_mut(&id) else {
                    // Cannot happen while the invariants hold; drop the entry so the loop ends.
                    self.idx.queues[q as usize].pending.pop_first();
                    continue;
                };
                if t.attempt == u32::MAX {
                    t.set_output(Output::Error(ATTEMPTS_EXHAUSTED_ERROR.into()));
                    self.idx.set_state(id, t, To::Final(TaskState::Dead), now);
                    effects.finished.push(id);
                    continue;
                }
                let worker = *hold.get_or_insert_with(|| self.idx.workers.acquire(worker));
                t.attempt += 1;
                self.idx.set_state(id, t, To::Leased { worker, deadline }, now);
                grants.push(Grant {
                    lease: LeaseRef {
                        task: id,
                        attempt: t.attempt,
                    },
                    name: self.task_names.name(t.name).to_owned(),
                    queue: self.idx.queue_names.name(q).to_owned(),
                    args: t.args.clone(),
                    time_limit_ms: t.time_limit_ms(),
                    lease_deadline_ms: deadline,
                });
            }
        }
        if let Some(w) = hold {
            self.idx.workers.release(w);
        }
        grants
    }

    fn complete(&mut self, c: &Completion, effects: &mut ApplyEffects) -> CompletionResult {
        let now = self.now_ms;
        let id = c.lease.task;
        let Some(t) = self.tasks.get_mut(&id) else {
            return CompletionResult::Stale;
        };
        // The attempt fence (a deliberate bug switch may drop it, for the simulator to catch).
        let fenced =
            t.attempt == c.lease.attempt || crate::bugs::active(crate::bugs::Bug::AcceptStaleCompletion);
        if t.state != TaskState::Leased || !fenced {
            return CompletionResult::Stale;
        }
        match &c.outcome {
            Outcome::Success(result) => {
                t.set_output(Output::Result(result.clone()));
                self.idx.set_state(id, t, To::Final(TaskState::Succeeded), now);
                effects.finished.push(id);
            }
            Outcome::Failure { error, retry } => fail(&mut self.idx, id, t, error, *retry, now, effects),
        }
        CompletionResult::Accepted
    }

    fn heartbeat(&mut self, lease: LeaseRef, lease_ms: u64) -> bool {
        let deadline = self.now_ms.saturating_add(lease_ms);
        let Some(t) = self.tasks.get_mut(&lease.task) else {
            return false;
        };
        if t.state != TaskState::Leased || t.attempt != lease.attempt {
            return false;
        }
        self.idx.timers.remove(&(t.timer_ms, lease.task));
        t.timer_ms = deadline;
        self.idx.timers.insert((deadline, lease.task));
        true
    }

    fn release(&mut self, lease: LeaseRef, effects: &mut ApplyEffects) -> bool {
        let now = self.now_ms;
        let Some(t) = self.tasks.get_mut(&lease.task) else {
            return false;
        };
        if t.state != TaskState::Leased || t.attempt != lease.attempt {
            return false;
        }
        self.idx.set_state(lease.task, t, To::Pending, now);
        effects.became_pending += 1;
        true
    }

    fn release_worker(&mut self, worker: &str, effects: &mut ApplyEffects) -> u64 {
        let Some(slot) = self.idx.workers.get(worker) else {
            return 0;
        };
        // Leased tasks are indexed only by deadline: scan the timers (once per pool start).
        let leases: Vec<LeaseRef> = self
            .idx
            .timers
            .iter()
            .filter_map(|(_, id)| {
                let t = self.tasks.get(id)?;
                (t.state == TaskState::Leased && t.worker == slot).then_some(LeaseRef {
                    task: *id,
                    attempt: t.attempt,
                })
            })
            .collect();
        leases
            .into_iter()
            .map(|l| u64::from(self.release(l, effects)))
            .sum()
    }

    fn cancel(&mut self, id: TaskId, effects: &mut ApplyEffects) -> bool {
        let now = self.now_ms;
        let Some(t) = self.tasks.get_mut(&id) else {
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

    fn purge_queue(&mut self, queue: &str, effects: &mut ApplyEffects) -> u64 {
        let Some(q) = self.idx.queue_names.get(queue_name(queue)) else {
            return 0;
        };
        let Some(data) = self.idx.queues.get(q as usize) else {
            return 0;
        };
        let mut ids: Vec<TaskId> = data.pending.iter().map(|(_, id)| *id).collect();
        let waiting = data.counts[TaskState::Scheduled as usize] + data.counts[TaskState::Retrying as usize];
        if waiting > 0 {
            // Scheduled and retrying tasks are only indexed by time: scan the timers. Purging a
            // queue is a rare admin action, so O(timers) is acceptable here.
            ids.extend(self.idx.timers.iter().map(|(_, id)| *id).filter(|id| {
                self.tasks.get(id).is_some_and(|t| {
                    t.queue == q && matches!(t.state, TaskState::Scheduled | TaskState::Retrying)
                })
            }));
        }
        ids.sort_unstable();
        ids.into_iter()
            .map(|id| u64::from(self.cancel(id, effects)))
            .sum()
    }

    fn pause_queue(&mut self, queue: &str, paused: bool, effects: &mut ApplyEffects) {
        let name = queue_name(queue);
        let existing = self.idx.queue_names.get(name);
        let is_paused = existing
            .and_then(|q| self.idx.queues.get(q as usize))
            .is_some_and(|d| d.paused);
        if paused == is_paused {
            return;
        }
        if paused {
            // Pausing holds a reference so an empty paused queue keeps existing (and shows in stats).
            let q = self.idx.acquire_queue(name);
            self.idx.queues[q as usize].paused = true;
        } else if let Some(q) = existing {
            let data = &mut self.idx.queues[q as usize];
            data.paused = false;
            effects.became_pending += data.pending.len() as u64;
            self.idx.release_queue(q);
        }
    }

    /// The machine's clock: the largest `now_ms` applied so far.
    pub fn now_ms(&self) -> UnixMs {
        self.now_ms
    }

    /// One task, if it exists (it may have been purged after its result TTL).
    pub fn task(&self, id: TaskId) -> Option<TaskView> {
        let t = self.tasks.get(&id)?;
        Some(TaskView {
            id,
            name: self.task_names.name(t.name).to_owned(),
            queue: self.idx.queue_names.name(t.queue).to_owned(),
            state: t.state,
            attempt: t.attempt,
            max_retries: t.max_retries,
            result: match t.output() {
                Output::Result(b) => Some(b.clone()),
                _ => None,
            },
            error: match t.output() {
                Output::Error(e) => Some(e.to_string()),
                _ => None,
            },
            created_ms: t.created_ms,
            updated_ms: t.updated_ms,
        })
    }

    /// The current lease of a task: `(lease, worker, deadline)`, if it is leased.
    pub fn current_lease(&self, id: TaskId) -> Option<(LeaseRef, &str, UnixMs)> {
        let t = self.tasks.get(&id).filter(|t| t.state == TaskState::Leased)?;
        Some((
            LeaseRef {
                task: id,
                attempt: t.attempt,
            },
            self.idx.workers.name(t.worker),
            t.timer_ms,
        ))
    }

    /// Number of tasks held (in any state, final ones until purged).
    pub fn task_count(&self) -> usize {
        self.tasks.len()
    }

    /// Counts per queue, for every queue that holds a task or was paused.
    pub fn stats(&self) -> BTreeMap<String, QueueCounts> {
        self.idx
            .queue_names
            .ids
            .iter()
            .filter_map(|(name, q)| {
                let d = self.idx.queues.get(*q as usize)?;
                let c = |s: TaskState| d.counts[s as usize];
                Some((
                    name.to_string(),
                    QueueCounts {
                        scheduled: c(TaskState::Scheduled),
                        pending: c(TaskState::Pending),
                        leased: c(TaskState::Leased),
                        retrying: c(TaskState::Retrying),
                        succeeded: c(TaskState::Succeeded),
                        dead: c(TaskState::Dead),
                        cancelled: c(TaskState::Cancelled),
                        paused: d.paused,
                    },
                ))
            })
            .collect()
    }

    /// The earliest time at which a `Tick` would change something (an ETA or retry coming due,
    /// a lease expiring, a result expiring), if any. May be `<= now_ms()` when an entry created
    /// an already-due timer (lease_ms or result TTL of 0): the next apply fires it.
    pub fn next_deadline_ms(&self) -> Option<UnixMs> {
        self.timers_first().map(|(due, _)| *due)
    }

    /// Number of tasks that could be leased now from these queues (all queues when empty).
    pub fn leasable(&self, queues: &[String]) -> u64 {
        let order: BTreeSet<u32> = self.idx.lease_order(queues).into_iter().collect();
        order
            .into_iter()
            .filter_map(|q| self.idx.queues.get(q as usize))
            .map(|d| d.pending.len() as u64)
            .sum()
    }

    /// Check that every index agrees with the task table, and that no standing capacity covers
    /// a pending task. O(n log n); for tests and the simulator. Holds between entries and
    /// between commands.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.check_indexes()?;
        self.check_standing()
    }

    /// The invariants that hold even inside a command (standing capacity is granted at its end).
    fn check_indexes(&self) -> Result<(), String> {
        let mut queue_refs: BTreeMap<u32, u64> = BTreeMap::new();
        let mut name_refs: BTreeMap<u32, u64> = BTreeMap::new();
        let mut worker_refs: BTreeMap<u32, u64> = BTreeMap::new();
        let mut counts: BTreeMap<u32, [u64; STATES]> = BTreeMap::new();
        let (mut pending, mut timed, mut keyed) = (0usize, 0usize, 0usize);
        if self.next_id == 0 {
            return Err("next_id is 0".into());
        }
        for (&id, t) in &self.tasks {
            let err = |m: &str| Err(format!("task {id} ({:?}): {m}", t.state));
            if id == 0 || id >= self.next_id {
                return err("id outside 1..next_id");
            }
            *queue_refs.entry(t.queue).or_default() += 1;
            *name_refs.entry(t.name).or_default() += 1;
            counts.entry(t.queue).or_default()[t.state as usize] += 1;
            if t.failures > t.attempt {
                return err("more failures than attempts");
            }
            if t.state == TaskState::Pending {
                pending += 1;
                let in_queue = self
                    .idx
                    .queues
                    .get(t.queue as usize)
                    .is_some_and(|d| d.pending.contains(&(Reverse(t.priority), id)));
                if !in_queue || t.timer_ms != 0 {
                    return err("pending but not in its queue's pending index (or has a timer)");
                }
            } else {
                timed += 1;
                if !self.idx.timers.contains(&(t.timer_ms, id)) {
                    return err("missing from the timers");
                }
            }
            if t.state == TaskState::Leased {
                *worker_refs.entry(t.worker).or_default() += 1;
            } else if t.worker != 0 {
                return err("holds a worker while not leased");
            }
            if t.state.is_final() && t.timer_ms != t.updated_ms.saturating_add(t.result_ttl_ms) {
                return err("purge time is not finished_at + result_ttl_ms");
            }
            if (t.state == TaskState::Succeeded) != matches!(t.output(), Output::Result(_)) {
                return err("result present iff succeeded");
            }
            if t.extra
                .as_ref()
                .is_some_and(|e| e.idempotency_key.is_none() && e.output == Output::None)
            {
                return err("empty extra box");
            }
            if !t.has_time_limit && t.time_limit_ms != 0 {
                return err("time limit set without its flag");
            }
            if let Some(key) = t.idempotency_key() {
                keyed += 1;
                if self.idempotency.get(key) != Some(&id) {
                    return err("idempotency key does not map back to it");
                }
            }
        }
        if self.idempotency.len() != keyed {
            return Err("idempotency map has keys of no live task".into());
        }
        let indexed_pending: usize = self.idx.queues.iter().map(|d| d.pending.len()).sum();
        if indexed_pending != pending || self.idx.timers.len() != timed {
            return Err(format!(
                "index sizes: pending {indexed_pending} vs {pending} tasks, timers {} vs {timed} tasks",
                self.idx.timers.len()
            ));
        }
        for (q, d) in self.idx.queues.iter().enumerate() {
            let q = q as u32;
            let want = counts.get(&q).copied().unwrap_or_default();
            if d.counts != want {
                return Err(format!("queue {q} counts {:?}, tasks say {want:?}", d.counts));
            }
            if d.paused {
                *queue_refs.entry(q).or_default() += 1;
            }
            let alive = queue_refs.contains_key(&q);
            if !alive && *d != QueueData::default() {
                return Err(format!("queue slot {q} is dead but not cleared"));
            }
        }
        if self.idx.queues.len() != self.idx.queue_names.slots.len() {
            return Err("queue data and queue names disagree in length".into());
        }
        self.idx.queue_names.check("queue", &queue_refs)?;
        self.task_names.check("task name", &name_refs)?;
        self.idx.workers.check("worker", &worker_refs)
    }
}
