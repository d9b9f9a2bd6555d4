//! `flotilla.v1.QueueService`: what clients call. Validates input before anything reaches the
//! log (an invalid request stores nothing), proposes writes through the [`Proposer`], and reads
//! from the local [`Replica`] behind a read-index barrier unless the caller accepts stale data.
//!
//! A submitted task name must be known: in this node's registry or in the replicated task
//! catalogue (`queue/state/catalog.rs`), read from this node's replica. A name the replica does
//! not know may have been declared a moment ago through another node, so before refusing it
//! the node takes one read barrier and looks again: a declaration acknowledged before the
//! submit was sent is always seen. The state machine itself does not check names (it never
//! did, and an apply does not change meaning); since names are never removed from the
//! catalogue, a name accepted here cannot become unknown before the submit is applied.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use flotilla_proto::v1 as pb;
use flotilla_proto::v1::queue_service_server::QueueService;
use futures::Stream;
use openraft::async_runtime::WatchReceiver;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Request;
use tonic::Response;
use tonic::Status;
use tracing::debug;

use super::convert;
use super::status::ApiError;
use crate::cluster::Admin;
use crate::cluster::catalog;
use crate::cluster::tokens;
use crate::network::peer::RemoveMember;
use crate::proposer::Proposer;
use crate::queue::DEFAULT_QUEUE;
use crate::queue::Headers;
use crate::queue::MAX_CONCURRENCY_KEY_LEN;
use crate::queue::TaskDecl;
use crate::queue::TaskId;
use crate::queue::TaskSpec;
use crate::queue::check_headers;
use crate::queue::name::check_queue_name;
use crate::queue::name_prefix;
use crate::queue::ops;
use crate::raft::Raft;
use crate::replica::Replica;
use crate::worker::http::HTTP_TASK;
use crate::worker::http::HttpAllow;

/// Limits and defaults applied to client requests.
#[derive(Clone, Debug)]
pub struct ApiLimits {
    pub max_payload_bytes: usize,
    pub max_batch_tasks: usize,
    pub default_result_ttl_ms: u64,
    pub default_retry_backoff_ms: u64,
    /// Where the `http` task may go (`--http-allow`): a submit of it elsewhere is refused.
    pub http_allow: Arc<HttpAllow>,
}

/// Longest accepted idempotency key.
const MAX_NAME_LEN: usize = 256;

/// The declarer of `DeclareTaskNames` when the request names none.
const OPERATOR_DECLARER: &str = "operator";

/// Longest accepted token label.
const MAX_TOKEN_LABEL_LEN: usize = 128;

/// The client-facing service.
#[derive(Clone)]
pub struct QueueApi {
    raft: Raft,
    replica: Arc<Replica>,
    proposer: Proposer,
    admin: Admin,
    /// Task names some handler on this node is registered for: accepted even before the
    /// node's declaration of them is applied. Other names must be in the catalogue.
    known_tasks: Arc<BTreeSet<String>>,
    limits: ApiLimits,
}

impl QueueApi {
    pub fn new(
        raft: Raft,
        replica: Arc<Replica>,
        proposer: Proposer,
        admin: Admin,
        known_tasks: BTreeSet<String>,
        limits: ApiLimits,
    ) -> Self {
        Self {
            raft,
            replica,
            proposer,
            admin,
            known_tasks: Arc::new(known_tasks),
            limits,
        }
    }

    /// This node's replica.
    pub(crate) fn replica(&self) -> &Replica {
        &self.replica
    }

    /// For each distinct name of `tasks`, the queue a task of it naming none goes to; `None`
    /// for a name that neither this node's registry nor its replica's catalogue knows.
    fn default_queues(&self, tasks: &[pb::TaskSpec]) -> BTreeMap<String, Option<String>> {
        let names: BTreeSet<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
        self.replica.read(|q| {
            names
                .into_iter()
                .map(|name| {
                    let queue = match q.catalog().default_queue(name) {
                        Some(queue) => Some(queue.to_string()),
                        None => self.known_tasks.contains(name).then(|| DEFAULT_QUEUE.to_string()),
                    };
                    (name.to_string(), queue)
                })
                .collect()
        })
    }

    /// Validate a submit's tasks against the limits and the known names (see the module docs:
    /// one read barrier before a name is refused as unknown).
    pub(crate) async fn validate_all(&self, tasks: Vec<pb::TaskSpec>) -> Result<Vec<TaskSpec>, ApiError> {
        let mut queues = self.default_queues(&tasks);
        if queues.values().any(Option::is_none) {
            self.read_barrier().await?;
            queues = self.default_queues(&tasks);
        }
        tasks
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                let queue = queues.get(&t.name).cloned().flatten();
                self.validate(i, t, queue)
            })
            .collect()
    }

    /// Turn a protobuf task into a domain task, or say exactly what is wrong with it.
    /// `default_queue`: where it goes if it names no queue; `None` if its name is unknown.
    fn validate(
        &self,
        index: usize,
        t: pb::TaskSpec,
        default_queue: Option<String>,
    ) -> Result<TaskSpec, ApiError> {
        let bad = |msg: String| ApiError::InvalidArgument(format!("task {index}: {msg}"));
        if t.name.is_empty() {
            return Err(bad("task name is empty".into()));
        }
        let Some(default_queue) = default_queue else {
            return Err(bad(format!(
                "unknown task name '{}': no node runs it and no worker declared it",
                name_prefix(&t.name)
            )));
        };
        if t.args.len() > self.limits.max_payload_bytes {
            return Err(bad(format!(
                "payload of {} bytes is over the limit of {} bytes (--max-payload-bytes)",
                t.args.len(),
                self.limits.max_payload_bytes
            )));
        }
        // Empty means the default queue; any other name follows the rule of `--queues`.
        if !t.queue.is_empty() {
            check_queue_name(&t.queue).map_err(|e| bad(e.to_string()))?;
        }
        if t.idempotency_key.len() > MAX_NAME_LEN {
            return Err(bad(format!("idempotency key is limited to {MAX_NAME_LEN} bytes")));
        }
        let priority =
            u8::try_from(t.priority).map_err(|_| bad(format!("priority {} is over 255", t.priority)))?;
        if t.name == HTTP_TASK {
            self.limits.http_allow.check_args(&t.args).map_err(bad)?;
        }
        let headers: Headers = t.headers.into_iter().collect();
        check_headers(&headers).map_err(bad)?;
        if t.concurrency_key.len() > MAX_CONCURRENCY_KEY_LEN {
            return Err(bad(format!(
                "concurrency key is limited to {MAX_CONCURRENCY_KEY_LEN} bytes"
            )));
        }
        Ok(TaskSpec {
            name: t.name,
            queue: if t.queue.is_empty() {
                default_queue
            } else {
                t.queue
            },
            args: t.args,
            priority,
            eta_ms: (t.eta_unix_ms > 0).then_some(t.eta_unix_ms),
            countdown_ms: (t.countdown_ms > 0).then_some(t.countdown_ms),
            max_retries: t.max_retries,
            backoff_ms: if t.retry_backoff_ms > 0 {
                t.retry_backoff_ms
            } else {
                self.limits.default_retry_backoff_ms
            },
            time_limit_ms: (t.time_limit_ms > 0).then_some(t.time_limit_ms),
            idempotency_key: (!t.idempotency_key.is_empty()).then_some(t.idempotency_key),
            result_ttl_ms: if t.result_ttl_ms > 0 {
                t.result_ttl_ms
            } else {
                self.limits.default_result_ttl_ms
            },
            headers,
            concurrency_key: (!t.concurrency_key.is_empty()).then_some(t.concurrency_key),
        })
    }

    /// A call names at most `--max-batch-tasks` ids, like a submit carries at most that many
    /// tasks: each id costs a waiter or a command.
    pub(crate) fn check_ids(&self, n: usize) -> Result<(), ApiError> {
        if n > self.limits.max_batch_tasks {
            return Err(ApiError::InvalidArgument(format!(
                "{n} ids in one request is over the limit of {} (--max-batch-tasks)",
                self.limits.max_batch_tasks
            )));
        }
        Ok(())
    }

    /// Wait until this node's replica reflects everything committed before the call (the
    /// leader's read index, fetched from the leader when this node follows).
    pub(crate) async fn read_barrier(&self) -> Result<(), ApiError> {
        self.admin
            .read_barrier()
            .await
            .map_err(|e| ApiError::ReadBarrier(e.to_string()))
    }
}

type InfoStream = Pin<Box<dyn Stream<Item = Result<pb::TaskInfo, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl QueueService for QueueApi {
    async fn submit(
        &self,
        request: Request<pb::SubmitRequest>,
    ) -> Result<Response<pb::SubmitResponse>, Status> {
        let tasks = request.into_inner().tasks;
        if tasks.is_empty() {
            return Err(ApiError::InvalidArgument("no tasks in submit request".into()).into());
        }
        if tasks.len() > self.limits.max_batch_tasks {
            return Err(ApiError::InvalidArgument(format!(
                "{} tasks in one request is over the limit of {} (--max-batch-tasks)",
                tasks.len(),
                self.limits.max_batch_tasks
            ))
            .into());
        }
        tracing::debug!(target: crate::trace::TIMELINE, tasks = tasks.len(), "submit received");
        let specs = self.validate_all(tasks).await?;
        let span = crate::trace::submit_span(specs.iter().map(|s| &s.headers), specs.len());
        let propose = self.proposer.op(ops::Submit { tasks: specs.into() });
        let results = match span {
            Some(span) => {
                use tracing::Instrument;
                let commit = crate::trace::commit_span(&span);
                propose.instrument(commit).instrument(span).await
            }
            None => propose.await,
        }
        .map_err(ApiError::from)?;
        tracing::debug!(target: crate::trace::TIMELINE, first = ?results.first().map(|s| s.id), "submit answered");
        Ok(Response::new(pb::SubmitResponse {
            results: results
                .into_iter()
                .map(|s| pb::SubmitResult {
                    id: s.id,
                    duplicate: s.duplicate,
                })
                .collect(),
        }))
    }

    async fn get_task(
        &self,
        request: Request<pb::GetTaskRequest>,
    ) -> Result<Response<pb::GetTaskResponse>, Status> {
        let req = request.into_inner();
        if !req.stale_ok {
            self.read_barrier().await?;
        }
        let task = self
            .replica
            .read(|q| q.task(req.id))
            .ok_or(ApiError::NotFound(req.id))?;
        Ok(Response::new(pb::GetTaskResponse {
            task: Some(task.into()),
        }))
    }

    type WaitResultsStream = InfoStream;

    async fn wait_results(
        &self,
        request: Request<pb::WaitResultsRequest>,
    ) -> Result<Response<Self::WaitResultsStream>, Status> {
        let req = request.into_inner();
        self.check_ids(req.ids.len())?;
        // Linearizable: a task acknowledged before this call (maybe by another node) must be
        // known here, not reported as not found because this replica lags.
        self.read_barrier().await?;
        // Report each id once, in completion order; duplicates in the request are folded.
        let mut remaining: BTreeSet<TaskId> = BTreeSet::new();
        let ids: Vec<TaskId> = req.ids.into_iter().filter(|id| remaining.insert(*id)).collect();
        let (finished_tx, mut finished_rx) = mpsc::unbounded_channel();
        self.replica.watch_tasks(&ids, &finished_tx);
        drop(finished_tx);
        let (out, out_rx) = mpsc::channel(1024);
        let replica = self.replica.clone();
        let timeout = (req.timeout_ms > 0).then(|| Duration::from_millis(req.timeout_ms));
        tokio::spawn(async move {
            let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
            while !remaining.is_empty() {
                let next = async {
                    match deadline {
                        Some(d) => tokio::time::timeout_at(d, finished_rx.recv()).await.ok(),
                        None => Some(finished_rx.recv().await),
                    }
                };
                let id = tokio::select! {
                    _ = out.closed() => break,
                    next = next => match next {
                        Some(Some(id)) => id,
                        // Timed out (or the replica went away: the node is stopping).
                        _ => {
                            let e = ApiError::WaitTimeout(req.timeout_ms);
                            let _ = out.send(Err(e.into())).await;
                            break;
                        }
                    },
                };
                if !remaining.remove(&id) {
                    continue;
                }
                let info = replica
                    .read(|q| q.task(id))
                    .map(pb::TaskInfo::from)
                    .unwrap_or_else(|| convert::not_found(id));
                debug!(target: crate::trace::TIMELINE, task = id, "result streamed");
                if out.send(Ok(info)).await.is_err() {
                    break;
                }
            }
            drop(finished_rx);
            // This stream's registrations: ids final when it opened stay registered (see
            // `watch_tasks`), the rest were removed when their task finished or are leftovers
            // of a timeout or a client gone.
            replica.forget_closed_waiters(ids);
            debug!("wait_results stream ended");
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out_rx))))
    }

    async fn cancel(
        &self,
        request: Request<pb::CancelRequest>,
    ) -> Result<Response<pb::CancelResponse>, Status> {
        let ids = request.into_inner().ids;
        self.check_ids(ids.len())?;
        if ids.is_empty() {
            return Ok(Response::new(pb::CancelResponse::default()));
        }
        let cancelled = self
            .proposer
            .op(ops::Cancel { ids })
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::CancelResponse { cancelled }))
    }

    async fn queue_stats(
        &self,
        _request: Request<pb::QueueStatsRequest>,
    ) -> Result<Response<pb::QueueStatsResponse>, Status> {
        // Linearizable like every read: a node cut off from the majority answers UNAVAILABLE
        // instead of stale counts.
        self.read_barrier().await?;
        let stats = self.replica.read(|q| q.stats());
        let queues = stats
            .into_iter()
            .map(|(name, c)| convert::queue_stats(name, c))
            .collect();
        Ok(Response::new(pb::QueueStatsResponse { queues }))
    }

    async fn cluster_status(
        &self,
        _request: Request<pb::ClusterStatusRequest>,
    ) -> Result<Response<pb::ClusterStatusResponse>, Status> {
        let m = self.raft.metrics().borrow_watched().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let last_index = m.last_log_index.unwrap_or(0);
        let members = membership
            .nodes()
            .map(|(id, node)| {
                let role = if Some(*id) == m.current_leader {
                    "leader"
                } else if voters.contains(id) {
                    "follower"
                } else {
                    "learner"
                };
                let lag = m.replication.as_ref().and_then(|r| r.get(id)).map(|matched| {
                    last_index.saturating_sub(matched.as_ref().map(|l| l.index()).unwrap_or(0))
                });
                pb::Member {
                    id: *id,
                    addr: node.addr.clone(),
                    role: role.into(),
                    zone: node.zone.clone(),
                    lag,
                }
            })
            .collect();
        Ok(Response::new(pb::ClusterStatusResponse {
            node_id: m.id,
            leader_id: m.current_leader,
            term: m.current_term,
            commit_index: m
                .cluster_committed
                .as_ref()
                .or(m.local_committed.as_ref())
                .map(|l| l.index())
                .unwrap_or(0),
            applied_index: m.last_applied.as_ref().map(|l| l.index()).unwrap_or(0),
            members,
            snapshot_index: m.snapshot.as_ref().map(|l| l.index()).unwrap_or(0),
            purged_index: m.purged.as_ref().map(|l| l.index()).unwrap_or(0),
            voter_sets: membership
                .get_joint_config()
                .iter()
                .map(|set| pb::VoterSet {
                    ids: set.iter().copied().collect(),
                })
                .collect(),
        }))
    }

    async fn create_token(
        &self,
        request: Request<pb::CreateTokenRequest>,
    ) -> Result<Response<pb::CreateTokenResponse>, Status> {
        let req = request.into_inner();
        let role = pb::TokenRole::try_from(req.role)
            .ok()
            .and_then(convert::role)
            .ok_or_else(|| {
                ApiError::InvalidArgument("a token needs a role: submit, worker, admin or join".into())
            })?;
        if req.label.len() > MAX_TOKEN_LABEL_LEN {
            return Err(ApiError::InvalidArgument(format!(
                "a token label is limited to {MAX_TOKEN_LABEL_LEN} bytes"
            ))
            .into());
        }
        let ttl_ms = (req.ttl_ms > 0).then_some(req.ttl_ms);
        let (id, token) = tokens::create(&self.proposer, role, req.label, ttl_ms)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::CreateTokenResponse { id, token }))
    }

    async fn list_tokens(
        &self,
        _request: Request<pb::ListTokensRequest>,
    ) -> Result<Response<pb::ListTokensResponse>, Status> {
        self.read_barrier().await?;
        let tokens = self.replica.read(|q| q.tokens().list());
        Ok(Response::new(pb::ListTokensResponse {
            tokens: tokens.into_iter().map(pb::ApiToken::from).collect(),
        }))
    }

    async fn revoke_token(
        &self,
        request: Request<pb::RevokeTokenRequest>,
    ) -> Result<Response<pb::RevokeTokenResponse>, Status> {
        let id = request.into_inner().id;
        let revoked = self
            .proposer
            .op(ops::RevokeToken { id })
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::RevokeTokenResponse { revoked }))
    }

    async fn list_task_names(
        &self,
        _request: Request<pb::ListTaskNamesRequest>,
    ) -> Result<Response<pb::ListTaskNamesResponse>, Status> {
        self.read_barrier().await?;
        let tasks = self.replica.read(|q| q.task_names());
        let connected = self.admin.cluster_workers().await;
        Ok(Response::new(pb::ListTaskNamesResponse {
            tasks: convert::task_names(tasks, &connected.workers),
            unreachable_nodes: connected.unreachable,
        }))
    }

    async fn list_workers(
        &self,
        _request: Request<pb::ListWorkersRequest>,
    ) -> Result<Response<pb::ListWorkersResponse>, Status> {
        let table = self.admin.worker_table().await;
        // This replica's holdings, read after the members answered, with no read barrier: an
        // operator's view, served with no leader too (a lease's count may lag a heartbeat).
        let holdings = self.replica.read(|q| q.pool_holdings());
        Ok(Response::new(super::workers::list(table, holdings)))
    }

    async fn declare_task_names(
        &self,
        request: Request<pb::DeclareTaskNamesRequest>,
    ) -> Result<Response<pb::DeclareTaskNamesResponse>, Status> {
        let req = request.into_inner();
        let declarer = if req.declarer.is_empty() {
            OPERATOR_DECLARER.to_string()
        } else {
            req.declarer
        };
        let tasks: Vec<TaskDecl> = req
            .names
            .into_iter()
            .map(|name| TaskDecl {
                name,
                queue: req.queue.clone(),
            })
            .collect();
        // What this node's replica lacks is proposed: read it as of now.
        self.read_barrier().await?;
        let recorded = catalog::declare_tasks(&self.proposer, &self.replica, &declarer, &tasks)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::DeclareTaskNamesResponse { recorded }))
    }

    async fn remove_node(
        &self,
        request: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::RemoveNodeResponse>, Status> {
        let id = request.into_inner().id;
        let members = self
            .admin
            .call(RemoveMember { node_id: id })
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::RemoveNodeResponse { members }))
    }

    async fn find_tasks_by_idempotency_key(
        &self,
        request: Request<pb::FindTasksByIdempotencyKeyRequest>,
    ) -> Result<Response<pb::FindTasksByIdempotencyKeyResponse>, Status> {
        let req = request.into_inner();
        self.check_ids(req.idempotency_keys.len())?;
        if !req.stale_ok {
            self.read_barrier().await?;
        }
        let ids = self.replica.read(|q| {
            req.idempotency_keys
                .iter()
                .map(|key| q.task_by_idempotency_key(key).unwrap_or(0))
                .collect()
        });
        Ok(Response::new(pb::FindTasksByIdempotencyKeyResponse { ids }))
    }
}
