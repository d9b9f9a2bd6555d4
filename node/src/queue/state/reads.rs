//! The reads of [`QueueState`]: one task's view, counts per queue, the next deadline, the
//! tokens, the catalogue and the task extras. Nothing here changes the state.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use super::Catalog;
use super::Extras;
use super::Output;
use super::QueueState;
use super::Tokens;
use crate::queue::command::*;

impl QueueState {
    /// The machine's clock: the largest `now_ms` applied so far.
    pub fn now_ms(&self) -> UnixMs {
        self.now_ms
    }

    /// One task, if it exists (it may have been purged after its result TTL).
    pub fn task(&self, id: TaskId) -> Option<TaskView> {
        let t = self.tasks.get(id)?;
        Some(TaskView {
            id,
            name: self.task_names.name(t.name).to_owned(),
            queue: self.idx.queue_names.name(t.queue).to_owned(),
            state: t.state,
            waiting: t.state == TaskState::Scheduled && self.is_waiting(id),
            attempt: t.attempt,
            max_retries: self.idx.options(t).max_retries,
            result: match t.output() {
                Some(Output::Result(b)) => Some(b.clone()),
                _ => None,
            },
            error: match t.output() {
                Some(Output::Error(e)) => Some(e.to_string()),
                _ => None,
            },
            created_ms: t.created_ms,
            updated_ms: t.updated_ms,
            progress: self.extras.progress(id).cloned(),
        })
    }

    /// The task holding idempotency key `key`, if one does (until it is purged).
    pub fn task_by_idempotency_key(&self, key: &str) -> Option<TaskId> {
        self.idempotency.get(&self.tasks, key.as_bytes())
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
    /// a lease expiring, a result expiring, a schedule's slot, a rate limit's bucket holding a
    /// token for a task it held back), if any. May be `<= now_ms()` when an entry created an
    /// already-due timer (lease_ms or result TTL of 0): the next apply fires it.
    pub fn next_deadline_ms(&self) -> Option<UnixMs> {
        // Waiting tasks' timers never come due (`state/deps.rs`); they sort last.
        let timer = self
            .timers_first()
            .map(|(due, _)| *due)
            .filter(|due| *due != super::deps::WAITING_MS);
        [timer, self.schedules.next_due_ms(), self.idx.flow.next_wake_ms()]
            .into_iter()
            .flatten()
            .min()
    }

    /// The live task that holds idempotency key `key`, if any.
    pub fn task_by_key(&self, key: &str) -> Option<TaskId> {
        self.idempotency.get(&self.tasks, key.as_bytes())
    }

    /// The API tokens.
    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    /// The task catalogue.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Headers and progress of tasks.
    pub fn extras(&self) -> &Extras {
        &self.extras
    }

    /// A task's submit headers (empty if it has none or does not exist).
    pub fn headers(&self, id: TaskId) -> Headers {
        self.extras.headers(id).cloned().unwrap_or_default()
    }

    /// Every declared task name with its default queue, declarers and the tasks held of it.
    pub fn task_names(&self) -> Vec<TaskNameInfo> {
        self.catalog
            .iter()
            .map(|(name, default_queue, declarers)| TaskNameInfo {
                name: name.to_string(),
                default_queue: default_queue.to_string(),
                declarers: declarers
                    .into_iter()
                    .map(|(who, queue)| (who.to_string(), queue.to_string()))
                    .collect(),
                held: self.task_names.get(name).map_or(0, |id| self.task_names.refs(id)),
            })
            .collect()
    }

    /// Number of tasks that could be leased now from these queues (all queues when empty).
    pub fn leasable(&self, queues: &[String]) -> u64 {
        let order: BTreeSet<u32> = self.idx.lease_order(queues).into_iter().collect();
        order
            .into_iter()
            .filter(|q| self.idx.queue_open_now(*q, self.now_ms))
            .filter_map(|q| self.idx.queues.get(q as usize).map(|d| (q, d)))
            .map(|(q, d)| d.pending.len() + self.idx.flow.lanes.pending_of_queue(q))
            .sum()
    }

    /// Every pool the state knows of, by name: the tasks it holds leased and its standing
    /// capacity (`flotilla workers`). A pool with neither is not kept, so not listed.
    pub fn pool_holdings(&self) -> BTreeMap<String, PoolHolding> {
        let mut out: BTreeMap<String, PoolHolding> = BTreeMap::new();
        for (name, slot) in &self.idx.pools.ids {
            let leased = self.idx.pools.refs(*slot);
            if leased > 0 {
                out.entry(name.to_string()).or_default().leased = leased;
            }
        }
        for (name, offer) in &self.standing.offers {
            out.entry(name.to_string()).or_default().standing = offer.n;
        }
        out
    }
}

/// What the state holds for one pool ([`QueueState::pool_holdings`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolHolding {
    /// Tasks it holds leased.
    pub leased: u64,
    /// Its standing capacity: tasks it stands ready to be granted.
    pub standing: u32,
}
