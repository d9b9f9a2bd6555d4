//! Workflows (docs/WORKFLOWS.md): tasks that wait for parents, and Celery's canvas on top:
//! [`chain`], [`group`], [`chord`], nested freely, each submitted as one log entry
//! ([`Client::submit_workflow`]) and read back as one object ([`Client::workflow`],
//! [`Client::wait_workflow`]).
//!
//! ```no_run
//! # async fn demo(client: flotilla_client::Client) -> flotilla_client::Result<()> {
//! use std::time::Duration;
//! use flotilla_client::workflow::{chain, chord, group};
//! let add = |x: i64| client.task("add").args(&serde_json::json!([x])).unwrap();
//! // (1 + 1 + 1 + 1), then the callback gets [1, 1, 1] after the group: a chord.
//! let c = chord(group([add(1), add(1), add(1)]), client.task("sum"));
//! let w = client.submit_workflow(chain([add(1).into(), c]), None).await?;
//! let done = client.wait_workflow(w.id, Duration::from_secs(10)).await?;
//! println!("{:?} {}", done.state, String::from_utf8_lossy(&done.result));
//! # Ok(()) }
//! ```
//!
//! A task after another gets its parents' results in the header `flotilla-parent-results`
//! (a JSON array), and `flotilla-pass` says how an SDK passes them (`one`: the previous result
//! as the first argument; `list`: the list; `none`: not at all, an immutable signature).

use std::time::Duration;

use bytes::Bytes;
use flotilla_proto::v1 as pb;
use flotilla_proto::v1::workflow_service_client::WorkflowServiceClient;
use serde::Serialize;

use crate::client::{Client, with_timeout};
use crate::error::ClientError;
use crate::error::Result;
use crate::info::TaskInfo;
use crate::task::{TaskId, TaskRequest};

/// A canvas node: a task (a signature), or a chain, group or chord of canvases.
#[derive(Clone, Debug)]
pub enum Canvas {
    /// One task; `parents`: existing tasks it also waits for; `immutable`: it does not get
    /// its parents' results (Celery's `.si()`).
    Task {
        /// Boxed: a request is large, and a canvas holds many nodes.
        task: Box<TaskRequest>,
        parents: Vec<TaskId>,
        immutable: bool,
    },
    /// One after another, each getting the previous result.
    Chain(Vec<Canvas>),
    /// Side by side; what follows gets the list of their results.
    Group(Vec<Canvas>),
    /// The header, then the body with the list of the header's results.
    Chord(Box<Canvas>, Box<Canvas>),
}

impl From<TaskRequest> for Canvas {
    fn from(task: TaskRequest) -> Self {
        Canvas::Task {
            task: Box::new(task),
            parents: Vec::new(),
            immutable: false,
        }
    }
}

impl Canvas {
    /// A task that waits for existing tasks `parents` and gets their results as a list.
    pub fn after(task: TaskRequest, parents: impl IntoIterator<Item = TaskId>) -> Self {
        Canvas::Task {
            task: Box::new(task),
            parents: parents.into_iter().collect(),
            immutable: false,
        }
    }

    /// A task that does not get its parents' results (Celery's `.si()`).
    pub fn immutable(task: TaskRequest) -> Self {
        Canvas::Task {
            task: Box::new(task),
            parents: Vec::new(),
            immutable: true,
        }
    }

    fn to_pb(&self) -> pb::Canvas {
        use pb::canvas::Node;
        let list = |items: &[Canvas]| pb::CanvasList {
            items: items.iter().map(Canvas::to_pb).collect(),
        };
        let node = match self {
            Canvas::Task {
                task,
                parents,
                immutable,
            } => Node::Task(pb::CanvasTask {
                spec: Some(spec(task)),
                parents: parents.iter().map(|p| p.0).collect(),
                immutable: *immutable,
            }),
            Canvas::Chain(items) => Node::Chain(list(items)),
            Canvas::Group(items) => Node::Group(list(items)),
            Canvas::Chord(h, b) => Node::Chord(Box::new(pb::Chord {
                header: Some(Box::new(h.to_pb())),
                body: Some(Box::new(b.to_pb())),
            })),
        };
        pb::Canvas { node: Some(node) }
    }
}

/// A workflow task carries no key of its own: the workflow's key makes its submit exactly once.
fn spec(task: &TaskRequest) -> pb::TaskSpec {
    let mut spec = pb::TaskSpec::from(task.clone());
    spec.idempotency_key.clear();
    spec
}

/// Items one after another, each getting the previous result.
pub fn chain(items: impl IntoIterator<Item = Canvas>) -> Canvas {
    Canvas::Chain(items.into_iter().collect())
}

/// Tasks (or canvases) side by side.
pub fn group<C: Into<Canvas>>(items: impl IntoIterator<Item = C>) -> Canvas {
    Canvas::Group(items.into_iter().map(Into::into).collect())
}

/// `header`, then `body` with the list of the header's results.
pub fn chord(header: Canvas, body: impl Into<Canvas>) -> Canvas {
    Canvas::Chord(Box::new(header), Box::new(body.into()))
}

/// What [`Client::submit_workflow`] created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WorkflowSubmitted {
    pub id: u64,
    /// The tasks in canvas order (depth first), the error callback last.
    pub task_ids: Vec<TaskId>,
    /// A retried submit found the workflow the first one created.
    pub duplicate: bool,
}

/// A workflow's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowState {
    Running,
    Succeeded,
    Failed,
    Unknown,
}

/// One task of a workflow.
#[derive(Clone, Debug)]
pub struct WorkflowTask {
    pub id: TaskId,
    /// `None` once purged.
    pub task: Option<TaskInfo>,
    /// Still waiting for its parents.
    pub waiting: bool,
    pub parents: Vec<TaskId>,
    /// An error callback.
    pub errback: bool,
}

/// A workflow as one object.
#[derive(Clone, Debug)]
pub struct WorkflowInfo {
    pub id: u64,
    pub state: WorkflowState,
    /// JSON once succeeded: a chain's last result, a group's list, a chord's body's.
    pub result: Bytes,
    pub error: Option<String>,
    pub created_unix_ms: u64,
    pub tasks: Vec<WorkflowTask>,
}

impl WorkflowInfo {
    /// The result, decoded from JSON.
    pub fn result_json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        Ok(serde_json::from_slice(&self.result)?)
    }
}

impl From<pb::GetWorkflowResponse> for WorkflowInfo {
    fn from(r: pb::GetWorkflowResponse) -> Self {
        let state = match pb::WorkflowState::try_from(r.state) {
            Ok(pb::WorkflowState::Running) => WorkflowState::Running,
            Ok(pb::WorkflowState::Succeeded) => WorkflowState::Succeeded,
            Ok(pb::WorkflowState::Failed) => WorkflowState::Failed,
            _ => WorkflowState::Unknown,
        };
        WorkflowInfo {
            id: r.id,
            state,
            result: r.result,
            error: (!r.error.is_empty()).then_some(r.error),
            created_unix_ms: r.created_unix_ms,
            tasks: r
                .tasks
                .into_iter()
                .map(|t| WorkflowTask {
                    id: TaskId(t.id),
                    task: t.task.map(Into::into),
                    waiting: t.waiting,
                    parents: t.parents.into_iter().map(TaskId).collect(),
                    errback: t.errback,
                })
                .collect(),
        }
    }
}

type Stub = WorkflowServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, crate::token::BearerToken>,
>;

fn stub(client: &Client, node: usize) -> Stub {
    WorkflowServiceClient::new(client.channel(node))
        .max_decoding_message_size(crate::client::MAX_DECODING_MESSAGE_BYTES)
}

impl Client {
    /// Submit `canvas` as one workflow (one log entry: all or nothing), with an optional error
    /// callback that runs once if any task ends dead or cancelled. Retried submits are exactly
    /// once (the workflow carries an idempotency key).
    pub async fn submit_workflow(
        &self,
        canvas: Canvas,
        on_error: Option<TaskRequest>,
    ) -> Result<WorkflowSubmitted> {
        let request = pb::SubmitWorkflowRequest {
            canvas: Some(canvas.to_pb()),
            on_error: on_error.as_ref().map(spec),
            idempotency_key: self.task("").idempotency_key,
        };
        let len = flotilla_proto::encoded_len(&request);
        if len > flotilla_proto::MAX_REQUEST_BYTES {
            return Err(ClientError::InvalidArgument(format!(
                "the workflow request takes {len} bytes, over the limit of {} bytes a node reads: \
                 split it into smaller workflows, or pass large arguments by reference",
                flotilla_proto::MAX_REQUEST_BYTES
            )));
        }
        let r = self
            .unary_on(stub, None, |mut c, t| {
                let r = with_timeout(request.clone(), t);
                async move { c.submit_workflow(r).await }
            })
            .await?;
        Ok(WorkflowSubmitted {
            id: r.id,
            task_ids: r.task_ids.into_iter().map(TaskId).collect(),
            duplicate: r.duplicate,
        })
    }

    /// Workflow `id` as one object: its state, result and tasks.
    pub async fn workflow(&self, id: u64) -> Result<WorkflowInfo> {
        self.get_workflow(pb::GetWorkflowRequest {
            id,
            ..Default::default()
        })
        .await
    }

    /// The workflow task `task` belongs to.
    pub async fn workflow_of_task(&self, task: TaskId) -> Result<WorkflowInfo> {
        self.get_workflow(pb::GetWorkflowRequest {
            task_id: task.0,
            ..Default::default()
        })
        .await
    }

    async fn get_workflow(&self, request: pb::GetWorkflowRequest) -> Result<WorkflowInfo> {
        self.unary_on(stub, None, |mut c, t| {
            let r = with_timeout(request, t);
            async move { c.get_workflow(r).await }
        })
        .await
        .map(WorkflowInfo::from)
    }

    /// Wait until every task of workflow `id` is final (or `timeout` passes:
    /// [`ClientError::Timeout`]), then read it.
    pub async fn wait_workflow(&self, id: u64, timeout: Duration) -> Result<WorkflowInfo> {
        let w = self.workflow(id).await?;
        let open: Vec<TaskId> = w
            .tasks
            .iter()
            .filter(|t| t.task.as_ref().is_some_and(|i| !i.state.is_final()))
            .map(|t| t.id)
            .collect();
        if open.is_empty() {
            return Ok(w);
        }
        self.wait_all(open, timeout).await?;
        self.workflow(id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 12 item 4: a workflow within the task count whose request is over a node's size
    /// limit (100,000 tasks of 700-byte arguments, ~72 MB) is refused before it is sent,
    /// naming the sizes. No node listens at the address: nothing is sent.
    #[tokio::test]
    async fn a_workflow_request_over_the_size_limit_is_refused_before_it_is_sent() {
        let client = Client::connect(["127.0.0.1:1"]).await.unwrap();
        let big = serde_json::json!("x".repeat(700));
        let heavy = group((0..100_000).map(|_| client.task("noop").args(&big).unwrap()));
        let err = client.submit_workflow(heavy, None).await.unwrap_err();
        assert!(
            matches!(&err, ClientError::InvalidArgument(m)
                if m.contains("over the limit of 67108864 bytes a node reads")),
            "{err}"
        );
    }
}
