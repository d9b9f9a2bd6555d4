//! The node's gRPC services.
//!
//! - [`queue_service`]: `flotilla.v1.QueueService`, for clients.
//! - [`worker_service`]: `flotilla.v1.WorkerService`, for remote workers (a session per worker
//!   process, run by `worker::remote`).
//! - [`schedule_service`]: `flotilla.v1.ScheduleService`, periodic schedules for clients.
//! - [`limit_service`]: `flotilla.v1.LimitService`, flow-control limits for clients.
//! - [`event_service`]: `flotilla.v1.EventService`, the events stream for clients.
//! - [`workflow_service`]: `flotilla.v1.WorkflowService`, workflows (chain, group, chord).
//! - [`ops_service`]: `flotilla.v1.OpsService`, operating tasks: list, describe, retry,
//!   cancel running ones, pause, resume and purge queues.
//! - [`raft_service`]: `flotilla.v1.RaftService`, for peers only (openraft RPCs, forwarding).
//! - [`peer_identity`]: what a caller's TLS certificate proves, and [`NodeGate`], which keeps
//!   `raft_service` to nodes of this cluster when the node has TLS.
//! - [`auth`]: the tower layer in front of every service: who may call what (tokens with
//!   roles for clients, the peer proof for members), decided before a body is read.
//! - [`reflection`]: gRPC server reflection of every `flotilla.v1` service (for `grpcurl`).
//! - [`workers`]: `ListWorkers`' reply: the members' live worker table joined with the
//!   replicated state's leases and standing capacity per pool.
//! - [`convert`]: protobuf ⇄ domain conversions (generated types stop at this boundary).
//! - [`conn`]: connections before HTTP/2: the accept loop (backs off on errors), handshake
//!   and idle timeouts, the open-files limit.
//! - [`calls`]: every call: a node-wide bound on client calls in progress, connection
//!   activity, undecodable requests answered as `INVALID_ARGUMENT`.
//! - [`status`]: [`status::ApiError`] and its mapping to gRPC codes — the only place that
//!   decides which error becomes which code.

pub mod auth;
pub mod calls;
pub mod conn;
pub mod convert;
pub mod event_service;
pub mod limit_service;
pub mod ops_service;
pub mod peer_identity;
pub mod queue_service;
pub mod raft_service;
pub mod reflection;
pub mod schedule_service;
pub mod status;
pub mod worker_service;
pub mod workers;
pub mod workflow_service;

pub use event_service::EventApi;
pub use limit_service::LimitApi;
pub use ops_service::OpsApi;
pub use peer_identity::NodeGate;
pub use queue_service::QueueApi;
pub use raft_service::RaftApi;
pub use schedule_service::ScheduleApi;
pub use worker_service::WorkerApi;
pub use workflow_service::WorkflowApi;
