//! `SubmitWorkflow`: a workflow's tasks created at once, waiting where they have parents.

use super::Link;
use super::Waiter;
use super::Workflow;
use super::due_of;
use crate::queue::command::*;
use crate::queue::state::ApplyEffects;
use crate::queue::state::QueueState;

impl QueueState {
    pub(in crate::queue::state) fn submit_workflow(
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
}
