//! Workflows as the log carries them: tasks that wait for parent tasks, and the shape (chain,
//! group, chord, nested) that says how the workflow's result reads. Entry format 9.
//!
//! The rules (when a waiting task becomes pending, what a failed parent does to its
//! dependents, when the bookkeeping goes) live in `state/deps.rs`; docs/WORKFLOWS.md explains
//! them with examples. A canvas (chain/group/chord) is flattened into a [`WorkflowSpec`] at the
//! gRPC edge (`grpc/workflow_service.rs`), so the state machine knows only parents, never
//! canvases, and the whole workflow is one entry: submitted atomically, all or nothing.

use serde::Deserialize;
use serde::Serialize;

use super::TaskId;
use super::TaskSpec;
use super::UnixMs;

/// Cluster-assigned workflow id: a sequence number from 1, never reused.
pub type WorkflowId = u64;

/// Most tasks one workflow holds (a 100,000-task group fits; one more is refused).
pub const MAX_WORKFLOW_TASKS: usize = 100_000;

/// Most nodes of a workflow's shape.
pub const MAX_SHAPE_NODES: usize = 2 * MAX_WORKFLOW_TASKS;

/// How deep canvases may nest (chain in group in chord ...), checked where a canvas enters.
pub const MAX_CANVAS_DEPTH: usize = 32;

/// Header a dependent task receives when its parents all succeeded: a JSON array of their
/// results, in the order the parents are named.
pub const PARENT_RESULTS_HEADER: &str = "flotilla-parent-results";

/// Header an error callback receives when it runs: a JSON object `{"task": id, "state":
/// "dead"|"cancelled", "error": text}` naming the first parent that did not succeed.
pub const PARENT_ERROR_HEADER: &str = "flotilla-parent-error";

/// Header set by the canvas (not by the state machine) saying how a worker SDK passes
/// [`PARENT_RESULTS_HEADER`] to the handler: `one` (the single previous result as the first
/// argument, a chain link), `list` (the list of results as the first argument, a chord
/// callback or a task after a group) or `none` (an immutable signature).
pub const PASS_HEADER: &str = "flotilla-pass";

/// A parent of a workflow task: an existing task, or an earlier task of the same workflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Parent {
    /// A task submitted before (it must still exist: its result is needed).
    Task(TaskId),
    /// The task at this index of [`WorkflowSpec::tasks`], which must be lower than the
    /// naming task's own index (so every workflow is a DAG).
    Index(u32),
}

/// What a waiting task waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WaitFor {
    /// Every parent succeeded (pending then, with their results). A parent that ends dead or
    /// cancelled cancels it, with the reason.
    AllSucceed,
    /// An error callback (Celery's `link_error`): pending as soon as one parent ends dead or
    /// cancelled, so exactly once however many fail; cancelled when every parent succeeded.
    AnyFails,
}

/// One task of a workflow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowTask {
    pub spec: TaskSpec,
    /// Empty: the task is pending (or scheduled) at once, like a plain submit.
    pub parents: Vec<Parent>,
    pub wait: WaitFor,
}

/// One node of a workflow's shape; nodes name only earlier nodes, and the last is the root.
/// Flat on purpose: a nested type would let a deep entry exhaust the stack while decoding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShapeNode {
    /// The task at this index: its result.
    Task(u32),
    /// Run one after another: the result of the last node.
    Chain(Vec<u32>),
    /// Run in parallel: the list of the nodes' results.
    Group(Vec<u32>),
    /// A header (usually a group), then the body with all its results: the body's result.
    Chord { header: u32, body: u32 },
}

/// A workflow to submit in one entry: its tasks (parents before children) and its shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowSpec {
    pub tasks: Vec<WorkflowTask>,
    pub shape: Vec<ShapeNode>,
    /// Exactly-once submit: a key seen before returns the earlier workflow. Held as the
    /// idempotency key of the workflow's first task (task keys of their own are refused).
    pub idempotency_key: Option<String>,
}

/// What `SubmitWorkflow` created (or found, by its key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowSubmitted {
    pub id: WorkflowId,
    /// The ids of the workflow's tasks, in the order of [`WorkflowSpec::tasks`].
    pub tasks: Vec<TaskId>,
    /// The key had been seen: nothing was created.
    pub duplicate: bool,
}

/// Why `SubmitWorkflow` created nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum WorkflowRefusal {
    #[error("a workflow needs at least one task")]
    Empty,
    #[error("a workflow of {0} tasks is over the limit of {MAX_WORKFLOW_TASKS}")]
    TooManyTasks(u64),
    #[error("task {task} of the workflow names parent index {parent}, which is not an earlier task")]
    BadParentIndex { task: u32, parent: u32 },
    #[error(
        "task {task} of the workflow names parent task {parent}, which does not exist (never, or purged)"
    )]
    UnknownParent { task: u32, parent: TaskId },
    #[error("task {0} of the workflow names the same parent twice")]
    DuplicateParent(u32),
    #[error("task {0} of the workflow is an error callback without parents")]
    ErrbackWithoutParents(u32),
    #[error("task {0} of the workflow has an idempotency key of its own (key the workflow instead)")]
    TaskKey(u32),
    #[error("the workflow's shape is invalid: {0}")]
    BadShape(String),
    #[error("idempotency key taken by task {0}, which is not a workflow's")]
    KeyTaken(TaskId),
}

/// A workflow's state, read as one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkflowState {
    /// Some task is not final yet.
    Running,
    /// Every task of the shape succeeded (error callbacks not counted).
    Succeeded,
    /// A task of the shape ended dead or cancelled; the rest are final.
    Failed,
}

/// One task of a workflow as [`WorkflowView`] shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowTaskView {
    pub id: TaskId,
    /// `None` once purged.
    pub task: Option<super::TaskView>,
    /// Still waiting for its parents (its task state reads `Scheduled`).
    pub waiting: bool,
    pub parents: Vec<TaskId>,
    /// An error callback.
    pub errback: bool,
}

/// A workflow's state and results as one object (`GetWorkflow`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowView {
    pub id: WorkflowId,
    pub state: WorkflowState,
    /// JSON: the root's result (a chain's last, a group's list, a chord's body's), once
    /// succeeded.
    pub result: Option<Vec<u8>>,
    /// The first failed task's error (by task order), once failed.
    pub error: Option<String>,
    pub created_ms: UnixMs,
    pub tasks: Vec<WorkflowTaskView>,
}

impl WorkflowSpec {
    /// The checks that need no state: parent indexes, keys, errbacks, the shape. `apply` runs
    /// them again (all or nothing); the gRPC edge runs them first for a clear error.
    pub fn check(&self) -> Result<(), WorkflowRefusal> {
        if self.tasks.is_empty() {
            return Err(WorkflowRefusal::Empty);
        }
        if self.tasks.len() > MAX_WORKFLOW_TASKS {
            return Err(WorkflowRefusal::TooManyTasks(self.tasks.len() as u64));
        }
        for (i, t) in self.tasks.iter().enumerate() {
            let i = i as u32;
            if t.spec.idempotency_key.is_some() {
                return Err(WorkflowRefusal::TaskKey(i));
            }
            if t.wait == WaitFor::AnyFails && t.parents.is_empty() {
                return Err(WorkflowRefusal::ErrbackWithoutParents(i));
            }
            let mut seen = std::collections::BTreeSet::new();
            for p in &t.parents {
                if let Parent::Index(j) = p
                    && *j >= i
                {
                    return Err(WorkflowRefusal::BadParentIndex { task: i, parent: *j });
                }
                if !seen.insert(*p) {
                    return Err(WorkflowRefusal::DuplicateParent(i));
                }
            }
        }
        self.check_shape().map_err(WorkflowRefusal::BadShape)
    }

    fn check_shape(&self) -> Result<(), String> {
        if self.shape.is_empty() {
            return Err("no nodes".into());
        }
        if self.shape.len() > MAX_SHAPE_NODES {
            return Err(format!(
                "{} nodes is over the limit of {MAX_SHAPE_NODES}",
                self.shape.len()
            ));
        }
        let n = self.tasks.len() as u32;
        for (i, node) in self.shape.iter().enumerate() {
            let i = i as u32;
            let earlier = |j: &u32| *j < i;
            let ok = match node {
                ShapeNode::Task(t) => *t < n,
                ShapeNode::Chain(items) | ShapeNode::Group(items) => {
                    !items.is_empty() && items.iter().all(earlier)
                }
                ShapeNode::Chord { header, body } => earlier(header) && earlier(body),
            };
            if !ok {
                return Err(format!("node {i} names a task or node out of range (or none)"));
            }
        }
        Ok(())
    }
}

/// The JSON object [`PARENT_ERROR_HEADER`] carries.
pub fn parent_error_json(task: TaskId, state: super::TaskState, error: &str) -> String {
    let state = match state {
        super::TaskState::Cancelled => "cancelled",
        _ => "dead",
    };
    let error = serde_json::to_string(error).unwrap_or_else(|_| "\"\"".into());
    format!(r#"{{"task":{task},"state":"{state}","error":{error}}}"#)
}
