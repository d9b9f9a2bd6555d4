//! Who may call what: one tower layer in front of every gRPC service ([`AuthLayer`]). It reads
//! a call's path, headers and connection only, so a refused call is answered before a byte of
//! its body is read or decoded, and nothing changes.
//!
//! # Callers
//!
//! - **Peers** prove membership of this cluster on every call ([`PeerAuth`]: the cluster's peer
//!   secret, or mutual TLS). Only peers may call `RaftService`, except `Admin`, where a caller
//!   with the join right may ask for an id (`raft_service.rs` allows it nothing else).
//! - **Clients** present a token (`authorization: Bearer <token>`), looked up by its SHA-256 in
//!   this node's replica of the token table ([`crate::queue::state::Tokens`]); its role gives rights:
//!
//! | role | rights |
//! |---|---|
//! | submit | submit, cancel, read (get, wait, stats, status, events, list and describe tasks, workflows) |
//! | worker | the worker stream, read |
//! | admin | everything: membership, tokens, operating tasks (retry, cancel running tasks, pause, resume, purge), and all of the above, joining too |
//! | join | ask for a node id (join the cluster), nothing else |
//!
//! - Without a token, a client is refused (UNAUTHENTICATED), unless the node runs
//!   [`ClientAuth::Open`] (it listens on loopback only: `config.rs`), where an anonymous caller
//!   is a local user with every right. A token that is presented is checked in either mode.
//!
//! Refusals: no or unknown/expired token, or a bad peer proof → UNAUTHENTICATED; a valid token
//! without the right, or a call naming another cluster → PERMISSION_DENIED. Messages name the
//! token by id, never by value. The decision ([`Caller`]) goes with the request, so a service
//! can narrow it further.

use std::sync::Arc;
use std::task::Context;
use std::task::Poll;

use futures::future::BoxFuture;
use tonic::Status;
use tonic::codegen::http;
use tonic::codegen::http::Extensions;
use tonic::codegen::http::HeaderMap;
use tracing::debug;
use tracing::warn;

use super::status::AuthError;
use crate::clock::SharedClock;
use crate::cluster::tokens::token_hash;
pub use crate::config::ClientAuth;
use crate::network::headers;
use crate::network::headers::CallerCluster;
use crate::network::peer_auth::PeerAuth;
use crate::network::peer_auth::PeerVerdict;
use crate::queue::Role;
use crate::queue::TokenId;
use crate::replica::Replica;

/// A right a method needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Right {
    /// Read tasks, stats and status.
    Read,
    /// Submit and cancel tasks.
    Submit,
    /// Run tasks over the worker stream.
    Work,
    /// Membership, tokens, queue administration.
    Admin,
    /// Ask for a node id to join the cluster.
    Join,
}

impl Right {
    pub fn name(self) -> &'static str {
        match self {
            Right::Read => "read",
            Right::Submit => "submit",
            Right::Work => "worker",
            Right::Admin => "admin",
            Right::Join => "join",
        }
    }
}

/// Whether `role` carries `right`.
pub fn grants(role: Role, right: Right) -> bool {
    match role {
        Role::Admin => true,
        Role::Submit => matches!(right, Right::Read | Right::Submit),
        Role::Worker => matches!(right, Right::Read | Right::Work),
        Role::Join => right == Right::Join,
    }
}

/// What a method needs of its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Nothing (health checks).
    Nothing,
    /// A proven member of this cluster.
    Peer,
    /// A member, or a caller with the join right (`RaftService/Admin`).
    PeerOrJoin,
    /// A client with this right.
    Client(Right),
}

/// What the method at gRPC `path` (`/package.Service/Method`) needs. A method not listed
/// needs admin: a new method is closed until someone decides who may call it.
pub fn need(path: &str) -> Need {
    let (service, method) = path
        .strip_prefix('/')
        .and_then(|p| p.split_once('/'))
        .unwrap_or(("", ""));
    match (service, method) {
        ("flotilla.v1.RaftService", "Admin") => Need::PeerOrJoin,
        ("flotilla.v1.RaftService", _) => Need::Peer,
        ("flotilla.v1.QueueService", "Submit" | "Cancel") => Need::Client(Right::Submit),
        (
            "flotilla.v1.QueueService",
            "GetTask"
            | "WaitResults"
            | "QueueStats"
            | "ClusterStatus"
            | "ListTaskNames"
            | "ListWorkers"
            | "FindTasksByIdempotencyKey",
        ) => Need::Client(Right::Read),
        ("flotilla.v1.ScheduleService", "ListSchedules") => Need::Client(Right::Read),
        ("flotilla.v1.LimitService", "ListLimits") => Need::Client(Right::Read),
        ("flotilla.v1.EventService", "Watch") => Need::Client(Right::Read),
        ("flotilla.v1.WorkflowService", "SubmitWorkflow") => Need::Client(Right::Submit),
        ("flotilla.v1.WorkflowService", "GetWorkflow") => Need::Client(Right::Read),
        // Acting on tasks (retry, revoke, pause, resume, purge) needs admin, below.
        ("flotilla.v1.OpsService", "ListTasks" | "DescribeTask") => Need::Client(Right::Read),
        ("flotilla.v1.WorkerService", _) => Need::Client(Right::Work),
        ("grpc.health.v1.Health", _) => Need::Nothing,
        // The schema only: any client may read it.
        ("grpc.reflection.v1.ServerReflection" | "grpc.reflection.v1alpha.ServerReflection", _) => {
            Need::Client(Right::Read)
        }
        _ => Need::Client(Right::Admin),
    }
}

/// Who is calling, as decided before the body was read; in the request's extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    /// A proven member of this cluster.
    Peer,
    /// An anonymous caller of an open (loopback-only) node: every right.
    Local,
    /// A client with a live token.
    Token { id: TokenId, role: Role },
    /// Nobody in particular (a method that needs nothing).
    Anyone,
}

impl Caller {
    /// Whether this caller has `right` as a client.
    pub fn has(self, right: Right) -> bool {
        match self {
            Caller::Local => true,
            Caller::Token { role, .. } => grants(role, right),
            Caller::Peer | Caller::Anyone => false,
        }
    }
}

/// The decision: everything it needs to judge a call.
pub struct Auth {
    pub client_auth: ClientAuth,
    pub peer: Arc<dyn PeerAuth>,
    pub replica: Arc<Replica>,
    pub clock: SharedClock,
    pub cluster_id: Arc<str>,
}

impl Auth {
    /// Judge a call to `path` from its headers and connection alone.
    pub fn check(
        &self,
        path: &str,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Result<Caller, AuthError> {
        let need = need(path);
        match need {
            Need::Nothing => Ok(Caller::Anyone),
            Need::Peer | Need::PeerOrJoin => {
                if let CallerCluster::Id(id) = headers::cluster_id_of(headers)
                    && id != &*self.cluster_id
                {
                    return Err(AuthError::WrongCluster);
                }
                match self.peer.verify(headers, extensions) {
                    PeerVerdict::Member => Ok(Caller::Peer),
                    PeerVerdict::BadProof => Err(AuthError::BadPeerProof),
                    PeerVerdict::NoProof if need == Need::Peer => Err(AuthError::NotAPeer),
                    PeerVerdict::NoProof => self.client(Right::Join, path, headers),
                }
            }
            Need::Client(right) => self.client(right, path, headers),
        }
    }

    /// A client's caller, if it has `right`.
    fn client(&self, right: Right, path: &str, headers: &HeaderMap) -> Result<Caller, AuthError> {
        let caller = match headers::bearer_token(headers) {
            None if self.client_auth == ClientAuth::Open => Caller::Local,
            None => return Err(AuthError::NoToken),
            Some(Err(())) => return Err(AuthError::BadToken),
            Some(Ok(token)) => {
                let hash = token_hash(token);
                let now = self.clock.now_ms();
                let found = self
                    .replica
                    .read(|q| q.tokens().find(&hash, now).map(|(id, r)| (id, r.role)));
                let (id, role) = found.ok_or(AuthError::BadToken)?;
                Caller::Token { id, role }
            }
        };
        match caller {
            Caller::Token { id, role } if !grants(role, right) => Err(AuthError::Denied {
                token: id,
                role,
                right,
                method: path.rsplit('/').next().unwrap_or_default().to_string(),
            }),
            caller => Ok(caller),
        }
    }
}

/// Puts [`Auth`] in front of a service.
#[derive(Clone)]
pub struct AuthLayer {
    auth: Arc<Auth>,
}

impl AuthLayer {
    pub fn new(auth: Auth) -> Self {
        Self { auth: Arc::new(auth) }
    }

    /// The decision, for another door that asks the same questions (the HTTP port).
    pub fn auth(&self) -> Arc<Auth> {
        self.auth.clone()
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            auth: self.auth.clone(),
        }
    }
}

/// The service [`AuthLayer`] makes.
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    auth: Arc<Auth>,
}

impl<S, B> tower::Service<http::Request<B>> for AuthService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        match self.auth.check(req.uri().path(), req.headers(), req.extensions()) {
            Ok(caller) => {
                req.extensions_mut().insert(caller);
                Box::pin(self.inner.call(req))
            }
            Err(e) => {
                let remote = req
                    .extensions()
                    .get::<tonic::transport::server::TcpConnectInfo>()
                    .and_then(|i| i.remote_addr());
                if e.is_peer() {
                    warn!(path = %req.uri().path(), ?remote, error = %e, "refused a peer call");
                } else {
                    debug!(path = %req.uri().path(), ?remote, error = %e, "refused a call");
                }
                let status = Status::from(e);
                Box::pin(async move { Ok(status.into_http()) })
            }
        }
    }
}

#[cfg(test)]
mod tests;
