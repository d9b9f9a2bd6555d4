//! Health: a node serves while it is a member (voter or learner) of its cluster, knows a
//! leader, and that leader answers with the backing of a quorum: the node learns the leader's
//! read index and applies up to it (the read barrier every linearizable read takes). openraft's
//! metrics alone cannot say the last part: a follower whose leader died keeps naming it while
//! its pre-votes fail, and a leader cut off from its quorum stays leader.
//!
//! Health is judged when asked ([`HealthProbe::serving`], shared by the gRPC health service and
//! `/healthz`), with a short cache against floods of probes: nothing runs while nobody asks.
//! [`GrpcHealth`] serves `grpc.health.v1.Health` (tonic-health's service definition) for the
//! server (`""`) and each flotilla service; `Watch` re-judges every second while it is open.
//! [`count_leader_changes`] follows the metrics for the leader-change counter.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use futures::Stream;
use openraft::async_runtime::WatchReceiver;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::Request;
use tonic::Response;
use tonic::Status;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::HealthCheckResponse;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::Health;

use crate::cluster::Admin;
use crate::raft::Raft;
use crate::types::NodeId;

/// The gRPC services whose status the health service reports, beside the server's `""`.
pub const SERVICES: [&str; 3] = [
    "flotilla.v1.QueueService",
    "flotilla.v1.WorkerService",
    "flotilla.v1.RaftService",
];

/// How long a judgement is reused.
const CACHE: Duration = Duration::from_millis(250);
/// How long the read barrier may take before the node counts as not serving.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How often an open `Watch` re-judges.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// Whether a node with these metrics may serve: it knows a leader and is in the membership.
pub fn knows_leader_as_member(m: &openraft::RaftMetrics<crate::types::TypeConfig>) -> bool {
    m.current_leader.is_some() && m.membership_config.membership().get_node(&m.id).is_some()
}

/// Judges whether the node serves (see the module docs).
pub struct HealthProbe {
    raft: Raft,
    admin: Admin,
    last: Mutex<Option<(Instant, bool)>>,
}

impl HealthProbe {
    pub fn new(raft: Raft, admin: Admin) -> Self {
        Self {
            raft,
            admin,
            last: Mutex::new(None),
        }
    }

    /// The leader this node knows, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow_watched().current_leader
    }

    /// Whether the node serves now (judged at most every 250 ms).
    pub async fn serving(&self) -> bool {
        if let Some((at, serving)) = *self.last.lock().unwrap_or_else(|e| e.into_inner())
            && at.elapsed() < CACHE
        {
            return serving;
        }
        let member = knows_leader_as_member(&self.raft.metrics().borrow_watched());
        let serving = member
            && matches!(
                tokio::time::timeout(PROBE_TIMEOUT, self.admin.read_barrier()).await,
                Ok(Ok(()))
            );
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), serving));
        serving
    }

    async fn status(&self) -> ServingStatus {
        if self.serving().await {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        }
    }
}

/// `grpc.health.v1.Health` over a [`HealthProbe`].
pub struct GrpcHealth {
    pub probe: Arc<HealthProbe>,
}

fn known(service: &str) -> bool {
    service.is_empty() || SERVICES.contains(&service)
}

fn reply(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status as i32,
    }
}

#[tonic::async_trait]
impl Health for GrpcHealth {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        if !known(&request.get_ref().service) {
            return Err(Status::not_found("unknown service"));
        }
        Ok(Response::new(reply(self.probe.status().await)))
    }

    type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let probe = self.probe.clone();
        let known = known(&request.get_ref().service);
        // Sends the first status at once, then each change.
        let stream = futures::stream::unfold(None, move |last: Option<ServingStatus>| {
            let probe = probe.clone();
            async move {
                if !known {
                    return match last {
                        None => Some((
                            Ok(reply(ServingStatus::ServiceUnknown)),
                            Some(ServingStatus::ServiceUnknown),
                        )),
                        Some(_) => std::future::pending().await,
                    };
                }
                loop {
                    if last.is_some() {
                        tokio::time::sleep(WATCH_EVERY).await;
                    }
                    let now = probe.status().await;
                    if last != Some(now) {
                        return Some((Ok(reply(now)), Some(now)));
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// Count the leader changes this node sees (to another node, or to none) until Raft stops.
pub fn count_leader_changes(
    raft: Raft,
    leader_changes: prometheus_client::metrics::counter::Counter,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut metrics = raft.metrics();
        let mut last = metrics.borrow_watched().current_leader;
        while metrics.changed().await.is_ok() {
            let leader = metrics.borrow_watched().current_leader;
            if leader != last {
                leader_changes.inc();
                last = leader;
            }
        }
    })
}
