//! The web dashboard on the HTTP port (`--http-listen`, docs/OPERATIONS.md "The dashboard"):
//! `/` is one page of static HTML, CSS and vanilla JavaScript embedded in the binary (no build
//! step), and `/api/...` is the JSON it polls. Every API route calls the node's gRPC service
//! functions themselves (`OpsService`, `QueueService`, `ScheduleService`; the workers table
//! is `QueueService.ListWorkers`, the whole cluster's) on a request built
//! here, so listing, retrying and pausing have one implementation (`api.rs`).
//!
//! Access (docs/SECURITY.md): on a loopback port of a node that does not `--require-token`
//! anyone local may read and act, like the gRPC port's anonymous local callers; otherwise each
//! route asks a bearer token with the right of the gRPC method it calls, judged by the auth
//! layer (`--metrics-public` opens `/metrics` only, never the dashboard). Mutating routes are
//! POST and need the header [`ACT_HEADER`]: a page of another site cannot send a custom header
//! without a CORS preflight, which this port never approves, so it cannot forge an action
//! from a user's browser.

mod api;
mod page;

use std::sync::Arc;

use axum::Router;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::get;
use axum::routing::post;

use crate::grpc::OpsApi;
use crate::grpc::QueueApi;
use crate::grpc::ScheduleApi;
use crate::grpc::auth::Auth;
use crate::grpc::status::AuthError;

/// The header every mutating call must carry (any value).
pub const ACT_HEADER: &str = "x-flotilla-dashboard";

/// Who may use the dashboard.
#[derive(Clone)]
pub enum DashAccess {
    /// Anyone who reaches the port (a loopback port, no `--require-token`).
    Open,
    /// A token with the right of the gRPC method each route calls.
    Token(Arc<Auth>),
}

/// What the dashboard's routes call.
#[derive(Clone)]
pub struct Dashboard {
    pub queue: QueueApi,
    pub ops: OpsApi,
    pub schedules: ScheduleApi,
    pub access: DashAccess,
}

impl Dashboard {
    /// Whether the caller may call the gRPC `method` (its full path), by the auth layer's rule.
    fn allow(&self, method: &str, headers: &HeaderMap) -> Result<(), api::Refusal> {
        let DashAccess::Token(auth) = &self.access else {
            return if loopback_host(headers) {
                Ok(())
            } else {
                Err(api::Refusal(
                    StatusCode::FORBIDDEN,
                    "an open dashboard answers only to a loopback host name (localhost, 127.0.0.1, [::1])"
                        .into(),
                ))
            };
        };
        let checked = if headers.contains_key(axum::http::header::AUTHORIZATION) {
            auth.check(method, headers, &axum::http::Extensions::new())
                .map(drop)
        } else {
            Err(AuthError::NoToken)
        };
        checked.map_err(|e| {
            let status = match e.code() {
                tonic::Code::PermissionDenied => StatusCode::FORBIDDEN,
                _ => StatusCode::UNAUTHORIZED,
            };
            api::Refusal(status, e.to_string())
        })
    }

    /// Whether the caller may see data in the page itself (the server-rendered part).
    fn may_read(&self, headers: &HeaderMap) -> bool {
        self.allow(api::LIST_TASKS, headers).is_ok()
    }
}

/// Whether the request's `Host` names the loopback interface. An open dashboard (loopback, no
/// token) answers nothing else, so a page of another site cannot reach it through DNS
/// rebinding (a name of theirs that resolves to 127.0.0.1 makes their page same-origin with
/// the port, but its `Host` is still their name).
fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
    else {
        return false;
    };
    // Strip the port: `name:port`, `[v6]:port`.
    let name = match host.rsplit_once(':') {
        Some((name, port)) if !name.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The dashboard's routes: `/`, its assets and `/api/...`.
pub fn router(dash: Dashboard) -> Router {
    Router::new()
        .route("/", get(page::index))
        .route("/dashboard.js", get(page::script))
        .route("/dashboard.css", get(page::style))
        .route("/api/cluster", get(api::cluster))
        .route("/api/queues", get(api::queues))
        .route("/api/queues/{queue}/pause", post(api::pause))
        .route("/api/queues/{queue}/resume", post(api::resume))
        .route("/api/tasks", get(api::tasks))
        .route("/api/tasks/{id}", get(api::task))
        .route("/api/tasks/{id}/retry", post(api::retry))
        .route("/api/schedules", get(api::schedules))
        .route("/api/workers", get(api::workers))
        .fallback(not_found)
        .with_state(dash)
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

#[cfg(test)]
mod tests;
