//! Cluster administration, always carried out by the leader: hand a joining node its id, add
//! it as a learner and then a voter, remove members, and confirm read indexes for followers'
//! linearizable reads. Any node accepts these; a follower forwards once to the leader.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openraft::ChangeMembers;
use openraft::ReadPolicy;
use openraft::async_runtime::WatchReceiver;
use openraft::raft::ClientWriteResponse;
use tracing::debug;
use tracing::info;

use openraft::error::ChangeMembershipError;
use openraft::error::ClientWriteError;
use openraft::error::LinearizableReadError;
use openraft::error::RaftError;

use crate::error::ProposeError;
use crate::network::Peers;
use crate::network::peer::AdminCall;
use crate::network::peer::AdminError;
use crate::network::peer::AdminRequest;
use crate::network::peer::AdminResponse;
use crate::network::peer::ConnectedWorker;
use crate::network::peer::NodeWorker;
use crate::network::peer::ReadIndex;
use crate::proposer::Proposer;
use crate::queue::ops;
use crate::raft::Raft;
use crate::secret::Secret;
use crate::types::NodeId;
use crate::types::NodeInfo;
use crate::types::TypeConfig;
use flotilla_proto::backoff::Backoff;

/// How long a read waits for this node's replica to reach the leader's read index.
const READ_APPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a membership change waits for the one before it to finish committing.
const SETTLE_WAIT: Duration = Duration::from_secs(10);

/// A membership change failed: "no leader" (retry elsewhere) when leadership moved under it.
/// Another change still in progress after [`SETTLE_WAIT`] stays a Raft error (a joining node
/// retries those).
fn write_err(e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> AdminError {
    match e {
        RaftError::APIError(
            ClientWriteError::ForwardToLeader(_) | ClientWriteError::LogEntryDiscarded(_),
        ) => AdminError::NoLeader,
        other => AdminError::Raft(other.to_string()),
    }
}

/// A change of voters must leave a majority of the new voters answering the leader: else the
/// change cannot commit and the cluster waits in a joint configuration until they come back.
fn check_live_majority(
    new_voters: &BTreeSet<NodeId>,
    answering: &BTreeSet<NodeId>,
) -> Result<(), AdminError> {
    let up: BTreeSet<NodeId> = new_voters.intersection(answering).copied().collect();
    if up.len() * 2 > new_voters.len() {
        return Ok(());
    }
    let down: Vec<NodeId> = new_voters.difference(answering).copied().collect();
    Err(AdminError::Refused(format!(
        "the voters after this change would be {new_voters:?}, of which only {up:?} answer \
         (down: {down:?}): no majority, so the change could not finish; bring those nodes back \
         first, or remove a node that is down"
    )))
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

/// What runs tasks on this node, read through closures so that `cluster` does not import
/// `worker` (the sessions are `worker/remote/sessions.rs`, the pool `worker/pool.rs`).
#[derive(Clone)]
pub struct LocalWorkers {
    /// The connected remote workers with the names they declared (`flotilla tasks`).
    pub connected: Arc<dyn Fn() -> Vec<ConnectedWorker> + Send + Sync>,
    /// The node's own pool and its remote worker sessions, as they are now (`flotilla workers`).
    pub all: Arc<dyn Fn() -> Vec<NodeWorker> + Send + Sync>,
}

impl LocalWorkers {
    /// The answer to a `LocalWorkers` or `NodeWorkers` request; `None` for any other.
    fn answer(&self, req: &AdminRequest) -> Option<AdminResponse> {
        match req {
            AdminRequest::LocalWorkers => Some(AdminResponse::Workers((self.connected)())),
            AdminRequest::NodeWorkers => Some(AdminResponse::NodeWorkers((self.all)())),
            _ => None,
        }
    }
}

#[derive(Clone)]
pub struct Admin {
    pub(super) raft: Raft,
    proposer: Proposer,
    pub(super) peers: Peers,
    cluster_id: Arc<str>,
    /// Handed to a joining node with its id (it came with a valid join token).
    peer_secret: Secret,
    pub(super) local_workers: LocalWorkers,
}

impl Admin {
    pub fn new(
        raft: Raft,
        proposer: Proposer,
        peers: Peers,
        cluster_id: Arc<str>,
        peer_secret: Secret,
        local_workers: LocalWorkers,
    ) -> Self {
        Self {
            raft,
            proposer,
            peers,
            cluster_id,
            peer_secret,
            local_workers,
        }
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// Carry out `req` here if this node leads, else forward it to the leader (only once:
    /// `forwarded` requests are never forwarded again).
    pub async fn handle(&self, req: AdminRequest, forwarded: bool) -> Result<AdminResponse, AdminError> {
        if let AdminRequest::ClusterId = req {
            return Ok(AdminResponse::ClusterId(self.cluster_id.to_string()));
        }
        if let Some(local) = self.local_workers.answer(&req) {
            return Ok(local);
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
        self.peers
            .client(leader_id, &addr)
            .admin_request(&req, true)
            .await
    }

    /// Carry out `call` (here, or through the leader) and return its typed answer.
    pub async fn call<C: AdminCall>(&self, call: C) -> Result<C::Answer, AdminError> {
        C::answer(self.handle(call.request(), false).await?)
    }

    async fn lead(&self, req: AdminRequest) -> Result<AdminResponse, AdminError> {
        let membership = self.raft.metrics().borrow_watched().membership_config.clone();
        let members = membership.membership();
        let voters: BTreeSet<NodeId> = members.voter_ids().collect();
        match req {
            AdminRequest::ClusterId => Ok(AdminResponse::ClusterId(self.cluster_id.to_string())),
            AdminRequest::LocalWorkers | AdminRequest::NodeWorkers => self
                .local_workers
                .answer(&req)
                .ok_or_else(|| AdminError::Raft("no local answer".into())),
            AdminRequest::AllocateNodeId { addr, zone } => {
                if let Some((id, _)) = members.nodes().find(|(_, n)| n.addr == addr) {
                    return Err(AdminError::Refused(format!(
                        "address {addr} already belongs to member {id}; remove it first with `flotilla cluster remove {id}`"
                    )));
                }
                let node_id = self
                    .proposer
                    .op(ops::AllocateNodeId {})
                    .await
                    .map_err(propose_err)?;
                info!(node_id, %addr, %zone, "allocated a node id for a joining node");
                Ok(AdminResponse::Joined {
                    cluster_id: self.cluster_id.to_string(),
                    node_id,
                    peer_secret: self.peer_secret.clone(),
                })
            }
            AdminRequest::AddMember { node_id, addr, zone } => {
                if voters.contains(&node_id) {
                    return Ok(AdminResponse::Members(
                        members.nodes().map(|(id, _)| *id).collect(),
                    ));
                }
                let mut new_voters = voters.clone();
                new_voters.insert(node_id);
                let node = NodeInfo {
                    addr: addr.clone(),
                    zone,
                };
                let raft = self.raft.clone();
                // The new node counts as up: it is the one asking. The others must answer.
                let mut up = self.answering(&voters)?;
                up.insert(node_id);
                check_live_majority(&new_voters, &up)?;
                finish_apart(async move {
                    // Blocking: returns once the learner has caught up with the log as of now.
                    raft.add_learner(node_id, node, true).await.map_err(write_err)?;
                    info!(node_id, %addr, "learner caught up; promoting to voter");
                    let change = ChangeMembers::AddVoterIds(BTreeSet::from([node_id]));
                    let resp = change_membership(&raft, change).await?;
                    Ok(AdminResponse::Members(member_ids(resp.membership.as_ref())))
                })
                .await
            }
            AdminRequest::RemoveMember { node_id } => {
                let change = if voters.contains(&node_id) {
                    if voters.len() == 1 {
                        return Err(AdminError::Refused(format!(
                            "node {node_id} is the last voter; it cannot be removed"
                        )));
                    }
                    let mut new_voters = voters.clone();
                    new_voters.remove(&node_id);
                    check_live_majority(&new_voters, &self.answering(&voters)?)?;
                    ChangeMembers::RemoveVoters(BTreeSet::from([node_id]))
                } else if members.get_node(&node_id).is_some() {
                    ChangeMembers::RemoveNodes(BTreeSet::from([node_id]))
                } else {
                    return Err(AdminError::Refused(format!("node {node_id} is not a member")));
                };
                let raft = self.raft.clone();
                finish_apart(async move {
                    let resp = change_membership(&raft, change).await?;
                    info!(node_id, "removed member");
                    Ok(AdminResponse::Members(member_ids(resp.membership.as_ref())))
                })
                .await
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

    /// Which of `voters` answer this leader now (see [`super::liveness`]).
    fn answering(&self, voters: &BTreeSet<NodeId>) -> Result<BTreeSet<NodeId>, AdminError> {
        super::liveness::answering(&self.raft, voters).ok_or(AdminError::NoLeader)
    }

    /// Make a following read linearizable: learn the leader's read index, then wait until this
    /// node has applied it.
    pub async fn read_barrier(&self) -> Result<(), AdminError> {
        let index = self.call(ReadIndex {}).await?;
        self.raft
            .wait(Some(READ_APPLY_TIMEOUT))
            .applied_index_at_least(Some(index), "read barrier")
            .await
            .map_err(|e| AdminError::Raft(format!("replica did not catch up for a read: {e}")))?;
        Ok(())
    }
}

/// Run a membership change in a task of its own, and wait for it. A change is two log entries
/// (joint, then final); were it run in the caller's future, a caller that leaves (a client's
/// deadline) would cancel it between the two and leave the cluster in the joint configuration.
/// (A leader change between the two is finished by the new leader: `leader.rs`.)
async fn finish_apart(
    change: impl Future<Output = Result<AdminResponse, AdminError>> + Send + 'static,
) -> Result<AdminResponse, AdminError> {
    tokio::spawn(change)
        .await
        .map_err(|e| AdminError::Raft(format!("membership change task failed: {e}")))?
}

/// Apply `change` once the change before it has finished. A change is two entries (joint, then
/// final) and the members read as voters after the first, so an operator's next change (remove
/// a node that has just joined) would otherwise fail with "already undergoing a configuration
/// change" for the moment the second takes to commit. Waited out for at most [`SETTLE_WAIT`].
async fn change_membership(
    raft: &Raft,
    change: ChangeMembers<NodeId, NodeInfo>,
) -> Result<ClientWriteResponse<TypeConfig>, AdminError> {
    let started = tokio::time::Instant::now();
    let mut backoff = Backoff::new(Duration::from_millis(20), Duration::from_millis(500));
    loop {
        match raft.change_membership(change.clone(), false).await {
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                ChangeMembershipError::InProgress(previous),
            ))) if started.elapsed() < SETTLE_WAIT => {
                debug!(%previous, "waiting for the previous membership change to finish");
                tokio::time::sleep(backoff.next_delay()).await;
            }
            other => return other.map_err(write_err),
        }
    }
}

fn member_ids(m: Option<&openraft::Membership<NodeId, NodeInfo>>) -> Vec<NodeId> {
    m.map(|m| m.nodes().map(|(id, _)| *id).collect())
        .unwrap_or_default()
}
