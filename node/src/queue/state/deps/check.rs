//! The invariants of the workflows' table: `callbacks_exact` (`sim dst`) and `check_deps`
//! (`check_invariants`).

use std::collections::BTreeMap;

use super::WAITING_MS;
use crate::queue::command::*;
use crate::queue::state::QueueState;

impl QueueState {
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
    pub(in crate::queue::state) fn check_deps(&self) -> Result<(), String> {
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
