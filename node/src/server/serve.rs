//! Steps 4 and 5 of a node's life: serve the gRPC services until shutdown (or a failed join,
//! or Raft stopping by itself), drain the workers, hand leadership off; then stop what runs
//! beside Raft, and Raft.

use std::future::Future;
use std::time::Duration;

use flotilla_proto::v1::event_service_server::EventServiceServer;
use flotilla_proto::v1::limit_service_server::LimitServiceServer;
use flotilla_proto::v1::ops_service_server::OpsServiceServer;
use flotilla_proto::v1::queue_service_server::QueueServiceServer;
use flotilla_proto::v1::raft_service_server::RaftServiceServer;
use flotilla_proto::v1::schedule_service_server::ScheduleServiceServer;
use flotilla_proto::v1::worker_service_server::WorkerServiceServer;
use flotilla_proto::v1::workflow_service_server::WorkflowServiceServer;
use tokio::sync::oneshot;
use tracing::error;
use tracing::info;
use tracing::warn;

use super::Connection;
use super::ServerError;
use super::services::Serving;
use super::services::Stopping;
use crate::config::Config;
use crate::config::MAX_GRPC_MESSAGE_BYTES;
use crate::grpc::NodeGate;
use crate::grpc::calls::CallsLayer;
use crate::grpc::calls::MAX_CLIENT_CALLS;
use crate::grpc::reflection;
use crate::grpc::worker_service;
use crate::leader;

/// How often the server pings a connection's peer (HTTP/2), and how long it waits for the
/// answer before it drops the connection and the calls on it.
const SERVER_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
const SERVER_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/2 streams (calls) open at once on one connection; a client waits for a free one.
const MAX_STREAMS_PER_CONNECTION: u32 = 256;
/// Streams a client may open and cancel (RST_STREAM) before the server has taken them off the
/// connection's accept queue. Past it, h2 sends GOAWAY (`ENHANCE_YOUR_CALM`, "too_many_resets")
/// and every call on the connection fails. h2's default is 20: an overloaded node reads its
/// sockets late, so one read can hold a burst of calls that an honest client already gave up
/// on (timeouts, a wait moving to the next node); at 20, that killed every client's connection
/// at once (issue 15, the sustained run of 43f8b9e). The bound keeps what it is for (memory
/// held by streams nobody will serve: a few hundred bytes each, so under 1 MB a connection)
/// with room for a client's whole window of streams reset, several times over.
const MAX_PENDING_ACCEPT_RESETS: usize = 4 * MAX_STREAMS_PER_CONNECTION as usize;
/// Once serving stops, how long open calls get to finish before the node stops anyway.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Step 4: serve until `shutdown` fires, the join fails or Raft stops by itself; then drain the
/// workers (unless Raft stopped: they could not hand anything back), hand leadership off, and
/// stop serving. Returns how serving ended and the failure that stopped it, if one did.
pub(super) async fn serve_until_shutdown<I, IO, IE>(
    config: &Config,
    serving: Serving,
    incoming: I,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> (Result<(), tonic::transport::Error>, Option<ServerError>)
where
    I: futures::Stream<Item = Result<IO, IE>>,
    IO: Connection,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let Serving {
        raft,
        queue_api,
        schedule_api,
        limit_api,
        event_api,
        workflow_api,
        ops_api,
        raft_api,
        worker_api,
        sessions,
        tls,
        auth,
        pool,
        join_failed,
        observing,
    } = serving;
    // Built from descriptors compiled into the binary: an error here is a build defect.
    let (reflection_v1, reflection_v1alpha) = match (reflection::v1(), reflection::v1alpha()) {
        (Ok(v1), Ok(v1alpha)) => (v1, v1alpha),
        (Err(e), _) | (_, Err(e)) => return (Ok(()), Some(ServerError::Reflection(e.to_string()))),
    };
    let gate = NodeGate::<IO::ConnectInfo>::new(tls.as_deref());
    let node_id = *raft.node_id();
    // Serving stops when this task says so, after the workers have drained.
    let (stop_tx, stop_rx) = oneshot::channel::<Option<ServerError>>();
    let grace = Duration::from_millis(config.drain_grace_ms);
    let drainer = tokio::spawn(async move {
        let join_failed = async {
            match join_failed {
                Some(rx) => match rx.await {
                    Ok(e) => e,
                    Err(_) => std::future::pending().await,
                },
                None => std::future::pending().await,
            }
        };
        let failure = tokio::select! {
            _ = shutdown => {
                info!("shutdown requested; draining workers");
                None
            }
            e = join_failed => {
                warn!(error = %e, "join failed; stopping");
                Some(ServerError::Join(e))
            }
            fatal = leader::raft_failed(raft.clone()) => {
                error!(error = %fatal, "raft stopped; exiting so this node can be restarted");
                let _ = stop_tx.send(Some(ServerError::RaftFailed(fatal)));
                return;
            }
        };
        let local = async {
            if let Some(pool) = pool {
                let report = pool.drain(grace).await;
                info!(?report, "workers drained");
            }
        };
        tokio::join!(local, sessions.drain_all(grace));
        leader::hand_off_leadership(&raft).await;
        let _ = stop_tx.send(failure);
    });

    let workers = config.worker_count();
    info!(node_id, listen = %config.listen, advertise = %config.advertise_addr(), workers, "node ready");
    let (stopping_tx, mut stopping_rx) = oneshot::channel::<Option<ServerError>>();
    let serve = tonic::transport::Server::builder()
        // A peer that stopped answering (frozen, cut off) is noticed and its calls dropped.
        .http2_keepalive_interval(Some(SERVER_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(SERVER_KEEPALIVE_TIMEOUT))
        // Calls in progress per connection (HTTP/2 streams); node-wide, see `CallsLayer`.
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .http2_max_pending_accept_reset_streams(Some(MAX_PENDING_ACCEPT_RESETS))
        .layer(auth)
        .layer(CallsLayer::<IO::ConnectInfo>::new(MAX_CLIENT_CALLS))
        .add_service(
            QueueServiceServer::new(queue_api)
                // A client request needs no more than a full batch of full payloads (capped).
                .max_decoding_message_size(config.max_request_bytes())
                .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES),
        )
        .add_service(
            ScheduleServiceServer::new(schedule_api)
                .max_decoding_message_size(config.max_request_bytes())
                .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES),
        )
        .add_service(LimitServiceServer::new(limit_api).max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES))
        .add_service(EventServiceServer::new(event_api).max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES))
        .add_service(
            WorkflowServiceServer::new(workflow_api)
                // A workflow is one request: as large as a full batch (capped), like a submit.
                .max_decoding_message_size(config.max_request_bytes())
                .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES),
        )
        .add_service(OpsServiceServer::new(ops_api).max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES))
        .add_service(
            WorkerServiceServer::new(worker_api)
                .max_decoding_message_size(worker_service::max_message_bytes(config))
                .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES),
        )
        .add_service(observing.health_service.clone())
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(tonic::service::interceptor::InterceptedService::new(
            RaftServiceServer::new(raft_api)
                .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES),
            gate,
        ))
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = stopping_tx.send(stop_rx.await.ok().flatten());
        });
    tokio::pin!(serve);
    let (served, failure) = tokio::select! {
        served = &mut serve => (served, stopping_rx.try_recv().ok().flatten()),
        // Open calls get a moment to finish; a wait stream may never end by itself.
        failure = &mut stopping_rx => {
            let served = tokio::time::timeout(CLOSE_GRACE, &mut serve).await.unwrap_or(Ok(()));
            (served, failure.ok().flatten())
        }
    };
    drainer.abort();
    observing.stop();
    (served, failure)
}

/// Step 5: end the node's duties and a join still running, and stop Raft.
pub(super) async fn stop(stopping: Stopping) {
    let Stopping {
        raft,
        duties,
        joiner,
        admin_keeper,
        declarer,
    } = stopping;
    drop(duties);
    admin_keeper.abort();
    declarer.abort();
    if let Some(joiner) = joiner {
        joiner.abort();
    }
    if let Err(e) = raft.shutdown().await {
        warn!(error = %e, "raft shutdown");
    }
    info!(node_id = *raft.node_id(), "node stopped");
}
