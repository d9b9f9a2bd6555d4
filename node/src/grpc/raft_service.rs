//! `flotilla.v1.RaftService`: peers only. Decodes openraft messages (bincode), hands them to
//! the local Raft, and encodes the reply or the error. Forwarded writes enter the local
//! proposer and are coalesced with this node's own traffic.

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

use crate::cluster::Admin;
use crate::cluster::AdminRequest;
use crate::network::codec;
use crate::network::raft_network::CLUSTER_ID_HEADER;
use crate::network::raft_network::NODE_ID_HEADER;
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
}

impl RaftApi {
    pub fn new(raft: Raft, proposer: Proposer, admin: Admin) -> Self {
        Self {
            raft,
            proposer,
            admin,
        }
    }

    /// Refuse calls from another cluster (or from no cluster, unless `anonymous_ok`).
    fn check<T>(&self, req: &Request<T>, anonymous_ok: bool) -> Result<(), Status> {
        match req.metadata().get(CLUSTER_ID_HEADER).map(|v| v.to_str()) {
            Some(Ok(id)) if id == self.admin.cluster_id() => Ok(()),
            None if anonymous_ok => Ok(()),
            None => Err(Status::permission_denied("peer call without a cluster id")),
            Some(other) => Err(Status::permission_denied(format!(
                "peer call from cluster {:?}; this node is in cluster {}",
                other.unwrap_or("<not ascii>"),
                self.admin.cluster_id()
            ))),
        }
    }

    fn decode<T: DeserializeOwned>(&self, req: Request<RaftMessage>) -> Result<T, Status> {
        self.check(&req, false)?;
        decode(req)
    }
}

fn decode<T: DeserializeOwned>(req: Request<RaftMessage>) -> Result<T, Status> {
    codec::decode(&req.into_inner().data).map_err(|e| Status::invalid_argument(e.to_string()))
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

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, Status> {
    codec::encode(v).map_err(|e| Status::internal(e.to_string()))
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
        let snapshot = Snapshot { meta, snapshot: data };
        reply(self.raft.install_full_snapshot(vote, snapshot).await)
    }

    async fn transfer_leader(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc: TransferLeaderRequest<TypeConfig> = self.decode(req)?;
        reply(self.raft.handle_transfer_leader(rpc).await)
    }

    async fn forward(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        // A removed node may still believe it is a member: its writes are refused here.
        let sender = req
            .metadata()
            .get(NODE_ID_HEADER)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let is_member = sender.is_some_and(|id| {
            self.raft
                .metrics()
                .borrow_watched()
                .membership_config
                .membership()
                .get_node(&id)
                .is_some()
        });
        if !is_member {
            return Err(Status::permission_denied(format!(
                "node {} is not a member of this cluster; its writes are refused",
                sender.map_or("<unknown>".into(), |id| id.to_string())
            )));
        }
        let commands: Vec<Command> = self.decode(req)?;
        reply(self.proposer.propose_forwarded(commands).await)
    }

    async fn admin(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        // A node that is joining does not know the cluster yet: it may ask which cluster this
        // is and for an id, and nothing else.
        let anonymous = req.metadata().get(CLUSTER_ID_HEADER).is_none();
        self.check(&req, true)?;
        let (forwarded, admin): (bool, AdminRequest) = decode(req)?;
        if anonymous
            && !matches!(
                admin,
                AdminRequest::ClusterId | AdminRequest::AllocateNodeId { .. }
            )
        {
            return Err(Status::permission_denied("peer call without a cluster id"));
        }
        reply(self.admin.handle(admin, forwarded).await)
    }
}
