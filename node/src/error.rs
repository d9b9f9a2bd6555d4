//! Errors of the node library. API errors (the caller can act on them) are kept apart from
//! fatal ones (storage or Raft stopped). `grpc::status` maps them to gRPC codes in one place.

use crate::types::NodeId;

/// Why a proposal (a write through the log) did not take effect.
#[derive(Debug, Clone, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum ProposeError {
    /// No leader is known, or the leader has not yet confirmed its term: retry with backoff.
    #[error("no leader is ready yet; retry")]
    NoLeader,
    /// This node is not the leader and forwarding is not possible here.
    #[error("not the leader; the leader is node {leader_id} at {leader_addr}")]
    NotLeader { leader_id: NodeId, leader_addr: String },
    /// Forwarding to the leader failed on the network.
    #[error("forwarding to the leader failed: {0}")]
    Forward(String),
    /// The request is malformed.
    #[error("{0}")]
    Invalid(String),
    /// Raft has stopped (storage failure or shutdown): this node cannot serve writes.
    #[error("raft stopped: {0}")]
    Fatal(String),
    /// The leader refused this node's forwarded write: the node is not a member (it was
    /// removed). Retrying here cannot help; clients should use another node.
    #[error("this node is not a member of the cluster (was it removed?); use another node")]
    NotAMember,
    /// The node is shutting down.
    #[error("node is shutting down")]
    ShuttingDown,
}

impl From<crate::queue::ops::WrongAnswer> for ProposeError {
    /// Replicas answering a command with another one's response run another build: not
    /// something a retry fixes.
    fn from(e: crate::queue::ops::WrongAnswer) -> Self {
        ProposeError::Fatal(e.to_string())
    }
}
