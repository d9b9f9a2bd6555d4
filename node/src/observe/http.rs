//! The node's HTTP port (`--http-listen`): `/metrics` (Prometheus text), and `/healthz` and
//! `/readyz` (200 while the node serves, 503 otherwise: the rule of [`super::health`], which
//! already includes being caught up to the leader's read index, so the two say the same; both
//! exist because orchestrators ask for both).
//!
//! Who may read what follows the node's security defaults (docs/SECURITY.md): `/healthz` and
//! `/readyz` say nothing but up or down, so anyone may ask. `/metrics` names queues and counts
//! tasks: on a port bound to loopback anyone local may read it; on any other address it needs a
//! token with the read right (`authorization: Bearer …`), unless `--metrics-public` says the
//! port's network is trusted (a Prometheus without a token).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::info;
use tracing::warn;

use super::health::HealthProbe;
use super::metrics::NodeMetrics;
use crate::grpc::auth::Auth;

/// The method whose right `/metrics` asks of a token: reading the queue's counts.
const METRICS_NEED: &str = "/flotilla.v1.QueueService/QueueStats";

/// Who may read `/metrics`.
#[derive(Clone)]
pub enum MetricsAccess {
    /// Anyone who reaches the port (loopback, or `--metrics-public`).
    Open,
    /// A token with the read right, judged like a gRPC call.
    Token(Arc<Auth>),
}

#[derive(Clone)]
struct Ctx {
    metrics: Arc<NodeMetrics>,
    health: Arc<HealthProbe>,
    access: MetricsAccess,
}

/// The router of the HTTP port.
pub fn router(metrics: Arc<NodeMetrics>, health: Arc<HealthProbe>, access: MetricsAccess) -> Router {
    Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(healthz))
        .with_state(Ctx {
            metrics,
            health,
            access,
        })
}

/// Serve `router` on `listener` until `shutdown` resolves.
pub fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> JoinHandle<()> {
    let addr = listener.local_addr().ok();
    info!(http = ?addr, "http port: /metrics, /healthz, /readyz, the dashboard at /");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
        {
            warn!(error = %e, "http port stopped");
        }
    })
}

async fn metrics_page(State(ctx): State<Ctx>, headers: HeaderMap) -> Response {
    if let MetricsAccess::Token(auth) = &ctx.access {
        // A token is needed here even when the node's gRPC port is open to anonymous local
        // callers: this port may be reachable from elsewhere.
        let checked = if headers.contains_key(axum::http::header::AUTHORIZATION) {
            auth.check(METRICS_NEED, &headers, &axum::http::Extensions::new())
        } else {
            Err(crate::grpc::status::AuthError::NoToken)
        };
        let Err(e) = checked else {
            let body = ctx.metrics.render();
            return ([(CONTENT_TYPE, NodeMetrics::CONTENT_TYPE)], body).into_response();
        };
        let status = match e.code() {
            tonic::Code::PermissionDenied => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        };
        return (status, format!("{e}\n")).into_response();
    }
    let body = ctx.metrics.render();
    ([(CONTENT_TYPE, NodeMetrics::CONTENT_TYPE)], body).into_response()
}

async fn healthz(State(ctx): State<Ctx>) -> Response {
    let leader = ctx.health.leader().map_or("null".to_string(), |l| l.to_string());
    let (status, serving) = if ctx.health.serving().await {
        (StatusCode::OK, "SERVING")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "NOT_SERVING")
    };
    let body = format!("{{\"status\":\"{serving}\",\"leader\":{leader}}}\n");
    (status, [(CONTENT_TYPE, "application/json")], body).into_response()
}
