//! [`Canvas`]: chain, group and chord (Celery's canvas), nested freely, and how one flattens
//! into a [`WorkflowSpec`]: tasks with parents, plus the shape that reads the result.
//!
//! Not stored in the log (the flat spec is): a canvas is built at the gRPC edge from the
//! request, checked for depth ([`MAX_CANVAS_DEPTH`]) and flattened here, in one place, so the
//! rules below hold for every client:
//!
//! - a **task** waits for the tasks before it (none at the start) and for the existing tasks
//!   it names;
//! - a **chain** runs its items in order: each waits for the last tasks of the one before;
//! - a **group** runs its items side by side, each waiting for what the group waits for; what
//!   follows it waits for the last tasks of every item, and gets their results as one list;
//! - a **chord** is its header, then its body waiting for the header's last tasks, with their
//!   results as one list.
//!
//! Each task with parents gets the header [`PASS_HEADER`]: `one` when it follows a single task
//! (a chain link: the previous result is its first argument), `list` when it follows a group
//! or a chord header, or names parents itself (the list of results is its first argument),
//! `none` for an immutable signature (Celery's `.si()`). The worker SDK reads it with
//! [`PARENT_RESULTS_HEADER`].

use super::TaskId;
use super::TaskSpec;
use super::workflow::*;

/// A canvas node. Recursive: built only at the edge, with its depth checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Canvas {
    Task {
        /// Boxed: a spec is large, and a canvas holds many nodes.
        spec: Box<TaskSpec>,
        /// Existing tasks it also waits for (their results come first in its list).
        parents: Vec<TaskId>,
        /// Immutable: the parents' results are not passed to it.
        immutable: bool,
    },
    Chain(Vec<Canvas>),
    Group(Vec<Canvas>),
    Chord {
        header: Box<Canvas>,
        body: Box<Canvas>,
    },
}

/// What the tasks after a node receive: the one result of a single task, or a list.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Gives {
    Nothing,
    One,
    List,
}

struct Flat {
    spec: WorkflowSpec,
}

impl Canvas {
    /// How deeply it nests (a task is 1).
    pub fn depth(&self) -> usize {
        match self {
            Canvas::Task { .. } => 1,
            Canvas::Chain(items) | Canvas::Group(items) => {
                1 + items.iter().map(Canvas::depth).max().unwrap_or(0)
            }
            Canvas::Chord { header, body } => 1 + header.depth().max(body.depth()),
        }
    }

    /// The workflow this canvas is: its tasks in order, parents before children, and its
    /// shape; with `on_error`, one more task, an error callback of every other task.
    pub fn flatten(
        &self,
        on_error: Option<TaskSpec>,
        idempotency_key: Option<String>,
    ) -> Result<WorkflowSpec, WorkflowRefusal> {
        if self.depth() > MAX_CANVAS_DEPTH {
            return Err(WorkflowRefusal::BadShape(format!(
                "canvases nest deeper than {MAX_CANVAS_DEPTH}"
            )));
        }
        let mut flat = Flat {
            spec: WorkflowSpec {
                tasks: Vec::new(),
                shape: Vec::new(),
                idempotency_key,
            },
        };
        flat.add(self, &[], Gives::Nothing)?;
        if let Some(mut spec) = on_error {
            let n = flat.spec.tasks.len();
            if n >= MAX_WORKFLOW_TASKS {
                return Err(WorkflowRefusal::TooManyTasks(n as u64 + 1));
            }
            spec.headers.insert(PASS_HEADER.into(), "error".into());
            flat.spec.tasks.push(WorkflowTask {
                spec,
                parents: (0..n as u32).map(Parent::Index).collect(),
                wait: WaitFor::AnyFails,
            });
        }
        flat.spec.check()?;
        Ok(flat.spec)
    }
}

impl Flat {
    /// Add `node` after the tasks `after` (which give `gives`); returns its last tasks, what
    /// they give, and its shape node.
    fn add(
        &mut self,
        node: &Canvas,
        after: &[u32],
        gives: Gives,
    ) -> Result<(Vec<u32>, Gives, u32), WorkflowRefusal> {
        if self.spec.tasks.len() >= MAX_WORKFLOW_TASKS {
            return Err(WorkflowRefusal::TooManyTasks(self.spec.tasks.len() as u64 + 1));
        }
        let (last, node) = match node {
            Canvas::Task {
                spec,
                parents,
                immutable,
            } => {
                let i = self.spec.tasks.len() as u32;
                let mut spec = TaskSpec::clone(spec);
                let all: Vec<Parent> = parents
                    .iter()
                    .map(|p| Parent::Task(*p))
                    .chain(after.iter().map(|j| Parent::Index(*j)))
                    .collect();
                if !all.is_empty() {
                    let pass = match (immutable, gives, parents.is_empty()) {
                        (true, _, _) => "none",
                        (false, Gives::One, true) => "one",
                        _ => "list",
                    };
                    spec.headers.insert(PASS_HEADER.into(), pass.into());
                }
                self.spec.tasks.push(WorkflowTask {
                    spec,
                    parents: all,
                    wait: WaitFor::AllSucceed,
                });
                return Ok((vec![i], Gives::One, self.node(ShapeNode::Task(i))));
            }
            Canvas::Chain(items) => {
                if items.is_empty() {
                    return Err(WorkflowRefusal::BadShape("an empty chain".into()));
                }
                let (mut last, mut gives, mut nodes) = (after.to_vec(), gives, Vec::new());
                for item in items {
                    let (l, g, n) = self.add(item, &last, gives)?;
                    (last, gives) = (l, g);
                    nodes.push(n);
                }
                return Ok((last, gives, self.node(ShapeNode::Chain(nodes))));
            }
            Canvas::Group(items) => {
                if items.is_empty() {
                    return Err(WorkflowRefusal::BadShape("an empty group".into()));
                }
                let (mut last, mut nodes) = (Vec::new(), Vec::new());
                for item in items {
                    let (l, _, n) = self.add(item, after, gives)?;
                    last.extend(l);
                    nodes.push(n);
                }
                (last, ShapeNode::Group(nodes))
            }
            Canvas::Chord { header, body } => {
                let (l, _, h) = self.add(header, after, gives)?;
                let (l, g, b) = self.add(body, &l, Gives::List)?;
                return Ok((l, g, self.node(ShapeNode::Chord { header: h, body: b })));
            }
        };
        Ok((last, Gives::List, self.node(node)))
    }

    fn node(&mut self, node: ShapeNode) -> u32 {
        self.spec.shape.push(node);
        self.spec.shape.len() as u32 - 1
    }
}
