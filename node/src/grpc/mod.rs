//! The node's two gRPC services.
//!
//! - [`queue_service`]: `flotilla.v1.QueueService`, for clients.
//! - [`raft_service`]: `flotilla.v1.RaftService`, for peers only (openraft RPCs, forwarding).
//! - [`convert`]: protobuf ⇄ domain conversions (generated types stop at this boundary).
//! - [`conn`]: connections before HTTP/2: the accept loop (backs off on errors), handshake
//!   and idle timeouts, the open-files limit.
//! - [`calls`]: every call: a node-wide bound on client calls in progress, connection
//!   activity, undecodable requests answered as `INVALID_ARGUMENT`.
//! - [`status`]: [`status::ApiError`] and its mapping to gRPC codes — the only place that
//!   decides which error becomes which code.

pub mod calls;
pub mod conn;
pub mod convert;
pub mod queue_service;
pub mod raft_service;
pub mod status;

pub use queue_service::QueueApi;
pub use raft_service::RaftApi;
