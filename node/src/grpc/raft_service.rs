//! `flotilla.v1.RaftService`: peers only. Decodes openraft messages (bincode), hands them to
//! the local Raft, and encodes the reply or the error. Forwarded writes enter the local
//! proposer and are coalesced with this node's own traffic. A snapshot arrives in chunks
//! (`InstallSnapshotStream`, bounded by `--max-snapshot-bytes`) or, from a sender of an older
//! build, whole (`InstallSnapshot`).
//!
//! Who gets here was decided before the body was read (`auth.rs`): a proven member, or, on
//! `Admin` only, a caller with the join right, which may ask for a node id and nothing else.
//! After decoding, Raft messages are checked against what a member could legitimately send:
//!
//! - **Terms**: a message whose term is more than [`MAX_TERM_AHEAD`] beyond this node's, or at
//!   or above [`TERM_CEILING`], is refused and logged. Terms grow by one per election, and an
//!   election takes at least an election timeout (over 1 ms: `config.rs` keeps the heartbeat
//!   above 0 and below it): 2^32 elections are 49 days of back-to-back failed elections at
//!   1 ms each, far beyond any outage this node could have slept through, while one forged
//!   vote with a term near `u64::MAX` used to leave no term for any later election. The
//!   ceiling keeps 3/4 of the term space free whatever happens.
//! - **Votes** name their candidate: it must be the node that sent the call, and a vote that
//!   claims to be a leadership transfer (which bypasses the leader lease) must come from a
//!   voter of this cluster.

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

use super::auth::Caller;
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
use crate::types::NodeId;
use crate::types::SnapshotData;
use crate::types::TypeConfig;
use tracing::warn;

/// How far ahead of this node's term a message's term may be (see the module docs).
pub const MAX_TERM_AHEAD: u64 = 1 << 32;
/// No message may carry a term at or above this (see the module docs).
pub const TERM_CEILING: u64 = 1 << 62;

/// Whether `term` is credible for a node whose own term is `ours`.
pub fn term_is_credible(term: u64, ours: u64) -> bool {
    term < TERM_CEILING && term <= ours.saturating_add(MAX_TERM_AHEAD)
}

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

    /// Decode a call of a member of this cluster (as the auth layer found it, and as the call
    /// says itself): nothing else is decoded.
    fn decode<T: DeserializeOwned>(&self, req: Request<RaftMessage>) -> Result<T, PeerCallError> {
        self.check_member(&req)?;
        decode(req)
    }

    /// A call of a member of this cluster, as the auth layer found it and as the call says.
    fn check_member<M>(&self, req: &Request<M>) -> Result<(), PeerCallError> {
        if req.extensions().get::<Caller>() != Some(&Caller::Peer) {
            return Err(PeerCallError::NoClusterId);
        }
        check_caller(req.metadata(), self.admin.cluster_id())
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

    /// Whether `id` is a voter of this cluster now.
    fn is_voter(&self, id: u64) -> bool {
        self.raft
            .metrics()
            .borrow_watched()
            .membership_config
            .membership()
            .voter_ids()
            .any(|v| v == id)
    }

    /// Refuse (and log) a message whose term no member could have reached.
    fn check_term(&self, term: u64, what: &'static str, sender: Option<NodeId>) -> Result<(), PeerCallError> {
        let ours = self.raft.metrics().borrow_watched().current_term;
        if term_is_credible(term, ours) {
            return Ok(());
        }
        warn!(
            term,
            ours,
            what,
            ?sender,
            "refused a raft message with an incredible term"
        );
        Err(PeerCallError::TermTooFar { term, ours })
    }

    /// A vote's candidate is its sender; a leadership transfer comes from a voter.
    fn check_vote(&self, rpc: &VoteRequest<TypeConfig>, sender: Option<NodeId>) -> Result<(), PeerCallError> {
        let candidate = rpc.vote.leader_id.voted_for;
        self.check_term(rpc.vote.leader_id.term, "vote", sender)?;
        if sender != Some(candidate) {
            warn!(candidate, ?sender, "refused a vote request sent for another node");
            return Err(PeerCallError::NotTheCandidate {
                candidate,
                sender: sender.map_or_else(|| "<unknown>".into(), |s| s.to_string()),
            });
        }
        if rpc.leadership_transfer && !self.is_voter(candidate) {
            warn!(
                candidate,
                "refused a leadership transfer from a node that is not a voter"
            );
            return Err(PeerCallError::TransferFromNonVoter(candidate));
        }
        Ok(())
    }
}

/// Refuse calls from another cluster, or from no cluster.
fn check_caller(metadata: &MetadataMap, ours: &str) -> Result<(), PeerCallError> {
    match headers::cluster_id(metadata) {
        CallerCluster::Id(id) if id == ours => Ok(()),
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
    let mut response = Response::new(msg);
    // Tells the caller (the leader, mostly) which entries this build reads (`leader.rs`).
    headers::stamp_entry_format(response.metadata_mut());
    Ok(response)
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, PeerCallError> {
    codec::encode(v).map_err(PeerCallError::Encode)
}

#[tonic::async_trait]
impl RaftService for RaftApi {
    async fn append_entries(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let sender = headers::node_id(req.metadata());
        let rpc: AppendEntriesRequest<TypeConfig> = self.decode(req)?;
        tracing::debug!(target: crate::trace::TIMELINE, entries = rpc.entries.len(), committed = ?rpc.leader_commit.map(|l| l.index), "append entries received");
        self.check_term(rpc.vote.leader_id.term, "append entries", sender)?;
        reply(self.raft.append_entries(rpc).await)
    }

    async fn vote(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let sender = headers::node_id(req.metadata());
        let rpc: VoteRequest<TypeConfig> = self.decode(req)?;
        self.check_vote(&rpc, sender)?;
        reply(self.raft.vote(rpc).await)
    }

    async fn pre_vote(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let sender = headers::node_id(req.metadata());
        let rpc: VoteRequest<TypeConfig> = self.decode(req)?;
        self.check_vote(&rpc, sender)?;
        reply(self.raft.pre_vote(rpc).await)
    }

    async fn install_snapshot(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let sender = headers::node_id(req.metadata());
        let (vote, meta, data): (VoteOf<TypeConfig>, SnapshotMetaOf<TypeConfig>, SnapshotData) =
            self.decode(req)?;
        self.check_term(vote.leader_id.term, "install snapshot", sender)?;
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
        self.check_member(&req)?;
        let sender = headers::node_id(req.metadata());
        let (vote, snapshot) = snapshot_stream::receive(req.into_inner(), self.snapshot_limits)
            .await
            .map_err(PeerCallError::from)?;
        self.check_term(vote.leader_id.term, "install snapshot", sender)?;
        reply(self.raft.install_full_snapshot(vote, snapshot).await)
    }

    async fn transfer_leader(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let sender = headers::node_id(req.metadata());
        let rpc: TransferLeaderRequest<TypeConfig> = self.decode(req)?;
        self.check_term(rpc.from_leader().leader_id.term, "transfer leader", sender)?;
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
        // A member may ask anything. A node that is joining (it showed a join token, or it is
        // a local caller of an open node) does not know the cluster yet: it may ask for an id
        // (which brings the peer secret), and nothing else. No decision here means no layer
        // decided: treated as a stranger.
        let member = req.extensions().get::<Caller>() == Some(&Caller::Peer);
        if member {
            check_caller(req.metadata(), self.admin.cluster_id())?;
        }
        let (forwarded, admin): (bool, AdminRequest) = decode(req)?;
        if !member && (forwarded || !matches!(admin, AdminRequest::AllocateNodeId { .. })) {
            return Err(PeerCallError::JoinOnly.into());
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
        assert!(check_caller(&member, ours).is_ok());
        let anonymous = MetadataMap::new();
        assert!(matches!(
            check_caller(&anonymous, ours),
            Err(PeerCallError::NoClusterId)
        ));
        let mut stranger = MetadataMap::new();
        Stamp::new("theirs", 2).unwrap().apply(&mut stranger);
        let refused = Status::from(check_caller(&stranger, ours).unwrap_err());
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        assert!(!refused.message().contains(ours), "{}", refused.message());
    }

    #[test]
    fn terms_far_ahead_or_near_the_end_are_not_credible() {
        assert!(term_is_credible(1, 0));
        assert!(term_is_credible(MAX_TERM_AHEAD, 0));
        assert!(!term_is_credible(MAX_TERM_AHEAD + 1, 0));
        assert!(term_is_credible(5 + MAX_TERM_AHEAD, 5));
        // The forged vote of issue 14: u64::MAX - 1.
        assert!(!term_is_credible(u64::MAX - 1, 0));
        assert!(!term_is_credible(u64::MAX - 1, u64::MAX - 2));
        assert!(!term_is_credible(TERM_CEILING, TERM_CEILING - 1));
        assert!(term_is_credible(TERM_CEILING - 1, TERM_CEILING - 2));
    }
}
