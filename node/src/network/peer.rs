//! Flotilla's own peer calls, beside openraft's: a follower forwards a batch of writes to the
//! leader ([`PeerClient::forward`]), and any node sends an admin request to a peer
//! ([`PeerClient::admin`]). The admin messages are defined here, in the network layer, so that
//! `cluster` (which carries them out) and `grpc` (which receives them) both import them from
//! below.
//!
//! Each admin request is paired with the type of its answer ([`AdminCall`]), as the queue's
//! commands are ([`crate::queue::ops`]): a caller asks for a [`ReadIndex`] and gets a `u64`.

use std::time::Duration;

use serde::Deserialize;
use serde::Serialize;

use super::call::PeerChannel;
use super::call::PeerError;
use super::call::Peers;
use super::call::Rpc;
use crate::error::ProposeError;
use crate::queue::Command;
use crate::queue::Response;
use crate::secret::Secret;
use crate::types::NodeId;

/// Deadline of a forwarded write (it waits for a commit, so longer than a heartbeat).
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline of adding a member: the leader waits for the new learner to catch up.
pub const ADD_MEMBER_TIMEOUT: Duration = Duration::from_secs(300);

/// Cluster administration, carried out by the leader (`cluster::Admin`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminRequest {
    /// Which cluster is this? Answered locally (no leader needed).
    ClusterId,
    /// A joining node asks for its id (and the cluster's peer secret) before it starts Raft.
    /// The only request a caller that is not a member may make, with a join token.
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
    /// The remote workers connected to this node (answered by it, never forwarded).
    LocalWorkers,
    /// This node's own pool and remote worker sessions, as they are now (answered by it, never
    /// forwarded): `flotilla workers`. Added after `LocalWorkers`, so a build before it fails
    /// to decode the request and is reported as unreachable, never misread.
    NodeWorkers,
}

/// A remote worker session live on a node: what `flotilla tasks` shows of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectedWorker {
    /// The node that holds the session.
    pub node_id: NodeId,
    pub name: String,
    pub queues: Vec<String>,
    /// The task names its Hello declared.
    pub tasks: Vec<String>,
    pub concurrency: u32,
}

/// What runs tasks on a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkerKind {
    /// The node's own pool (`--workers`).
    Pool,
    /// A remote worker's session (`WorkerService.Session`).
    Remote,
}

/// A worker on a node, as that node sees it now: what `flotilla workers` shows of it. Times
/// are ages, measured by the node's monotonic clock, so the nodes' wall clocks need not agree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeWorker {
    /// The node that runs the pool or holds the session.
    pub node_id: NodeId,
    /// The pool's name in the log (a remote worker's Hello name; `node-N` for a node's pool).
    pub name: String,
    pub kind: WorkerKind,
    pub queues: Vec<String>,
    pub concurrency: u32,
    /// Tasks running now (a remote worker: as of its latest message).
    pub busy: u32,
    /// How long ago the pool started or the session opened, in ms.
    pub connected_ms_ago: u64,
    /// How long ago the worker was last heard from, in ms (a pool: 0, it is the node itself).
    pub last_seen_ms_ago: u64,
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
    /// The answer to `AllocateNodeId` (issue 14 on): the joining node's id, and the peer
    /// secret it proves its membership with from then on.
    Joined {
        cluster_id: String,
        node_id: NodeId,
        peer_secret: Secret,
    },
    /// The answer to `LocalWorkers`.
    Workers(Vec<ConnectedWorker>),
    /// The answer to `NodeWorkers`.
    NodeWorkers(Vec<NodeWorker>),
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
    /// The peer refused this node's credentials (made on the calling side from the peer's
    /// UNAUTHENTICATED or PERMISSION_DENIED; never sent).
    #[error("refused: {0}")]
    Unauthorized(String),
}

impl AdminError {
    /// Worth retrying (possibly through another node)?
    pub fn is_transient(&self) -> bool {
        matches!(self, AdminError::NoLeader | AdminError::Forward(_))
    }
}

/// An admin request whose answer has a type of its own.
pub trait AdminCall {
    /// What the leader answers.
    type Answer;
    /// The request to send.
    fn request(self) -> AdminRequest;
    /// The typed answer, from the response to this call's request. Any other response means
    /// the peer runs another build: an error, never a panic.
    fn answer(response: AdminResponse) -> Result<Self::Answer, AdminError>;
}

macro_rules! admin_call {
    ($(#[$doc:meta])* $name:ident { $($field:ident : $ty:ty),* $(,)? }
        => $answer:ty, $pattern:pat => $value:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct $name { $(pub $field: $ty),* }

        impl AdminCall for $name {
            type Answer = $answer;
            fn request(self) -> AdminRequest {
                let Self { $($field),* } = self;
                AdminRequest::$name { $($field),* }
            }
            fn answer(response: AdminResponse) -> Result<$answer, AdminError> {
                match response {
                    $pattern => Ok($value),
                    other => Err(AdminError::Raft(format!(
                        "{} was answered with {other:?}",
                        stringify!($name)
                    ))),
                }
            }
        }
    };
}

admin_call!(
    /// [`AdminRequest::ClusterId`]: the peer's cluster id.
    ClusterId {} => String, AdminResponse::ClusterId(id) => id
);
admin_call!(
    /// [`AdminRequest::AllocateNodeId`]: `(cluster_id, node_id, peer_secret)` for the joining
    /// node.
    AllocateNodeId { addr: String, zone: String } => (String, NodeId, Secret),
    AdminResponse::Joined { cluster_id, node_id, peer_secret } => (cluster_id, node_id, peer_secret)
);
admin_call!(
    /// [`AdminRequest::AddMember`]: the members after the change.
    AddMember { node_id: NodeId, addr: String, zone: String } => Vec<NodeId>,
    AdminResponse::Members(members) => members
);
admin_call!(
    /// [`AdminRequest::RemoveMember`]: the members after the change.
    RemoveMember { node_id: NodeId } => Vec<NodeId>,
    AdminResponse::Members(members) => members
);
admin_call!(
    /// [`AdminRequest::ReadIndex`]: the leader's read index.
    ReadIndex {} => u64, AdminResponse::ReadIndex(index) => index
);
admin_call!(
    /// [`AdminRequest::LocalWorkers`]: the remote workers connected to the peer.
    LocalWorkers {} => Vec<ConnectedWorker>, AdminResponse::Workers(workers) => workers
);
admin_call!(
    /// [`AdminRequest::NodeWorkers`]: the peer's own pool and remote worker sessions.
    NodeWorkers {} => Vec<NodeWorker>, AdminResponse::NodeWorkers(workers) => workers
);

impl Peers {
    /// A client for Flotilla's own calls to node `target` at `addr`.
    pub fn client(&self, target: NodeId, addr: &str) -> PeerClient {
        PeerClient {
            channel: self.channel(target, addr),
        }
    }
}

/// Flotilla's calls to one peer.
pub struct PeerClient {
    channel: PeerChannel,
}

impl PeerClient {
    /// Forward a batch of commands to this peer (the leader) to propose there.
    pub async fn forward(&self, commands: &[Command]) -> Result<Vec<Response>, ProposeError> {
        let rpc: Rpc = |mut c, r| Box::pin(async move { c.forward(r).await });
        match self
            .channel
            .call::<_, Vec<Response>, ProposeError>(rpc, &commands, FORWARD_TIMEOUT)
            .await
        {
            Ok(result) => result,
            // The leader refuses writes forwarded by a node that is not a member.
            Err(PeerError::Call { source, .. }) if source.code() == tonic::Code::PermissionDenied => {
                Err(ProposeError::NotAMember)
            }
            Err(e) => Err(ProposeError::Forward(e.to_string())),
        }
    }

    /// Ask this peer for `call` (it forwards the request to its leader).
    pub async fn admin<C: AdminCall>(&self, call: C) -> Result<C::Answer, AdminError> {
        C::answer(self.admin_request(&call.request(), false).await?)
    }

    /// Send an admin request to this peer (which forwards it to its leader unless `forwarded`).
    pub async fn admin_request(
        &self,
        req: &AdminRequest,
        forwarded: bool,
    ) -> Result<AdminResponse, AdminError> {
        let rpc: Rpc = |mut c, r| Box::pin(async move { c.admin(r).await });
        let timeout = if matches!(req, AdminRequest::AddMember { .. }) {
            ADD_MEMBER_TIMEOUT
        } else {
            FORWARD_TIMEOUT
        };
        match self
            .channel
            .call::<_, AdminResponse, AdminError>(rpc, &(forwarded, req), timeout)
            .await
        {
            Ok(result) => result,
            Err(PeerError::Call { source, .. })
                if matches!(
                    source.code(),
                    tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
                ) =>
            {
                Err(AdminError::Unauthorized(source.message().to_string()))
            }
            Err(e) => Err(AdminError::Forward(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_call_sends_its_request_and_takes_only_its_own_answer() {
        let read = ReadIndex {};
        assert_eq!(read.request(), AdminRequest::ReadIndex);
        assert_eq!(ReadIndex::answer(AdminResponse::ReadIndex(9)).unwrap(), 9);
        let remove = RemoveMember { node_id: 3 };
        assert_eq!(remove.request(), AdminRequest::RemoveMember { node_id: 3 });
        let allocated = AdminResponse::Joined {
            cluster_id: "c".into(),
            node_id: 4,
            peer_secret: Secret("s".into()),
        };
        assert_eq!(
            AllocateNodeId::answer(allocated.clone()).unwrap(),
            ("c".to_string(), 4, Secret("s".into()))
        );
        let err = ReadIndex::answer(allocated).unwrap_err();
        assert!(
            !err.to_string().contains("\"s\""),
            "an error shows the secret: {err}"
        );
        assert!(matches!(err, AdminError::Raft(_)), "{err:?}");
        assert!(
            err.to_string().contains("ReadIndex was answered with Joined"),
            "{err}"
        );
        // A build before issue 14 answers without a secret: an error, not a half join.
        let old = AdminResponse::NodeId {
            cluster_id: "c".into(),
            node_id: 4,
        };
        assert!(AllocateNodeId::answer(old).is_err());
    }
}
