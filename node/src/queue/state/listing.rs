//! Finding tasks (`ListTasks`) and one task's detail (`DescribeTask`): reads of a replica that
//! never load the table whole.
//!
//! Ids are sequential and a task's `created_ms` is the applying entry's clock, which never runs
//! backwards, so **id order is creation order** (`check_invariants` checks it). "Newest first"
//! is therefore a walk down the ids ([`Table::iter_below`](super::Table)), and the cursor of a
//! page is an id: the next page walks on below it. A page stops when it is full, or when it has
//! examined `budget` tasks (then it says where to continue, with fewer tasks or none: a filter
//! that matches one task in millions costs the caller more pages, never the node a long
//! read under the replica's lock), or when the walk passes below the time range's start (every
//! older task is older still). Filters by queue and task name are compared as interned slots.

use bytes::Bytes;

use super::QueueState;
use super::index::queue_name;
use crate::queue::command::*;

/// Most tasks in one page of `ListTasks`.
pub const MAX_PAGE_SIZE: usize = 1000;

/// Which tasks a listing shows. Every field narrows it; the default shows every task.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskFilter {
    /// Only this queue (empty name: the default queue).
    pub queue: Option<String>,
    /// Only tasks in one of these states; empty (and `waiting` false): any state. `Scheduled`
    /// matches the scheduled tasks that do not wait for parents.
    pub states: Vec<TaskState>,
    /// Also the workflow tasks waiting for their parents (`WAITING` on the wire, `Scheduled`
    /// in the table): a filter of states alone leaves them out.
    pub waiting: bool,
    /// Only tasks of this name.
    pub name: Option<String>,
    /// Only tasks created at or after this time.
    pub created_from_ms: Option<UnixMs>,
    /// Only tasks created before this time.
    pub created_before_ms: Option<UnixMs>,
}

/// One page of a listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskPage {
    /// Matching tasks, newest first.
    pub tasks: Vec<TaskView>,
    /// Where the next page starts: it examines ids below this one. `None`: nothing older
    /// matches (or nothing is left to examine).
    pub next_below: Option<TaskId>,
    /// Tasks examined for this page.
    pub scanned: u64,
}

/// Everything a replica holds of one task, for `DescribeTask`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskDetail {
    pub view: TaskView,
    pub priority: u8,
    /// Failed attempts counted against `max_retries` (reset by an operator's retry).
    pub failures: u32,
    /// Leases that expired (worker lost), counted apart (reset by an operator's retry).
    pub lost_leases: u8,
    /// The pool (a node's `node-N`, or a remote worker's name) that holds its lease now.
    pub holder: Option<String>,
    /// The lease's deadline while leased; the ETA or retry time while scheduled or retrying;
    /// when it is forgotten once final. `None` while pending or waiting for parents (its
    /// timer is "never").
    pub timer_ms: Option<UnixMs>,
    pub args: Bytes,
    /// The idempotency key (lossy UTF-8), if it was given one.
    pub idempotency_key: Option<String>,
    pub headers: Headers,
    pub backoff_ms: u64,
    pub time_limit_ms: Option<u64>,
    pub result_ttl_ms: u64,
    /// Its last attempts, oldest first (`state/attempts.rs`): empty if none ran since the
    /// cluster started recording.
    pub attempts: Vec<AttemptView>,
}

impl QueueState {
    /// A page of the tasks `filter` matches, newest first, among ids below `below` (`None`:
    /// from the newest): at most `limit` tasks, after examining at most `budget` (both at
    /// least 1).
    pub fn list_tasks(
        &self,
        filter: &TaskFilter,
        below: Option<TaskId>,
        limit: usize,
        budget: usize,
    ) -> TaskPage {
        let (limit, budget) = (limit.max(1), budget.max(1));
        let empty = TaskPage::default();
        let queue = match &filter.queue {
            Some(q) => match self.idx.queue_names.get(queue_name(q)) {
                Some(slot) => Some(slot),
                None => return empty,
            },
            None => None,
        };
        let name = match &filter.name {
            Some(n) => match self.task_names.get(n.as_str()) {
                Some(slot) => Some(slot),
                None => return empty,
            },
            None => None,
        };
        let below = below.unwrap_or(self.next_id).min(self.next_id);
        let mut page = TaskPage::default();
        for (id, t) in self.tasks.iter_below(below) {
            if filter.created_from_ms.is_some_and(|from| t.created_ms < from) {
                return page;
            }
            if page.tasks.len() >= limit || page.scanned >= budget as u64 {
                page.next_below = Some(id + 1);
                return page;
            }
            page.scanned += 1;
            let matches = queue.is_none_or(|q| t.queue == q)
                && name.is_none_or(|n| t.name == n)
                && self.listed_state_matches(filter, id, t.state)
                && filter
                    .created_before_ms
                    .is_none_or(|before| t.created_ms < before);
            if matches && let Some(view) = self.task(id) {
                page.tasks.push(view);
            }
        }
        page
    }

    /// Whether task `id`, in `state`, passes the filter's states (a waiting task is told apart
    /// from the scheduled ones only when the filter names states).
    fn listed_state_matches(&self, filter: &TaskFilter, id: TaskId, state: TaskState) -> bool {
        if filter.states.is_empty() && !filter.waiting {
            return true;
        }
        if state == TaskState::Scheduled && self.is_waiting(id) {
            return filter.waiting;
        }
        filter.states.contains(&state)
    }

    /// Everything this replica holds of task `id`, if it exists.
    pub fn describe(&self, id: TaskId) -> Option<TaskDetail> {
        let view = self.task(id)?;
        let t = self.tasks.get(id)?;
        let options = self.idx.options(t);
        let timed = t.state != TaskState::Pending && !view.waiting;
        Some(TaskDetail {
            view,
            priority: t.priority,
            failures: t.failures,
            lost_leases: t.lost_leases,
            holder: t.lease(id).map(|_| self.idx.pools.name(t.pool).to_owned()),
            timer_ms: timed.then_some(t.timer_ms),
            args: Bytes::copy_from_slice(t.args()),
            idempotency_key: t
                .idempotency_key()
                .map(|k| String::from_utf8_lossy(k).into_owned()),
            headers: self.headers(id),
            backoff_ms: options.backoff_ms,
            time_limit_ms: options.time_limit_ms,
            result_ttl_ms: options.result_ttl_ms,
            attempts: self.attempts.history(id),
        })
    }
}
