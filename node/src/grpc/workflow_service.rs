//! `flotilla.v1.WorkflowService`: workflows (`queue/state/deps.rs`, docs/WORKFLOWS.md). A
//! canvas from the wire is checked (depth, size), its task specs validated like a submit's,
//! and flattened by [`Canvas::flatten`] into one `SubmitWorkflow` command: one log entry, all
//! or nothing. Reads go behind the queue service's read barrier, like every read.

use flotilla_proto::v1 as pb;
use flotilla_proto::v1::workflow_service_server::WorkflowService;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use super::queue_service::QueueApi;
use super::status::ApiError;
use crate::proposer::Proposer;
use crate::queue::Canvas;
use crate::queue::MAX_CANVAS_DEPTH;
use crate::queue::MAX_WORKFLOW_TASKS;
use crate::queue::TaskSpec;
use crate::queue::WorkflowState;
use crate::queue::WorkflowView;
use crate::queue::ops;

/// The workflow service: submits through the proposer, reads through the queue service.
#[derive(Clone)]
pub struct WorkflowApi {
    queue: QueueApi,
    proposer: Proposer,
}

impl WorkflowApi {
    pub fn new(queue: QueueApi, proposer: Proposer) -> Self {
        Self { queue, proposer }
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::InvalidArgument(msg.into())
}

/// Every task spec of `c`, depth first, checking depth and count on the way.
fn collect(c: &pb::Canvas, depth: usize, out: &mut Vec<pb::TaskSpec>) -> Result<(), ApiError> {
    if depth > MAX_CANVAS_DEPTH {
        return Err(bad(format!("canvases nest deeper than {MAX_CANVAS_DEPTH}")));
    }
    match &c.node {
        None => return Err(bad("a canvas node is empty")),
        Some(pb::canvas::Node::Task(t)) => {
            if out.len() >= MAX_WORKFLOW_TASKS {
                return Err(bad(format!(
                    "a workflow of more than {MAX_WORKFLOW_TASKS} tasks is over the limit"
                )));
            }
            out.push(t.spec.clone().ok_or_else(|| bad("a canvas task has no spec"))?);
        }
        Some(pb::canvas::Node::Chain(l) | pb::canvas::Node::Group(l)) => {
            for item in &l.items {
                collect(item, depth + 1, out)?;
            }
        }
        Some(pb::canvas::Node::Chord(ch)) => {
            for part in [&ch.header, &ch.body] {
                collect(
                    part.as_ref()
                        .ok_or_else(|| bad("a chord lacks its header or body"))?,
                    depth + 1,
                    out,
                )?;
            }
        }
    }
    Ok(())
}

/// `c` as a domain canvas, taking its validated specs in the order [`collect`] found them.
fn build(c: pb::Canvas, specs: &mut std::vec::IntoIter<TaskSpec>) -> Result<Canvas, ApiError> {
    let missing = || bad("a canvas node is empty");
    Ok(match c.node.ok_or_else(missing)? {
        pb::canvas::Node::Task(t) => Canvas::Task {
            spec: Box::new(specs.next().ok_or_else(missing)?),
            parents: t.parents,
            immutable: t.immutable,
        },
        pb::canvas::Node::Chain(l) => Canvas::Chain(
            l.items
                .into_iter()
                .map(|i| build(i, specs))
                .collect::<Result<_, _>>()?,
        ),
        pb::canvas::Node::Group(l) => Canvas::Group(
            l.items
                .into_iter()
                .map(|i| build(i, specs))
                .collect::<Result<_, _>>()?,
        ),
        pb::canvas::Node::Chord(ch) => Canvas::Chord {
            header: Box::new(build(*ch.header.ok_or_else(missing)?, specs)?),
            body: Box::new(build(*ch.body.ok_or_else(missing)?, specs)?),
        },
    })
}

/// A workflow as the wire shows it.
pub fn workflow_pb(v: WorkflowView) -> pb::GetWorkflowResponse {
    let state = match v.state {
        WorkflowState::Running => pb::WorkflowState::Running,
        WorkflowState::Succeeded => pb::WorkflowState::Succeeded,
        WorkflowState::Failed => pb::WorkflowState::Failed,
    };
    pb::GetWorkflowResponse {
        id: v.id,
        state: state as i32,
        result: v.result.unwrap_or_default().into(),
        error: v.error.unwrap_or_default(),
        created_unix_ms: v.created_ms,
        tasks: v
            .tasks
            .into_iter()
            .map(|t| pb::WorkflowTask {
                task: t.task.map(Into::into),
                id: t.id,
                waiting: t.waiting,
                parents: t.parents,
                errback: t.errback,
            })
            .collect(),
    }
}

#[tonic::async_trait]
impl WorkflowService for WorkflowApi {
    async fn submit_workflow(
        &self,
        request: Request<pb::SubmitWorkflowRequest>,
    ) -> Result<Response<pb::SubmitWorkflowResponse>, Status> {
        let req = request.into_inner();
        let canvas = req.canvas.ok_or_else(|| bad("no canvas in the request"))?;
        let mut specs = Vec::new();
        collect(&canvas, 1, &mut specs)?;
        let has_errback = req.on_error.is_some();
        specs.extend(req.on_error);
        let mut specs = self.queue.validate_all(specs).await?;
        // The error callback was validated last.
        let on_error = if has_errback { specs.pop() } else { None };
        let canvas = build(canvas, &mut specs.into_iter())?;
        let key = (!req.idempotency_key.is_empty()).then_some(req.idempotency_key);
        let workflow = canvas.flatten(on_error, key).map_err(ApiError::from)?;
        let w = self
            .proposer
            .op(ops::SubmitWorkflow {
                workflow: Box::new(workflow),
            })
            .await
            .map_err(ApiError::from)?
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::SubmitWorkflowResponse {
            id: w.id,
            task_ids: w.tasks,
            duplicate: w.duplicate,
        }))
    }

    async fn get_workflow(
        &self,
        request: Request<pb::GetWorkflowRequest>,
    ) -> Result<Response<pb::GetWorkflowResponse>, Status> {
        let req = request.into_inner();
        if !req.stale_ok {
            self.queue.read_barrier().await?;
        }
        let view = self.queue.replica().read(|q| {
            let id = if req.id != 0 {
                Some(req.id)
            } else {
                q.workflow_of(req.task_id)
            };
            id.and_then(|id| q.workflow(id))
        });
        let view = view.ok_or(ApiError::NoWorkflow {
            id: req.id,
            task: req.task_id,
        })?;
        Ok(Response::new(workflow_pb(view)))
    }
}
