//! `flotilla.v1.RaftService`: peers only. Decodes openraft messages (bincode), hands them to
//! the local Raft, and encodes the reply or the error. Forwarded writes enter the local
//! proposer and are coalesced with this node's own traffic. A snapshot arrives in chunks
//! (`InstallSnapshotStream`, bounded by `--max-snapshot-bytes`) or, from a sender of an older
//! build, whole (`InstallSnapshot`).

use flotilla_proto::v1::RaftMessage;
use flotilla_proto::v1::raft_service_server::RaftService;
use openraft::Snapshot;
use openraft::async_runtime::WatchReceiver;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::TransferLeaderRequest;
use openraft::raft::VoteRequest;
use openraft::type_config::alias::SnapshotMetaOf;
use openraft::type_config::alias::VoteOf;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::Request;
use tonic::Response;
use tonic::Status;
use tonic::Streaming;
use tonic::metadata::MetadataMap;

use super::status::PeerCallError;
use crate::cluster::Admin;
use crate::network::codec;
use crate::network::headers;
use crate::network::headers::CallerCluster;
use crate::network::peer::AdminRequest;
use crate::network::snapshot_stream;
use crate::network::snapshot_stream::ReceiveLimits;
use crate::proposer::Proposer;
use crate::queue::Command;
use crate::raft::Raft;
use crate::types::SnapshotData;
use crate::types::TypeConfig;

#[derive(Clone)]
pub struct RaftApi {
    raft: Raft,
    proposer: Proposer,
    admin: Admin,
    /// What a snapshot from a leader may be (it is held in memory whole).
    snapshot_limits: ReceiveLimits,
}

impl RaftApi {
    pub fn new(raft: Raft, proposer: Proposer, admin: Admin) -> Self {
        Self {
            raft,
            proposer,
            admin,
            snapshot_limits: ReceiveLimits::default(),
        }
    }

    /// Refuse snapshots larger than `bytes` (`--max-snapshot-bytes`).
    pub fn max_snapshot_bytes(mut self, bytes: u64) -> Self {
        self.snapshot_limits.max_bytes = bytes;
        self
    }

    /// Decode a call of a member of this cluster.
    fn decode<T: DeserializeOwned>(&self, req: Request<RaftMessage>) -> Result<T, PeerCallError> {
        check_caller(req.metadata(), self.admin.cluster_id(), false)?;
        decode(req)
    }

    /// Whether `id` is a member of this cluster now.
    fn is_member(&self, id: u64) -> bool {
        self.raft
            .metrics()
            .borrow_watched()
            .membership_config
            .membership()
            .get_node(&id)
            .is_some()
    }
}

/// Refuse calls from another cluster (or from no cluster, unless `anonymous_ok`).
fn check_caller(metadata: &MetadataMap, ours: &str, anonymous_ok: bool) -> Result<(), PeerCallError> {
    match headers::cluster_id(metadata) {
        CallerCluster::Id(id) if id == ours => Ok(()),
        CallerCluster::Anonymous if anonymous_ok => Ok(()),
        CallerCluster::Anonymous => Err(PeerCallError::NoClusterId),
        CallerCluster::Id(_) | CallerCluster::Unreadable => Err(PeerCallError::WrongCluster),
    }
}

fn decode<T: DeserializeOwned>(req: Request<RaftMessage>) -> Result<T, PeerCallError> {
    codec::decode(&req.into_inner().data).map_err(PeerCallError::Decode)
}

/// Encode `Ok` into `data` and an application error into `error`; transport-level failures
/// stay gRPC statuses.
fn reply<T: Serialize, E: Serialize>(result: Result<T, E>) -> Result<Response<RaftMessage>, Status> {
    let msg = match result {
        Ok(v) => RaftMessage {
            data: encode(&v)?.into(),
            error: Default::default(),
        },
        Err(e) => RaftMessage {
            data: Default::default(),
            error: encode(&e)?.into(),
        },
    };
    Ok(Response::new(msg))
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, PeerCallError> {
    codec::encode(v).map_err(PeerCallError::Encode)
}

#[tonic::async_trait]
impl RaftService for RaftApi {
    async fn append_entries(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc: AppendEntriesRequest<TypeConfig> = self.decode(req)?;
        reply(self.raft.append_entries(rpc).await)
    }

    async fn vote(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc: VoteRequest<TypeConfig> = self.decode(req)?;
        reply(self.raft.vote(rpc).await)
    }

    async fn pre_vote(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc: VoteRequest<TypeConfig> = self.decode(req)?;
        reply(self.raft.pre_vote(rpc).await)
    }

    async fn install_snapshot(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let (vote, meta, data): (VoteOf<TypeConfig>, SnapshotMetaOf<TypeConfig>, SnapshotData) =
            self.decode(req)?;
        // Already in memory (bounded only by the message limit), but refused all the same.
        self.snapshot_limits
            .check_size(data.len() as u64)
            .map_err(PeerCallError::from)?;
        let snapshot = Snapshot { meta, snapshot: data };
        reply(self.raft.install_full_snapshot(vote, snapshot).await)
    }

    async fn install_snapshot_stream(
        &self,
        req: Request<Streaming<RaftMessage>>,
    ) -> Result<Response<RaftMessage>, Status> {
        check_caller(req.metadata(), self.admin.cluster_id(), false)?;
        let (vote, snapshot) = snapshot_stream::receive(req.into_inner(), self.snapshot_limits)
            .await
            .map_err(PeerCallError::from)?;
        reply(self.raft.install_full_snapshot(vote, snapshot).await)
    }

    async fn transfer_leader(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc: TransferLeaderRequest<TypeConfig> = self.decode(req)?;
        reply(self.raft.handle_transfer_leader(rpc).await)
    }

    async fn forward(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        // A removed node may still believe it is a member: its writes are refused here.
        let sender = headers::node_id(req.metadata());
        if !sender.is_some_and(|id| self.is_member(id)) {
            return Err(PeerCallError::NotAMember(sender).into());
        }
        let commands: Vec<Command> = self.decode(req)?;
        reply(self.proposer.propose_forwarded(commands).await)
    }

    async fn admin(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        // A node that is joining does not know the cluster yet: it may ask which cluster this
        // is and for an id, and nothing else.
        let anonymous = headers::cluster_id(req.metadata()) == CallerCluster::Anonymous;
        check_caller(req.metadata(), self.admin.cluster_id(), true)?;
        let (forwarded, admin): (bool, AdminRequest) = decode(req)?;
        if anonymous
            && !matches!(
                admin,
                AdminRequest::ClusterId | AdminRequest::AllocateNodeId { .. }
            )
        {
            return Err(PeerCallError::NoClusterId.into());
        }
        reply(self.admin.handle(admin, forwarded).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::headers::Stamp;

    #[test]
    fn only_callers_of_this_cluster_pass_and_a_stranger_is_not_told_our_id() {
        let ours = "ours-1234";
        let mut member = MetadataMap::new();
        Stamp::new(ours, 2).unwrap().apply(&mut member);
        assert!(check_caller(&member, ours, false).is_ok());
        let anonymous = MetadataMap::new();
        assert!(check_caller(&anonymous, ours, true).is_ok());
        assert!(matches!(
            check_caller(&anonymous, ours, false),
            Err(PeerCallError::NoClusterId)
        ));
        let mut stranger = MetadataMap::new();
        Stamp::new("theirs", 2).unwrap().apply(&mut stranger);
        let refused = Status::from(check_caller(&stranger, ours, true).unwrap_err());
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        assert!(!refused.message().contains(ours), "{}", refused.message());
    }
}
