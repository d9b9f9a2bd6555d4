//! [`QueueState`]: the replicated queue. PLACEHOLDER: replaced by the real implementation.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::Serialize;

use super::command::*;

/// What applying an entry did that the node (not the replicated state) wants to know: which
/// tasks reached a final state (to answer waiting clients) and whether new work became
/// leasable (to wake idle workers).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyEffects {
    /// Tasks that reached a final state during this apply, in order.
    pub finished: Vec<TaskId>,
    /// Tasks that became pending (leasable) during this apply.
    pub became_pending: u64,
}

/// The whole replicated queue.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueState {
    now_ms: UnixMs,
}

impl QueueState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Apply one log entry: advance time to `max(now, req.now_ms)` (firing due timers), then
    /// each command in order. Returns one response per command. Never panics on any input.
    pub fn apply(&mut self, req: &Request, effects: &mut ApplyEffects) -> Vec<Response> {
        let _ = effects;
        self.now_ms = self.now_ms.max(req.now_ms);
        req.commands.iter().map(|_| Response::Ticked).collect()
    }

    /// The machine's clock: the largest `now_ms` applied so far.
    pub fn now_ms(&self) -> UnixMs {
        self.now_ms
    }

    /// One task, if it exists (it may have been purged after its result TTL).
    pub fn task(&self, id: TaskId) -> Option<TaskView> {
        let _ = id;
        None
    }

    /// Counts per queue, for every queue that holds a task or was paused.
    pub fn stats(&self) -> BTreeMap<String, QueueCounts> {
        BTreeMap::new()
    }

    /// The earliest time at which a `Tick` would change something (an ETA or retry coming due,
    /// a lease expiring, a result expiring), if any.
    pub fn next_deadline_ms(&self) -> Option<UnixMs> {
        None
    }

    /// Number of tasks that could be leased now from these queues (all queues when empty).
    pub fn leasable(&self, queues: &[String]) -> u64 {
        let _ = queues;
        0
    }
}
