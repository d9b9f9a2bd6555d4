//! Cluster administration, always carried out by the leader: hand a joining node its id, add
//! it as a learner and then a voter, remove members, and confirm read indexes for followers'
//! linearizable reads. Any node accepts these; a follower forwards once to the leader.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use openraft::ChangeMembers;
use openraft::ReadPolicy;
use openraft::async_runtime::WatchReceiver;
use serde::Deserialize;
use serde::Serialize;
use tracing::info;

use openraft::error::ClientWriteError;
use openraft::error::LinearizableReadError;
use openraft::error::RaftError;

use crate::error::ProposeError;
use crate::network::NetworkFactory;
use crate::proposer::Proposer;
use crate::queue::Command;
use crate::queue::Response;
use crate::raft::Raft;
use crate::types::NodeId;
use crate::types::NodeInfo;
use crate::types::TypeConfig;

/// How long a read waits for this node's replica to reach the leader's read index.
const READ_APPLY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminRequest {
    /// Which cluster is this? Answered locally (no leader needed).
    ClusterId,
    /// A joining node asks for its id before it starts Raft.
    AllocateNodeId { addr: String, zone: String },
    /// Add a node as a learner, let it catch up, then make it a voter.
    AddMember {
        node_id: NodeId,
        addr: String,
        zone: String,
    },
    /// Remove a member (voter or learner), dead or alive.
    RemoveMember { node_id: NodeId },
    /// The leader's read index: a read served after this node applied it is linearizable.
    ReadIndex,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminResponse {
    ClusterId(String),
    NodeId {
        cluster_id: String,
        node_id: NodeId,
    },
    /// Voters and learners after the change, sorted.
    Members(Vec<NodeId>),
    ReadIndex(u64),
}

#[derive(Clone, Debug, thiserror::Error, Serialize, Deserialize)]
pub enum AdminError {
    #[error("no leader is ready yet; retry")]
    NoLeader,
    #[error("{0}")]
    Refused(String),
    #[error("raft: {0}")]
    Raft(String),
    #[error("forwarding to the leader failed: {0}")]
    Forward(String),
}

impl AdminError {
    /// Worth retrying (possibly through another node)?
    pub fn is_transient(&self) -> bool {
        matches!(self, AdminError::NoLeader | AdminError::Forward(_))
    }
}

/// A membership change failed: "no leader" (retry elsewhere) when leadership moved under it.
fn write_err(e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> AdminError {
    match e {
        RaftError::APIError(
            ClientWriteError::ForwardToLeader(_) | ClientWriteError::LogEntryDiscarded(_),
        ) => AdminError::NoLeader,
        other => AdminError::Raft(other.to_string()),
    }
}

/// A read index could not be had: "no leader" unless Raft itself stopped.
fn read_err(e: RaftError<TypeConfig, LinearizableReadError<TypeConfig>>) -> AdminError {
    match e {
        RaftError::APIError(_) => AdminError::NoLeader,
        RaftError::Fatal(f) => AdminError::Raft(f.to_string()),
    }
}

/// A proposal through the log failed.
fn propose_err(e: ProposeError) -> AdminError {
    match e {
        ProposeError::NoLeader | ProposeError::Forward(_) | ProposeError::ShuttingDown => {
            AdminError::NoLeader
        }
        other => AdminError::Raft(other.to_string()),
    }
}

#[derive(Clone)]
pub struct Admin {
    raft: Raft,
    proposer: Proposer,
    network: NetworkFactory,
    cluster_id: Arc<str>,
}

impl Admin {
    pub fn new(raft: Raft, proposer: Proposer, network: NetworkFactory, cluster_id: Arc<str>) -> Self {
        Self {
            raft,
            proposer,
            network,
            cluster_id,
        }
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// Carry out `req` here if this node leads, else forward it to the leader (only once:
    /// `forwarded` requests are never forwarded again).
    pub async fn handle(&self, req: AdminRequest, forwarded: bool) -> Result<AdminResponse, AdminError> {
        if req == AdminRequest::ClusterId {
            return Ok(AdminResponse::ClusterId(self.cluster_id.to_string()));
        }
        if self.raft.is_leader() {
            return self.lead(req).await;
        }
        if forwarded {
            return Err(AdminError::NoLeader);
        }
        let metrics = self.raft.metrics().borrow_watched().clone();
        let leader = metrics
            .current_leader
            .filter(|id| id != self.raft.node_id())
            .and_then(|id| {
                metrics
                    .membership_config
                    .membership()
                    .get_node(&id)
                    .map(|n| (id, n.addr.clone()))
            });
        let Some((leader_id, addr)) = leader else {
            return Err(AdminError::NoLeader);
        };
        self.network.client(leader_id, &addr).admin(&req, true).await
    }

    async fn lead(&self, req: AdminRequest) -> Result<AdminResponse, AdminError> {
        let membership = self.raft.metrics().borrow_watched().membership_config.clone();
        let members = membership.membership();
        let voters: BTreeSet<NodeId> = members.voter_ids().collect();
        match req {
            AdminRequest::ClusterId => Ok(AdminResponse::ClusterId(self.cluster_id.to_string())),
            AdminRequest::AllocateNodeId { addr, zone } => {
                if let Some((id, _)) = members.nodes().find(|(_, n)| n.addr == addr) {
                    return Err(AdminError::Refused(format!(
                        "address {addr} already belongs to member {id}; remove it first with `flotilla cluster remove {id}`"
                    )));
                }
                match self.proposer.propose(Command::AllocateNodeId).await {
                    Ok(Response::NodeId(node_id)) => {
                        info!(node_id, %addr, %zone, "allocated a node id for a joining node");
                        Ok(AdminResponse::NodeId {
                            cluster_id: self.cluster_id.to_string(),
                            node_id,
                        })
                    }
                    Ok(other) => Err(AdminError::Raft(format!("unexpected response {other:?}"))),
                    Err(e) => Err(propose_err(e)),
                }
            }
            AdminRequest::AddMember { node_id, addr, zone } => {
                if voters.contains(&node_id) {
                    return Ok(AdminResponse::Members(
                        members.nodes().map(|(id, _)| *id).collect(),
                    ));
                }
                let node = NodeInfo {
                    addr: addr.clone(),
                    zone,
                };
                // Blocking: returns once the learner has caught up with the log as of now.
                self.raft
                    .add_learner(node_id, node, true)
                    .await
                    .map_err(write_err)?;
                info!(node_id, %addr, "learner caught up; promoting to voter");
                let resp = self
                    .raft
                    .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([node_id])), false)
                    .await
                    .map_err(write_err)?;
                Ok(AdminResponse::Members(member_ids(resp.membership.as_ref())))
            }
            AdminRequest::RemoveMember { node_id } => {
                let change = if voters.contains(&node_id) {
                    if voters.len() == 1 {
                        return Err(AdminError::Refused(format!(
                            "node {node_id} is the last voter; it cannot be removed"
                        )));
                    }
                    ChangeMembers::RemoveVoters(BTreeSet::from([node_id]))
                } else if members.get_node(&node_id).is_some() {
                    ChangeMembers::RemoveNodes(BTreeSet::from([node_id]))
                } else {
                    return Err(AdminError::Refused(format!("node {node_id} is not a member")));
                };
                let resp = self
                    .raft
                    .change_membership(change, false)
                    .await
                    .map_err(write_err)?;
                info!(node_id, "removed member");
                Ok(AdminResponse::Members(member_ids(resp.membership.as_ref())))
            }
            AdminRequest::ReadIndex => {
                let read = self
                    .raft
                    .ensure_linearizable(ReadPolicy::ReadIndex)
                    .await
                    .map_err(read_err)?;
                Ok(AdminResponse::ReadIndex(read.index()))
            }
        }
    }

    /// Make a following read linearizable: learn the leader's read index, then wait until this
    /// node has applied it.
    pub async fn read_barrier(&self) -> Result<(), AdminError> {
        let AdminResponse::ReadIndex(index) = self.handle(AdminRequest::ReadIndex, false).await? else {
            return Err(AdminError::Raft(
                "unexpected answer to a read index request".into(),
            ));
        };
        self.raft
            .wait(Some(READ_APPLY_TIMEOUT))
            .applied_index_at_least(Some(index), "read barrier")
            .await
            .map_err(|e| AdminError::Raft(format!("replica did not catch up for a read: {e}")))?;
        Ok(())
    }
}

fn member_ids(m: Option<&openraft::Membership<NodeId, NodeInfo>>) -> Vec<NodeId> {
    m.map(|m| m.nodes().map(|(id, _)| *id).collect())
        .unwrap_or_default()
}
