//! [`Frozen`]: the queue as of one point between two applies, for a snapshot.
//!
//! A snapshot is taken on openraft's state-machine task, between two applies, so whatever the
//! copy costs is a stall of apply (`raft/state_machine.rs`). [`QueueState::freeze`] therefore
//! copies only what is cheap to copy and rebuilds the rest later, on the encoding thread:
//!
//! - **The task table** is shared, not copied: its chunks are behind `Arc`s and written through
//!   `Arc::make_mut` (`table.rs`), so the copy costs a pointer per 1,024 ids and the applies
//!   that follow copy each chunk they touch once.
//! - **The key index** (idempotency key → task) is not copied at all: the snapshot does not
//!   hold it (it is rebuilt at decode, `format.rs`).
//! - **The timer set** holds exactly `(timer_ms, id)` of every task that is not pending
//!   (`QueueState::check_invariants`), so it is left out and rebuilt from the frozen table by
//!   [`Frozen::for_encoding`], off the apply path. Its size is kept to check the rebuild.
//! - **What the current apply saw** (`seen.rs`) is not state and is not copied.
//! - **The attempt histories** (`attempts.rs`) grow with the tasks that ran and are still held
//!   (finished ones until their results' TTL purges them), so they are shared the same way:
//!   chunks of 1,024 ids behind `Arc`s (`attempts/cow.rs`); the applies that follow copy the
//!   few chunks they write to (the newest grants and completions, the oldest purges).
//! - **The rest is cloned**: interners, the per-queue pending bitmaps (a word per 64 pending
//!   ids), standing capacity, tokens, the catalogue, schedules, flow control, the extras of
//!   the tasks that have headers or progress, and waiting tasks and workflows. They grow with
//!   names, pools, bitmaps words or the few tasks using those features, not with plain tasks.
//!
//! So the copy is O(tasks / 1,024) (docs/BENCHMARKS.md, "copy_ms"), finished tasks held with
//! their histories included.
//!
//! The frozen view's timer set is rebuilt by [`Frozen::for_encoding`]; a rebuild that does not
//! match (a broken invariant) fails that snapshot only: the builder logs it, writes nothing and
//! the node keeps serving from its log (`raft/state_machine.rs`).

use std::collections::BTreeSet;

use super::Index;
use super::KeyIndex;
use super::QueueState;
#[cfg(test)]
use crate::queue::command::TaskId;
use crate::queue::command::TaskState;
#[cfg(test)]
use crate::queue::command::UnixMs;

/// A copy of the queue for encoding only: it lacks its key index (and, until
/// [`Frozen::for_encoding`], its timers), so it must never be applied to or read as a queue.
pub struct Frozen {
    state: QueueState,
    /// Entries of the timer set when frozen; `None` once rebuilt.
    timers: Option<usize>,
}

impl QueueState {
    /// The state as it is now, for a snapshot, at a cost of O(chunks) for the task table (see
    /// the module doc): later applies to `self` do not reach it.
    pub fn freeze(&self) -> Frozen {
        let idx = &self.idx;
        let state = QueueState {
            now_ms: self.now_ms,
            next_id: self.next_id,
            tasks: self.tasks.clone(),
            idempotency: KeyIndex::default(),
            task_names: self.task_names.clone(),
            idx: Index {
                queue_names: idx.queue_names.clone(),
                queues: idx.queues.clone(),
                pools: idx.pools.clone(),
                options: idx.options.clone(),
                timers: BTreeSet::new(),
                seen: Default::default(),
                flow: idx.flow.clone(),
            },
            next_node_id: self.next_node_id,
            standing: self.standing.clone(),
            tokens: self.tokens.clone(),
            catalog: self.catalog.clone(),
            extras: self.extras.clone(),
            schedules: self.schedules.clone(),
            deps: self.deps.clone(),
            attempts: self.attempts.clone(),
        };
        Frozen {
            state,
            timers: Some(idx.timers.len()),
        }
    }
}

impl QueueState {
    /// Break the rule [`Frozen::for_encoding`] checks: a timer no task has (tests only).
    #[cfg(test)]
    pub(crate) fn break_timer_set_for_test(&mut self) {
        self.idx.timers.insert((UnixMs::MAX - 1, TaskId::MAX));
    }
}

impl Frozen {
    /// Tasks held.
    pub fn task_count(&self) -> usize {
        self.state.task_count()
    }

    /// The frozen task table, for tests of what it shares.
    #[cfg(test)]
    pub(super) fn tasks(&self) -> &super::Table<super::Task> {
        &self.state.tasks
    }

    /// The frozen attempt histories, for tests of what they share.
    #[cfg(test)]
    pub(super) fn attempts(&self) -> &super::Attempts {
        &self.state.attempts
    }

    /// The state to encode, its timer set rebuilt from the tasks (the first call; O(n log n)
    /// in the timed tasks). Fails if the rebuilt set is not the size the live one had: the
    /// state broke its invariants, and the snapshot would not be the state.
    pub fn for_encoding(&mut self) -> Result<&QueueState, String> {
        if let Some(want) = self.timers.take() {
            let timers: BTreeSet<_> = self
                .state
                .tasks
                .iter()
                .filter(|(_, t)| t.state != TaskState::Pending)
                .map(|(id, t)| (t.timer_ms, id))
                .collect();
            if timers.len() != want {
                return Err(format!(
                    "the timer set held {want} entries, the tasks have {}",
                    timers.len()
                ));
            }
            self.state.idx.timers = timers;
        }
        Ok(&self.state)
    }
}
