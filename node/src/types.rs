//! The openraft type configuration: what a log entry carries, what applying it returns, and
//! what a node is.

use std::fmt;

use serde::Deserialize;
use serde::Serialize;

use crate::queue::Request;
use crate::queue::Response;

/// Cluster-assigned node id.
pub type NodeId = u64;

/// What the cluster knows about a member: where to reach it and where it is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Advertised address (`host:port`) for peers and clients.
    pub addr: String,
    /// Zone label (data center or rack); empty when unset.
    pub zone: String,
}

impl fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.addr)?;
        if !self.zone.is_empty() {
            write!(f, " ({})", self.zone)?;
        }
        Ok(())
    }
}

/// Responses to one entry: one per command of its [`Request`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseBatch(pub Vec<Response>);

openraft::declare_raft_types!(
    /// Flotilla's openraft types.
    pub TypeConfig:
        D = Request,
        R = ResponseBatch,
        NodeId = NodeId,
        Node = NodeInfo,
        AsyncRuntime = crate::runtime::NodeRuntime,
        // Standard Raft: one vote, and so at most one leader, per term (openraft's default
        // "advanced" ids allow several leaders in one term, told apart by node id).
        LeaderId = openraft::impls::leader_id_std::LeaderId<u64, NodeId>,
);

/// Snapshot bytes: a format-versioned bincode encoding of the queue state.
pub type SnapshotData = Vec<u8>;
