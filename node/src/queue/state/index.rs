//! [`Index`]: everything derived from the task table that `apply` needs to find tasks fast,
//! and the one way a task moves between states ([`Index::set_state`]).
//!
//! - Each non-pending task has exactly one entry in a single timer set keyed `(due, id)`: its
//!   ETA or retry time, its lease deadline, or the purge time of a final task.
//! - Pending tasks instead sit in their queue's [`Pending`] set in `(Reverse(priority), id)`
//!   order ([`QueueData::pending`]); each queue also counts its tasks per state.
//! - Queue and pool names and task options are interned ([`Interner`]); a queue's slot lives
//!   while it holds a task or is paused, a pool's while it holds a lease.
//!
//! [`Index::link`] and [`Index::unlink`] add and remove one task in its current state;
//! `set_state` is unlink, change, link, so the indexes follow every change of state.
//! `state/invariants.rs` checks that they agree with the table.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde::Serialize;

use super::Interner;
use super::Pending;
use super::Task;
use super::TaskOptions;
use super::limits::Flow;
use crate::bugs;
use crate::queue::command::DEFAULT_QUEUE;
use crate::queue::command::TaskId;
use crate::queue::command::TaskState;
use crate::queue::command::UnixMs;

/// Number of [`TaskState`]s (the length of a queue's counts).
pub(super) const STATES: usize = 7;

/// Per-queue data. Lives in [`Index::queues`] at the queue name's interner slot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct QueueData {
    pub(super) pending: Pending,
    /// Tasks of this queue by `TaskState as usize`.
    pub(super) counts: [u64; STATES],
    pub(super) paused: bool,
}

/// Everything derived from the task table. Kept apart from `tasks` so a `&mut Task` borrowed
/// from the table and `&mut Index` can be used together.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Index {
    /// A queue's refs = its tasks + 1 if paused.
    pub(super) queue_names: Interner<Box<str>>,
    pub(super) queues: Vec<QueueData>,
    /// A pool's refs = the tasks it holds leased.
    pub(super) pools: Interner<Box<str>>,
    /// An options slot's refs = the tasks that have those options.
    pub(super) options: Interner<TaskOptions>,
    /// `(timer_ms, id)` of every task that is not pending.
    pub(super) timers: BTreeSet<(UnixMs, TaskId)>,
    /// The changes of the current apply, for metrics: not state (`seen.rs`).
    #[serde(skip)]
    pub(super) seen: super::seen::Seen,
    /// Flow control (`limits.rs`, `lanes.rs`): serialized on its own, after the older formats'
    /// fields (`format.rs`).
    #[serde(skip)]
    pub(super) flow: Flow,
}

/// Target of [`Index::set_state`].
#[derive(Clone, Copy)]
pub(super) enum To {
    Pending,
    Leased { pool: u32, deadline: UnixMs },
    Retrying { due: UnixMs },
    Final(TaskState),
}

/// The queue an empty name means.
pub(super) fn queue_name(name: &str) -> &str {
    if name.is_empty() { DEFAULT_QUEUE } else { name }
}

impl Index {
    pub(super) fn options(&self, t: &Task) -> TaskOptions {
        self.options.value(t.options).copied().unwrap_or_default()
    }

    pub(super) fn acquire_queue(&mut self, name: &str) -> u32 {
        let q = self.queue_names.acquire(name);
        if self.queues.len() <= q as usize {
            self.queues.resize_with(q as usize + 1, QueueData::default);
        }
        if !self.flow.queue_rules.is_empty()
            && self.flow.queue_rules.contains_key(name)
            && !self.flow.limited_queues.contains_key(&q)
        {
            self.flow.limited_queues.insert(q, name.into());
        }
        q
    }

    pub(super) fn release_queue(&mut self, q: u32) {
        if self.queue_names.release(q)
            && let Some(data) = self.queues.get_mut(q as usize)
        {
            *data = QueueData::default();
            self.flow.limited_queues.remove(&q);
        }
    }

    /// Add a task (in its current state) to the indexes.
    pub(super) fn link(&mut self, id: TaskId, t: &Task) {
        if let Some(q) = self.queues.get_mut(t.queue as usize) {
            let c = &mut q.counts[t.state as usize];
            *c = c.saturating_add(1);
            // A task a limit may hold back waits in its lane instead (`lanes.rs`).
            if t.state == TaskState::Pending && (self.flow.is_idle() || !self.place(id, t)) {
                self.queues[t.queue as usize].pending.insert(t.priority, id);
            }
        }
        if t.state != TaskState::Pending {
            self.timers.insert((t.timer_ms, id));
        }
        if t.state == TaskState::Leased {
            self.pools.add_ref(t.pool);
            if !self.flow.is_idle() {
                self.started(id, t);
            }
        }
    }

    /// Remove a task (in its current state) from the indexes.
    pub(super) fn unlink(&mut self, id: TaskId, t: &Task) {
        if let Some(q) = self.queues.get_mut(t.queue as usize) {
            let c = &mut q.counts[t.state as usize];
            *c = c.saturating_sub(1);
            if t.state == TaskState::Pending && (self.flow.is_idle() || !self.unplace(id, t)) {
                self.queues[t.queue as usize].pending.remove(t.priority, id);
            }
        }
        if t.state != TaskState::Pending {
            self.timers.remove(&(t.timer_ms, id));
        }
        if t.state == TaskState::Leased {
            self.pools.release(t.pool);
            if !self.flow.is_idle() {
                self.stopped(id, t);
            }
        }
    }

    /// The one way a live task changes state: unlink, update, relink.
    pub(super) fn set_state(&mut self, id: TaskId, t: &mut Task, to: To, now: UnixMs) {
        self.unlink(id, t);
        let from = t.state;
        (t.state, t.timer_ms, t.pool) = match to {
            To::Pending => (TaskState::Pending, 0, 0),
            To::Leased { pool, deadline } => (TaskState::Leased, deadline, pool),
            To::Retrying { due } => (TaskState::Retrying, due, 0),
            To::Final(state) => (state, now.saturating_add(self.options(t).result_ttl_ms), 0),
        };
        self.seen.record(t.queue, Some(from), t.state, t.updated_ms, now);
        t.updated_ms = now;
        self.link(id, t);
    }

    /// Move a timed task's timer to `due` without a change of state (a heartbeat moves a lease
    /// deadline; `updated_ms` stays).
    pub(super) fn set_timer(&mut self, id: TaskId, t: &mut Task, due: UnixMs) {
        // A deliberate bug may leave the old entry behind, for the simulator to catch.
        if !bugs::active(bugs::Bug::HeartbeatKeepsOldTimer) {
            self.timers.remove(&(t.timer_ms, id));
        }
        t.timer_ms = due;
        self.timers.insert((due, id));
    }

    /// Queue slots a lease (or `leasable`) draws from, in order: unknown and paused ones skipped.
    pub(super) fn lease_order(&self, queues: &[String]) -> Vec<u32> {
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
