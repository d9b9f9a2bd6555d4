//! The node's two gRPC services.
//!
//! - [`queue_service`]: `flotilla.v1.QueueService`, for clients.
//! - [`raft_service`]: `flotilla.v1.RaftService`, for peers only (openraft RPCs, forwarding).
//! - [`auth`]: the tower layer in front of every service: who may call what (tokens with
//!   roles for clients, the peer proof for members), decided before a body is read.
//! - [`convert`]: protobuf ⇄ domain conversions (generated types stop at this boundary).
//! - [`status`]: [`status::ApiError`] and its mapping to gRPC codes — the only place that
//!   decides which error becomes which code.

pub mod auth;
pub mod convert;
pub mod queue_service;
pub mod raft_service;
pub mod status;

pub use queue_service::QueueApi;
pub use raft_service::RaftApi;
