//! [`QueueState::check_invariants`]: the task table and every index agree.
//!
//! Walks the whole state, O(n log n): for unit and property tests (after every entry, command
//! and completion) and for the simulator (`sim dst` checks every live replica). It recounts
//! from the tasks what each index should hold (pending sets, timers, per-queue counts, the
//! reference counts of every interner, the key index) and compares; then the standing
//! capacity's own invariants (`state/standing.rs`).

use std::collections::BTreeMap;

use super::Output;
use super::QueueData;
use super::QueueState;
use super::STATES;
use crate::queue::command::TaskState;

impl QueueState {
    /// Check that every index agrees with the task table, and that no standing capacity covers
    /// a pending task. O(n log n); for tests and the simulator. Holds between entries and
    /// between commands.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.check_indexes()?;
        self.tokens.check()?;
        self.catalog.check()?;
        self.extras.check(|id| self.tasks.get(id).is_some())?;
        self.schedules.check()?;
        self.check_deps()?;
        self.attempts.check(|id| {
            self.tasks
                .get(id)
                .map(|t| (t.attempt, t.lease(id).map(|l| l.attempt)))
        })?;
        self.check_standing()
    }

    /// The invariants that hold even inside a command (standing capacity is granted at its end).
    pub(super) fn check_indexes(&self) -> Result<(), String> {
        let mut queue_refs: BTreeMap<u32, u64> = BTreeMap::new();
        let mut name_refs: BTreeMap<u32, u64> = BTreeMap::new();
        let mut pool_refs: BTreeMap<u32, u64> = BTreeMap::new();
        let mut option_refs: BTreeMap<u32, u64> = BTreeMap::new();
        let mut counts: BTreeMap<u32, [u64; STATES]> = BTreeMap::new();
        let (mut pending, mut timed, mut keyed) = (0u64, 0usize, 0usize);
        if self.next_id == 0 {
            return Err("next_id is 0".into());
        }
        self.tasks.check()?;
        let mut created_before = 0;
        for (id, t) in self.tasks.iter() {
            let err = |m: &str| Err(format!("task {id} ({:?}): {m}", t.state));
            if id == 0 || id >= self.next_id {
                return err("id outside 1..next_id");
            }
            // Listings walk the ids as creation order and stop at a time range's start
            // (`listing.rs`).
            if t.created_ms < created_before {
                return err("created before a task with a lower id");
            }
            created_before = t.created_ms;
            *queue_refs.entry(t.queue).or_default() += 1;
            *name_refs.entry(t.name).or_default() += 1;
            *option_refs.entry(t.options).or_default() += 1;
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
                    .is_some_and(|d| d.pending.contains(t.priority, id));
                // Or in its lane (`lanes.rs`: checked by `check_flow`).
                let laned = self.idx.flow.lanes.holds(t.queue, t.priority, id);
                if in_queue == laned || t.timer_ms != 0 {
                    return err("pending but not in its queue's pending index (or has a timer)");
                }
            } else {
                timed += 1;
                if !self.idx.timers.contains(&(t.timer_ms, id)) {
                    return err("missing from the timers");
                }
            }
            if t.state == TaskState::Leased {
                *pool_refs.entry(t.pool).or_default() += 1;
            } else if t.pool != 0 {
                return err("holds a pool while not leased");
            }
            let ttl = self.idx.options(t).result_ttl_ms;
            if t.state.is_final() && t.timer_ms != t.updated_ms.saturating_add(ttl) {
                return err("purge time is not finished_at + result_ttl_ms");
            }
            if (t.state == TaskState::Succeeded) != matches!(t.output(), Some(Output::Result(_))) {
                return err("result present iff succeeded");
            }
            if (t.keyed || t.key_len != 0) && t.idempotency_key().is_none() {
                return err("key length without a key, or past the data");
            }
            if let Some(key) = t.idempotency_key() {
                keyed += 1;
                if self.idempotency.get(&self.tasks, key) != Some(id) {
                    return err("idempotency key does not map back to it");
                }
            }
        }
        if self.idempotency.len() != keyed {
            return Err("idempotency map has keys of no live task".into());
        }
        for d in &self.idx.queues {
            d.pending.check()?;
        }
        let indexed_pending: u64 =
            self.idx.queues.iter().map(|d| d.pending.len()).sum::<u64>() + self.idx.flow.lanes.len();
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
        self.idx.pools.check("pool", &pool_refs)?;
        self.idx.options.check("task options", &option_refs)?;
        self.idx.check_flow(self.tasks.iter())
    }
}
