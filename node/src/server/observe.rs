//! Part of step 3: what makes the node observable (`crate::observe`): the gRPC health service,
//! and, with `--http-listen`, the metrics and the HTTP port (with the dashboard).

use std::sync::Arc;

use tokio::task::JoinHandle;
use tonic_health::pb::health_server::HealthServer;

use super::ServerError;
use crate::cluster::Admin;
use crate::config::Config;
use crate::grpc::OpsApi;
use crate::grpc::QueueApi;
use crate::grpc::ScheduleApi;
use crate::grpc::auth::AuthLayer;
use crate::observe::HealthProbe;
use crate::observe::Instruments;
use crate::observe::NodeMetrics;
use crate::observe::dashboard;
use crate::observe::health::GrpcHealth;
use crate::observe::health::count_leader_changes;
use crate::observe::http;
use crate::raft::Raft;
use crate::replica::Replica;

/// The observability of a running node.
pub(super) struct Observing {
    /// `grpc.health.v1.Health`, served with the other services.
    pub(super) health_service: HealthServer<GrpcHealth>,
    /// With `--http-listen`: the HTTP port, and the leader-change counter.
    tasks: Vec<JoinHandle<()>>,
}

impl Observing {
    /// Stop the HTTP port and the counter.
    pub(super) fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

/// The services the dashboard calls.
pub(super) struct Apis {
    pub(super) queue: QueueApi,
    pub(super) ops: OpsApi,
    pub(super) schedules: ScheduleApi,
}

/// The metrics instruments when the node keeps metrics (it has an HTTP port to show them).
pub(super) fn instruments(config: &Config) -> Option<Instruments> {
    config.observe.http_listen.map(|_| Instruments::default())
}

/// The gRPC health service and, with `--http-listen`, the HTTP port (bound here, so a port in
/// use stops the node at start with a clear error).
pub(super) fn start_observing(
    config: &Config,
    instruments: Option<&Instruments>,
    raft: &Raft,
    replica: &Arc<Replica>,
    admin: &Admin,
    auth: &AuthLayer,
    apis: Apis,
) -> Result<Observing, ServerError> {
    let probe = Arc::new(HealthProbe::new(raft.clone(), admin.clone()));
    let health_service = HealthServer::new(GrpcHealth { probe: probe.clone() });
    let mut tasks = Vec::new();
    if let (Some(addr), Some(instruments)) = (config.observe.http_listen, instruments) {
        let listener = std::net::TcpListener::bind(addr)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .and_then(tokio::net::TcpListener::from_std)
            .map_err(|e| ServerError::Http(format!("cannot listen on --http-listen {addr}: {e}")))?;
        let metrics = Arc::new(NodeMetrics::new(instruments, raft.clone(), replica.clone()));
        let access = if config.observe.metrics_open(config.require_token) {
            http::MetricsAccess::Open
        } else {
            http::MetricsAccess::Token(auth.auth())
        };
        // The dashboard acts as well as reads: `--metrics-public` does not open it.
        let loopback = addr.ip().is_loopback() && !config.require_token;
        let dash_access = if loopback {
            dashboard::DashAccess::Open
        } else {
            dashboard::DashAccess::Token(auth.auth())
        };
        let dash = dashboard::Dashboard {
            queue: apis.queue,
            ops: apis.ops,
            schedules: apis.schedules,
            access: dash_access,
        };
        let router = http::router(metrics, probe, access).merge(dashboard::router(dash));
        tasks.push(http::serve(listener, router, std::future::pending()));
        tasks.push(count_leader_changes(
            raft.clone(),
            instruments.leader_changes.clone(),
        ));
    }
    Ok(Observing {
        health_service,
        tasks,
    })
}
