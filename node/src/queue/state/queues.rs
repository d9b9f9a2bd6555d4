//! The queue commands: `PurgeQueue` (cancel every waiting task of a queue) and `PauseQueue`
//! (stop or resume leasing from it). Moved out of `state.rs` to keep it short; the semantics
//! are in `state.rs`'s module docs.

use super::ApplyEffects;
use super::QueueState;
use super::index::queue_name;
use crate::queue::command::*;

impl QueueState {
    pub(super) fn purge_queue(&mut self, queue: &str, effects: &mut ApplyEffects) -> u64 {
        let Some(q) = self.idx.queue_names.get(queue_name(queue)) else {
            return 0;
        };
        let Some(data) = self.idx.queues.get(q as usize) else {
            return 0;
        };
        let mut ids: Vec<TaskId> = data.pending.iter().map(|(_, id)| id).collect();
        ids.extend(self.idx.flow.lanes.pending_ids(q));
        let waiting = data.counts[TaskState::Scheduled as usize] + data.counts[TaskState::Retrying as usize];
        if waiting > 0 {
            // Scheduled and retrying tasks are only indexed by time: scan the timers. Purging a
            // queue is a rare admin action, so O(timers) is acceptable here.
            ids.extend(self.idx.timers.iter().map(|(_, id)| *id).filter(|id| {
                self.tasks.get(*id).is_some_and(|t| {
                    t.queue == q && matches!(t.state, TaskState::Scheduled | TaskState::Retrying)
                })
            }));
        }
        ids.sort_unstable();
        ids.into_iter()
            .map(|id| u64::from(self.cancel(id, effects)))
            .sum()
    }

    pub(super) fn pause_queue(&mut self, queue: &str, paused: bool, effects: &mut ApplyEffects) {
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
            effects.became_pending += data.pending.len() + self.idx.flow.lanes.pending_of_queue(q);
            self.idx.release_queue(q);
        }
    }
}
