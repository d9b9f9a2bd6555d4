//! [`Deps`]: tasks waiting for parent tasks, and the workflows they belong to (issue 12).
//!
//! # Rules
//!
//! - **Waiting.** A workflow task with parents is created *waiting*: its record is an ordinary
//!   `Scheduled` task whose timer is [`WAITING_MS`] (the end of time, so no timer fires it and
//!   `next_deadline_ms` ignores it); what it waits for is here, beside the table, so a plain
//!   task pays nothing (its record is unchanged) and only waiting tasks cost a [`Waiter`].
//! - **Release.** When its last parent succeeds (`WaitFor::AllSucceed`), a waiting task gets
//!   the header [`PARENT_RESULTS_HEADER`] (the JSON array of its parents' results, in the
//!   order named) and becomes pending, or scheduled if its own ETA is still ahead. Exactly
//!   once: the waiter is removed as it is released.
//! - **Cascade.** A parent that ends dead or cancelled cancels its waiting dependents, each
//!   with the reason as its error ("parent task 7 dead: boom"); they are final, so their own
//!   dependents follow, in the same apply.
//! - **Error callbacks** (`WaitFor::AnyFails`) become pending when the first of their parents
//!   ends dead or cancelled, with [`PARENT_ERROR_HEADER`]; later failures find no waiter, so an
//!   error callback runs at most once. When every parent succeeded it is cancelled ("every
//!   parent succeeded").
//! - **Cancel and PurgeQueue** treat a waiting task like a scheduled one: it is cancelled (it
//!   is `Scheduled` in its queue's counts), and its dependents cascade.
//! - **Memory.** A workflow's record (task ids, parents, shape) lives until the last of its
//!   tasks is purged by its result TTL; the waiters and parent → dependents links live only
//!   while a task waits.
//!
//! Everything is found from `effects.finished`: every move to a final state is listed there
//! (`lease.rs`, `cancel`), so [`QueueState::resolve_deps`] walks the list after each command
//! and after the timers, as a work list that also takes the cascades it causes.
//!
//! # Files
//!
//! - this file: the table's types and its own bookkeeping;
//! - `deps/submit.rs`: `SubmitWorkflow`;
//! - `deps/resolve.rs`: parents that end release or cancel their dependents;
//! - `deps/view.rs`: reads (a workflow's state and results as one object);
//! - `deps/check.rs`: the invariants (`callbacks_exact`, `check_deps`).

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::Deserialize;
use serde::Serialize;

use crate::queue::command::*;

mod check;
mod resolve;
mod submit;
mod view;

/// The timer of a waiting task: never due.
pub(crate) const WAITING_MS: UnixMs = UnixMs::MAX;

/// A task waiting for its parents.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Waiter {
    workflow: WorkflowId,
    /// Its index in the workflow (its parents are the workflow's `links[index]`).
    index: u32,
    /// Per parent (AllSucceed): its result, once it succeeded.
    results: Vec<Option<Bytes>>,
    /// Parents not yet decided.
    left: u32,
    /// Its own ETA (0: none), applied when it is released.
    due: UnixMs,
}

/// One task of a workflow: its parents and what became of its wait.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Link {
    parents: Vec<TaskId>,
    wait: WaitFor,
    /// Times it went from waiting to pending or scheduled (the rule: at most once).
    released: u8,
    /// It was released while a parent was not yet final (recounted from the task table at
    /// release, not from `left`): what `sim dst`'s `callbacks_exact` looks for.
    early: bool,
}

/// A workflow's record, kept until the last of its tasks is purged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Workflow {
    created_ms: UnixMs,
    tasks: Vec<TaskId>,
    links: Vec<Link>,
    shape: Vec<ShapeNode>,
    /// Its tasks not yet purged.
    live: u32,
}

/// Waiting tasks and workflows (snapshot format 10, `format.rs`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deps {
    waiting: BTreeMap<TaskId, Waiter>,
    /// A parent not yet final → the waiting tasks that wait for it.
    children: BTreeMap<TaskId, Vec<TaskId>>,
    workflows: BTreeMap<WorkflowId, Workflow>,
    /// A workflow task → its workflow.
    member: BTreeMap<TaskId, WorkflowId>,
    /// The last workflow id handed out (0: none yet).
    last_workflow: WorkflowId,
}

impl Deps {
    /// Whether nothing was ever held: the state then fits an older snapshot format.
    pub fn is_pristine(&self) -> bool {
        self.last_workflow == 0 && self.workflows.is_empty()
    }

    /// How many tasks wait for parents.
    pub fn waiting_count(&self) -> usize {
        self.waiting.len()
    }

    /// A task was purged: forget it, and its workflow with its last task.
    pub(super) fn purged(&mut self, id: TaskId) {
        let Some(wf) = self.member.remove(&id) else { return };
        if let Some(w) = self.workflows.get_mut(&wf) {
            w.live = w.live.saturating_sub(1);
            if w.live == 0 {
                self.workflows.remove(&wf);
            }
        }
    }

    pub(super) fn unlink_children(&mut self, kid: TaskId, parents: &[TaskId]) {
        for p in parents {
            if let Some(kids) = self.children.get_mut(p) {
                kids.retain(|k| *k != kid);
                if kids.is_empty() {
                    self.children.remove(p);
                }
            }
        }
    }

    pub(super) fn parents_of(&self, w: &Waiter) -> (&[TaskId], WaitFor) {
        match self
            .workflows
            .get(&w.workflow)
            .and_then(|wf| wf.links.get(w.index as usize))
        {
            Some(l) => (&l.parents, l.wait),
            None => (&[], WaitFor::AllSucceed),
        }
    }

    pub(super) fn link_mut(&mut self, wf: WorkflowId, index: u32) -> Option<&mut Link> {
        self.workflows.get_mut(&wf)?.links.get_mut(index as usize)
    }
}

/// The earliest run time a spec asks for (0: none).
pub(super) fn due_of(spec: &TaskSpec, now: UnixMs) -> UnixMs {
    spec.eta_ms
        .unwrap_or(0)
        .max(spec.countdown_ms.map_or(0, |c| now.saturating_add(c)))
}
