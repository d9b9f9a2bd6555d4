//! Reads of the workflows' table: waiting tasks, and a workflow's state and results as one
//! object.

use std::rc::Rc;

use super::Deps;
use crate::queue::command::*;
use crate::queue::state::QueueState;

impl QueueState {
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
