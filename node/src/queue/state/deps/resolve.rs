//! Parents that end: release (pending, with their results) or cancel their waiting
//! dependents, cascading through `effects.finished`.

use bytes::Bytes;

use super::WAITING_MS;
use crate::bugs;
use crate::queue::command::*;
use crate::queue::state::ApplyEffects;
use crate::queue::state::Output;
use crate::queue::state::QueueState;
use crate::queue::state::To;

impl QueueState {
    /// Walk `effects.finished` from `*cursor`: forget waiters that ended (cancelled), and tell
    /// every waiting dependent of a task that ended. Cascades append to the list and are
    /// walked too.
    pub(in crate::queue::state) fn resolve_deps(&mut self, cursor: &mut usize, effects: &mut ApplyEffects) {
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
    pub(super) fn parent_final(&mut self, kid: TaskId, p: TaskId, effects: &mut ApplyEffects) {
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
