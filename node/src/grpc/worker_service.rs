//! `flotilla.v1.WorkerService`: remote workers (worker.proto is the contract; docs/WORKERS.md
//! the sequence as implemented). `Session` answers at once with the node's stream and runs the
//! session in a task of its own: it reads the Hello (`hello.rs`), claims the worker's name
//! among this node's live sessions (`ALREADY_EXISTS` if taken), declares its tasks, sends the
//! Welcome, and hands over to the runner, [`crate::worker::remote::Session`]. `Complete`
//! (`complete.rs`) commits results from outside a session. The auth layer (`auth.rs`) lets
//! only callers with the worker right in.

use std::time::Duration;

use flotilla_proto::v1 as pb;
use flotilla_proto::v1::node_message::Msg as Out;
use flotilla_proto::v1::worker_message::Msg as In;
use flotilla_proto::v1::worker_service_server::WorkerService;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::Code;
use tonic::Request;
use tonic::Response;
use tonic::Status;
use tonic::Streaming;
use tracing::debug;
use tracing::info;

use std::sync::Arc;

use crate::cluster::Admin;
use crate::cluster::catalog;
use crate::cluster::catalog::DeclareError;
use crate::config::Config;
use crate::network::peer::ConnectedWorker;
use crate::proposer::Proposer;
use crate::queue::TaskDecl;
use crate::replica::Replica;
use crate::worker::NodeBackend;
use crate::worker::remote::Outbound;
use crate::worker::remote::PROTOCOL_VERSION;
use crate::worker::remote::Session;
use crate::worker::remote::SessionNode;
use crate::worker::remote::SessionSettings;
use crate::worker::remote::Sessions;

mod complete;
pub mod hello;

/// How long a new stream may take to send its Hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest message a worker may send: a batch of results at the limit must fit; a larger
/// message does not decode and ends the stream.
pub fn max_message_bytes(config: &Config) -> usize {
    (2 * config.max_result_bytes + (1 << 20)).max(64 << 20)
}

/// The node's worker settings, from its config.
pub fn settings(config: &Config, node_id: u64) -> SessionSettings {
    SessionSettings {
        node_id,
        lease_ms: config.lease_ms,
        heartbeat_interval: Duration::from_millis(config.lease_ms / 3),
        idle_poll: Duration::from_secs(1),
        ping_interval: Duration::from_millis(config.worker_ping_interval_ms),
        missed_pings: 3,
        max_result_bytes: config.max_result_bytes,
        default_time_limit_ms: config.default_time_limit_ms,
        worker_drain_grace: Duration::from_millis(config.default_time_limit_ms),
        drain_flush_timeout: Duration::from_secs(10),
        max_batch: 1024,
        prefetch: config.prefetch,
    }
}

/// What a remote worker's session uses of the node: proposals through the proposer (a
/// follower forwards them), the replica, and the read barrier.
pub fn session_node(proposer: &Proposer, replica: &Arc<Replica>, admin: &Admin) -> SessionNode {
    let admin = admin.clone();
    SessionNode {
        backend: Arc::new(NodeBackend::new(proposer.clone(), replica.clone())),
        replica: replica.clone(),
        barrier: Arc::new(move || {
            let admin = admin.clone();
            Box::pin(async move { admin.read_barrier().await.map_err(|e| e.to_string()) })
        }),
    }
}

/// The worker service of a node.
#[derive(Clone)]
pub struct WorkerApi {
    settings: SessionSettings,
    node: SessionNode,
    sessions: Sessions,
    proposer: Proposer,
}

impl WorkerApi {
    pub fn new(settings: SessionSettings, node: SessionNode, sessions: Sessions, proposer: Proposer) -> Self {
        Self {
            settings,
            node,
            sessions,
            proposer,
        }
    }

    /// Read and accept the Hello, then run the session; a refusal ends the stream.
    async fn serve(self, mut inbound: Streaming<pb::WorkerMessage>, out: Outbound) {
        let first = tokio::time::timeout(HELLO_TIMEOUT, inbound.next()).await;
        let hello = match first {
            Ok(Some(Ok(pb::WorkerMessage {
                msg: Some(In::Hello(h)),
            }))) => h,
            Ok(Some(Ok(_))) => {
                return refuse(&out, Code::InvalidArgument, "the first message must be a Hello");
            }
            Ok(Some(Err(status))) => {
                return refuse(
                    &out,
                    Code::InvalidArgument,
                    &format!("bad first message: {}", status.message()),
                );
            }
            Ok(None) => return debug!("worker stream closed before its Hello"),
            Err(_) => return refuse(&out, Code::DeadlineExceeded, "no Hello in time"),
        };
        let agent = hello.agent.clone();
        let (hello, tasks) = match hello::validate(hello) {
            Ok(accepted) => accepted,
            Err((code, why)) => return refuse(&out, code, &why),
        };
        let Some(claim) = self.sessions.claim(&hello.name) else {
            let why = format!(
                "a worker named '{}' is connected to this node already",
                hello.name
            );
            return refuse(&out, Code::AlreadyExists, &why);
        };
        // A resume is judged on this replica (which leases the name still holds): it must have
        // seen everything committed, or a follower behind the dead leader's last entries would
        // drop live leases, and their tasks would run twice. No barrier (no leader yet): the
        // worker retries with the same resume; not a refusal of it, so no WorkerError.
        if !hello.resume.is_empty()
            && let Err(e) = (self.node.barrier)().await
        {
            info!(worker = %hello.name, error = %e, "resume deferred: no read barrier");
            let _ = out.send(Err(Status::unavailable(format!("cannot resume yet: {e}"))));
            return;
        }
        // Declared before the Welcome: once the worker is up, submits of its names are accepted.
        if let Err((code, why)) = declare_tasks(&self.proposer, &self.node.replica, &hello.name, &tasks).await
        {
            return refuse(&out, code, &why);
        }
        info!(worker = %hello.name, %agent, concurrency = hello.concurrency, resume = hello.resume.len(), "worker connected");
        claim.describe(ConnectedWorker {
            node_id: self.settings.node_id,
            name: hello.name.clone(),
            queues: hello.queues.clone(),
            tasks: tasks.iter().map(|t| t.name.clone()).collect(),
            concurrency: hello.concurrency,
        });
        let welcome = pb::Welcome {
            session: claim.id,
            node_id: self.settings.node_id,
            lease_ms: self.settings.lease_ms,
            ping_interval_ms: self.settings.ping_interval.as_millis() as u64,
            max_result_bytes: self.settings.max_result_bytes as u64,
            protocol_version: PROTOCOL_VERSION,
        };
        let _ = out.send(Ok(pb::NodeMessage {
            msg: Some(Out::Welcome(welcome)),
        }));
        let shutdown = self.sessions.shutdown_signal();
        let session = Session::open(self.settings, self.node, hello, claim, (inbound, out)).await;
        session.run(shutdown).await;
    }
}

/// Declare the task names a worker runs in the cluster's task catalogue, under the worker's
/// name (nothing is proposed when the replica holds them all). A refusal of the catalogue ends
/// the stream with INVALID_ARGUMENT; no leader, UNAVAILABLE (the worker retries).
async fn declare_tasks(
    proposer: &Proposer,
    replica: &Replica,
    worker: &str,
    tasks: &[pb::TaskDecl],
) -> Result<(), (Code, String)> {
    let decls: Vec<TaskDecl> = tasks
        .iter()
        .map(|t| TaskDecl {
            name: t.name.clone(),
            queue: t.queue.clone(),
        })
        .collect();
    match catalog::declare_tasks(proposer, replica, worker, &decls).await {
        Ok(_) => Ok(()),
        Err(e @ DeclareError::Refused(_)) => Err((Code::InvalidArgument, e.to_string())),
        Err(e @ DeclareError::Propose(_)) => Err((Code::Unavailable, e.to_string())),
    }
}

/// End a stream before its session started: a `WorkerError`, then the status.
fn refuse(out: &Outbound, code: Code, why: &str) {
    info!(code = ?code, error = why, "worker refused");
    let error = pb::WorkerError { message: why.into() };
    let _ = out.send(Ok(pb::NodeMessage {
        msg: Some(Out::Error(error)),
    }));
    let _ = out.send(Err(Status::new(code, why)));
}

#[tonic::async_trait]
impl WorkerService for WorkerApi {
    type SessionStream = UnboundedReceiverStream<Result<pb::NodeMessage, Status>>;

    async fn session(
        &self,
        request: Request<Streaming<pb::WorkerMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(self.clone().serve(request.into_inner(), tx));
        Ok(Response::new(UnboundedReceiverStream::new(rx)))
    }

    async fn complete(
        &self,
        request: Request<pb::CompleteRequest>,
    ) -> Result<Response<pb::CompleteResponse>, Status> {
        let results = request.into_inner().results;
        let acks = complete::complete(&self.node, self.settings.max_result_bytes, results).await?;
        Ok(Response::new(pb::CompleteResponse { acks }))
    }
}
