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

use std::collections::BTreeMap;
use std::rc::Rc;

use bytes::Bytes;
use serde::Deserialize;
use serde::Serialize;

use super::ApplyEffects;
use super::Output;
use super::QueueState;
use super::To;
use crate::bugs;
use crate::queue::command::*;

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

    fn unlink_children(&mut self, kid: TaskId, parents: &[TaskId]) {
        for p in parents {
            if let Some(kids) = self.children.get_mut(p) {
                kids.retain(|k| *k != kid);
                if kids.is_empty() {
                    self.children.remove(p);
                }
            }
        }
    }

    fn parents_of(&self, w: &Waiter) -> (&[TaskId], WaitFor) {
        match self
            .workflows
            .get(&w.workflow)
            .and_then(|wf| wf.links.get(w.index as usize))
        {
            Some(l) => (&l.parents, l.wait),
            None => (&[], WaitFor::AllSucceed),
        }
    }

    fn link_mut(&mut self, wf: WorkflowId, index: u32) -> Option<&mut Link> {
        self.workflows.get_mut(&wf)?.links.get_mut(index as usize)
    }
}

/// The earliest run time a spec asks for (0: none).
fn due_of(spec: &TaskSpec, now: UnixMs) -> UnixMs {
    spec.eta_ms
        .unwrap_or(0)
        .max(spec.countdown_ms.map_or(0, |c| now.saturating_add(c)))
}

impl QueueState {
    pub(super) fn submit_workflow(
        &mut self,
        spec: &WorkflowSpec,
        effects: &mut ApplyEffects,
    ) -> Result<WorkflowSubmitted, WorkflowRefusal> {
        spec.check()?;
        if let Some(key) = &spec.idempotency_key
            && let Some(id) = self.idempotency.get(&self.tasks, key.as_bytes())
        {
            let wf = self.deps.member.get(&id).copied();
            return match wf.and_then(|wf| Some((wf, self.deps.workflows.get(&wf)?))) {
                Some((wf, w)) => Ok(WorkflowSubmitted {
                    id: wf,
                    tasks: w.tasks.clone(),
                    duplicate: true,
                }),
                None => Err(WorkflowRefusal::KeyTaken(id)),
            };
        }
        for (i, t) in spec.tasks.iter().enumerate() {
            for p in &t.parents {
                if let Parent::Task(id) = p
                    && self.tasks.get(*id).is_none()
                {
                    return Err(WorkflowRefusal::UnknownParent {
                        task: i as u32,
                        parent: *id,
                    });
                }
            }
        }
        let now = self.now_ms;
        let wf = self.deps.last_workflow.saturating_add(1);
        self.deps.last_workflow = wf;
        let mut ids: Vec<TaskId> = Vec::with_capacity(spec.tasks.len());
        let mut links = Vec::with_capacity(spec.tasks.len());
        for (i, t) in spec.tasks.iter().enumerate() {
            let waiting = !t.parents.is_empty();
            let id = match (&spec.idempotency_key, i) {
                (Some(key), 0) => {
                    let mut keyed = t.spec.clone();
                    keyed.idempotency_key = Some(key.clone());
                    self.submit_task(&keyed, waiting, effects).id
                }
                _ => self.submit_task(&t.spec, waiting, effects).id,
            };
            let parents = t
                .parents
                .iter()
                .map(|p| match p {
                    Parent::Task(id) => *id,
                    // Checked: an earlier index.
                    Parent::Index(j) => ids.get(*j as usize).copied().unwrap_or_default(),
                })
                .collect();
            ids.push(id);
            self.deps.member.insert(id, wf);
            links.push(Link {
                parents,
                wait: t.wait,
                released: 0,
                early: false,
            });
        }
        // Parents that are final already decide at once, after every link exists.
        let mut decided = Vec::new();
        for (i, (link, t)) in links.iter().zip(&spec.tasks).enumerate() {
            if link.parents.is_empty() {
                continue;
            }
            let kid = ids[i];
            let n = link.parents.len();
            self.deps.waiting.insert(
                kid,
                Waiter {
                    workflow: wf,
                    index: i as u32,
                    results: match link.wait {
                        WaitFor::AllSucceed => vec![None; n],
                        WaitFor::AnyFails => Vec::new(),
                    },
                    left: u32::try_from(n).unwrap_or(u32::MAX),
                    due: due_of(&t.spec, now),
                },
            );
            for p in &link.parents {
                if self.tasks.get(*p).is_some_and(|t| t.state.is_final()) {
                    decided.push((kid, *p));
                } else {
                    self.deps.children.entry(*p).or_default().push(kid);
                }
            }
        }
        self.deps.workflows.insert(
            wf,
            Workflow {
                created_ms: now,
                tasks: ids.clone(),
                links,
                shape: spec.shape.clone(),
                live: u32::try_from(ids.len()).unwrap_or(u32::MAX),
            },
        );
        for (kid, p) in decided {
            self.parent_final(kid, p, effects);
        }
        Ok(WorkflowSubmitted {
            id: wf,
            tasks: ids,
            duplicate: false,
        })
    }

    /// Walk `effects.finished` from `*cursor`: forget waiters that ended (cancelled), and tell
    /// every waiting dependent of a task that ended. Cascades append to the list and are
    /// walked too.
    pub(super) fn resolve_deps(&mut self, cursor: &mut usize, effects: &mut ApplyEffects) {
        if self.deps.waiting.is_empty() {
            *cursor = effects.finished.len();
            return;
        }
        while let Some(&id) = effects.finished.get(*cursor) {
            *cursor += 1;
            if let Some(w) = self.deps.waiting.remove(&id) {
                let parents = self.deps.parents_of(&w).0.to_vec();
                self.deps.unlink_children(id, &parents);
            }
            if let Some(kids) = self.deps.children.remove(&id) {
                for kid in kids {
                    self.parent_final(kid, id, effects);
                }
            }
        }
    }

    /// Parent `p` of waiting task `kid` is final: count it, and release or cancel `kid` if
    /// that decides it.
    fn parent_final(&mut self, kid: TaskId, p: TaskId, effects: &mut ApplyEffects) {
        let (state, output) = match self.tasks.get(p) {
            Some(t) => (t.state, t.output().cloned()),
            None => (TaskState::Cancelled, Some(Output::Error("purged".into()))),
        };
        let Some(w) = self.deps.waiting.get_mut(&kid) else {
            return;
        };
        let (wait, slots) = match self
            .deps
            .workflows
            .get(&w.workflow)
            .and_then(|wf| wf.links.get(w.index as usize))
        {
            Some(l) => (
                l.wait,
                l.parents
                    .iter()
                    .enumerate()
                    .filter(|(_, q)| **q == p)
                    .map(|(i, _)| i)
                    .collect::<Vec<_>>(),
            ),
            None => return,
        };
        let error = match &output {
            Some(Output::Error(e)) => e.to_string(),
            _ => String::new(),
        };
        match (wait, state) {
            (WaitFor::AllSucceed, TaskState::Succeeded) => {
                let result = match output {
                    Some(Output::Result(r)) => r,
                    _ => Bytes::new(),
                };
                for slot in slots {
                    if let Some(r) = w.results.get_mut(slot)
                        && r.is_none()
                    {
                        *r = Some(result.clone());
                        w.left = w.left.saturating_sub(1);
                    }
                }
                // A deliberate bug may release a task one parent too early, for `sim dst`.
                let early = bugs::active(bugs::Bug::CallbackEarly) && w.left == 1 && w.results.len() > 1;
                if w.left == 0 || early {
                    let value = results_json(&w.results);
                    self.release_waiter(kid, PARENT_RESULTS_HEADER, value, effects);
                }
            }
            (WaitFor::AllSucceed, _) => {
                let what = if state == TaskState::Cancelled {
                    "cancelled"
                } else {
                    "dead"
                };
                let reason = if error.is_empty() {
                    format!("parent task {p} {what}")
                } else {
                    format!("parent task {p} {what}: {error}")
                };
                self.cancel_waiter(kid, reason, effects);
            }
            (WaitFor::AnyFails, TaskState::Succeeded) => {
                w.left = w.left.saturating_sub(1);
                if w.left == 0 {
                    self.cancel_waiter(kid, "every parent succeeded: no error to handle".into(), effects);
                }
            }
            (WaitFor::AnyFails, _) => {
                let value = parent_error_json(p, state, &error);
                self.release_waiter(kid, PARENT_ERROR_HEADER, value, effects);
            }
        }
    }

    /// The waiting task `kid` may run: pending (or scheduled, if its ETA is ahead) with the
    /// header `name: value`.
    fn release_waiter(&mut self, kid: TaskId, name: &str, value: String, effects: &mut ApplyEffects) {
        let Some(w) = self.deps.waiting.remove(&kid) else {
            return;
        };
        let (parents, wait) = self.deps.parents_of(&w);
        let parents = parents.to_vec();
        // Recounted from the table, independently of `left`: were the parents final?
        let decided = match wait {
            WaitFor::AllSucceed => parents
                .iter()
                .all(|p| self.tasks.get(*p).is_none_or(|t| t.state == TaskState::Succeeded)),
            WaitFor::AnyFails => parents.iter().any(|p| {
                self.tasks
                    .get(*p)
                    .is_some_and(|t| t.state.is_final() && t.state != TaskState::Succeeded)
            }),
        };
        self.deps.unlink_children(kid, &parents);
        if let Some(link) = self.deps.link_mut(w.workflow, w.index) {
            link.released = link.released.saturating_add(1);
            link.early |= !decided;
        }
        self.extras.insert_header(kid, name, value);
        let now = self.now_ms;
        let Some(t) = self.tasks.get_mut(kid) else { return };
        if t.state != TaskState::Scheduled || t.timer_ms != WAITING_MS {
            return;
        }
        if w.due > now {
            self.idx.set_state(kid, t, To::Scheduled { due: w.due }, now);
        } else {
            self.idx.set_state(kid, t, To::Pending, now);
            effects.became_pending += 1;
        }
    }

    /// The waiting task `kid` will never run: cancelled, with `reason` as its error.
    fn cancel_waiter(&mut self, kid: TaskId, reason: String, effects: &mut ApplyEffects) {
        let Some(w) = self.deps.waiting.remove(&kid) else {
            return;
        };
        let parents = self.deps.parents_of(&w).0.to_vec();
        self.deps.unlink_children(kid, &parents);
        let now = self.now_ms;
        let Some(t) = self.tasks.get_mut(kid) else { return };
        if t.state != TaskState::Scheduled {
            return;
        }
        t.set_output(Output::Error(reason.into()));
        self.idx.set_state(kid, t, To::Final(TaskState::Cancelled), now);
        effects.finished.push(kid);
    }

    /// Whether `id` waits for parents.
    pub fn is_waiting(&self, id: TaskId) -> bool {
        self.deps.waiting.contains_key(&id)
    }

    /// The workflow task `id` belongs to, if any.
    pub fn workflow_of(&self, id: TaskId) -> Option<WorkflowId> {
        self.deps.member.get(&id).copied()
    }

    /// The workflows' table.
    pub fn deps(&self) -> &Deps {
        &self.deps
    }

    /// Workflow `id`'s state and results as one object; `None` once its last task is purged.
    pub fn workflow(&self, id: WorkflowId) -> Option<WorkflowView> {
        let w = self.deps.workflows.get(&id)?;
        let tasks: Vec<WorkflowTaskView> = w
            .tasks
            .iter()
            .zip(&w.links)
            .map(|(tid, link)| WorkflowTaskView {
                id: *tid,
                task: self.task(*tid),
                waiting: self.deps.waiting.contains_key(tid),
                parents: link.parents.clone(),
                errback: link.wait == WaitFor::AnyFails,
            })
            .collect();
        let shaped = || tasks.iter().filter(|t| !t.errback);
        let state_of = |t: &WorkflowTaskView| t.task.as_ref().map(|v| v.state);
        let failed = shaped().find(|t| matches!(state_of(t), Some(TaskState::Dead | TaskState::Cancelled)));
        let state = if failed.is_some() {
            WorkflowState::Failed
        } else if shaped().all(|t| state_of(t) == Some(TaskState::Succeeded)) {
            WorkflowState::Succeeded
        } else {
            WorkflowState::Running
        };
        // Prefer the error of a task that failed by itself over the cancellations it caused.
        let error = shaped()
            .find(|t| state_of(t) == Some(TaskState::Dead))
            .or(failed)
            .and_then(|t| t.task.as_ref()?.error.clone());
        let result = (state == WorkflowState::Succeeded)
            .then(|| shape_result(&w.shape, &tasks))
            .flatten()
            .map(|r| r.as_bytes().to_vec());
        Some(WorkflowView {
            id,
            state,
            result,
            error,
            created_ms: w.created_ms,
            tasks,
        })
    }

    /// `callbacks_exact` (issue 12): no task left waiting more than once, none before its
    /// parents were final, and none still waiting once they decided it. For tests and
    /// `sim dst`, at every applied index.
    pub fn callbacks_exact(&self) -> Result<(), String> {
        for (wf, w) in &self.deps.workflows {
            for (tid, link) in w.tasks.iter().zip(&w.links) {
                if link.released > 1 {
                    return Err(format!(
                        "workflow {wf}: task {tid} became pending {} times",
                        link.released
                    ));
                }
                if link.early {
                    return Err(format!(
                        "workflow {wf}: task {tid} became pending before its parents {:?} were final",
                        link.parents
                    ));
                }
                if link.parents.is_empty() || !self.deps.waiting.contains_key(tid) {
                    continue;
                }
                let state = |p: &TaskId| self.tasks.get(*p).map(|t| t.state);
                let decided = match link.wait {
                    WaitFor::AllSucceed => {
                        link.parents
                            .iter()
                            .all(|p| state(p) == Some(TaskState::Succeeded))
                            || link
                                .parents
                                .iter()
                                .any(|p| state(p).is_some_and(|s| s.is_final() && s != TaskState::Succeeded))
                    }
                    WaitFor::AnyFails => link
                        .parents
                        .iter()
                        .any(|p| state(p).is_some_and(|s| s.is_final() && s != TaskState::Succeeded)),
                };
                if decided {
                    return Err(format!(
                        "workflow {wf}: task {tid} still waits though its parents {:?} decided it",
                        link.parents
                    ));
                }
            }
        }
        Ok(())
    }

    /// The table agrees with the tasks: every waiter is a waiting `Scheduled` task of its
    /// workflow and the reverse; the links parent → dependent are exactly the undecided ones;
    /// every workflow counts its unpurged tasks.
    pub(super) fn check_deps(&self) -> Result<(), String> {
        let d = &self.deps;
        let mut links = 0usize;
        for (id, w) in &d.waiting {
            // (A plain task may have that timer too: an ETA at the end of time.)
            if !self
                .tasks
                .get(*id)
                .is_some_and(|t| t.state == TaskState::Scheduled && t.timer_ms == WAITING_MS)
            {
                return Err(format!("waiting task {id} is not scheduled at the end of time"));
            }
            if d.member.get(id) != Some(&w.workflow) {
                return Err(format!("waiting task {id} is not in its workflow {}", w.workflow));
            }
            let (parents, wait) = d.parents_of(w);
            let undecided: Vec<&TaskId> = match wait {
                WaitFor::AllSucceed => parents
                    .iter()
                    .zip(&w.results)
                    .filter(|(_, r)| r.is_none())
                    .map(|(p, _)| p)
                    .collect(),
                WaitFor::AnyFails => parents
                    .iter()
                    .filter(|p| self.tasks.get(**p).is_some_and(|t| !t.state.is_final()))
                    .collect(),
            };
            if undecided.len() != w.left as usize || w.left == 0 {
                return Err(format!(
                    "waiting task {id}: {} undecided parents, counted {}",
                    undecided.len(),
                    w.left
                ));
            }
            for p in undecided {
                if !d.children.get(p).is_some_and(|k| k.contains(id)) {
                    return Err(format!("waiting task {id}: no link from its parent {p}"));
                }
                links += 1;
            }
        }
        let held: usize = d.children.values().map(Vec::len).sum();
        if held != links {
            return Err(format!("{held} parent links held, {links} undecided"));
        }
        let mut live: BTreeMap<WorkflowId, u32> = BTreeMap::new();
        for (id, wf) in &d.member {
            if self.tasks.get(*id).is_none() {
                return Err(format!("workflow {wf} holds purged task {id}"));
            }
            *live.entry(*wf).or_default() += 1;
        }
        for (wf, w) in &d.workflows {
            if live.get(wf) != Some(&w.live) || w.tasks.len() != w.links.len() || *wf > d.last_workflow {
                return Err(format!("workflow {wf}: live count or links disagree"));
            }
        }
        if live.len() != d.workflows.len() {
            return Err("a task belongs to a workflow that does not exist".into());
        }
        Ok(())
    }
}

/// `[r1,r2,…]`: the results as one JSON array (an empty result reads `null`).
fn results_json(results: &[Option<Bytes>]) -> String {
    let parts: Vec<String> = results
        .iter()
        .map(|r| match r {
            Some(b) if !b.is_empty() => String::from_utf8_lossy(b).into_owned(),
            _ => "null".into(),
        })
        .collect();
    format!("[{}]", parts.join(","))
}

/// The JSON result of a succeeded workflow's shape: nodes name only earlier nodes, so one
/// pass in order computes every node (no recursion, however deep the nesting).
fn shape_result(shape: &[ShapeNode], tasks: &[WorkflowTaskView]) -> Option<String> {
    let mut out: Vec<Option<Rc<str>>> = Vec::with_capacity(shape.len());
    for node in shape {
        let at = |i: &u32| out.get(*i as usize).cloned().flatten();
        let r: Option<Rc<str>> = match node {
            ShapeNode::Task(i) => tasks
                .get(*i as usize)
                .and_then(|t| t.task.as_ref()?.result.clone())
                .map(|b| {
                    if b.is_empty() {
                        Rc::from("null")
                    } else {
                        Rc::from(String::from_utf8_lossy(&b).as_ref())
                    }
                }),
            ShapeNode::Chain(items) => items.last().and_then(at),
            ShapeNode::Group(items) => {
                let parts: Option<Vec<Rc<str>>> = items.iter().map(at).collect();
                parts.map(|p| Rc::from(format!("[{}]", p.join(",")).as_str()))
            }
            ShapeNode::Chord { body, .. } => at(body),
        };
        out.push(r);
    }
    out.pop().flatten().map(|r| r.to_string())
}
