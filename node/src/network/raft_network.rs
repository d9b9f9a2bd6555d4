//! openraft's `RaftNetworkFactory`/`RaftNetworkV2` over the peers-only `RaftService`, plus the
//! write-forwarding call. Every RPC carries a deadline: a partitioned peer never errors by
//! itself (and under simulation, never at all).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use flotilla_proto::v1::RaftMessage;
use flotilla_proto::v1::raft_service_client::RaftServiceClient;
use openraft::AnyError;
use openraft::RaftNetworkFactory;
use openraft::RaftNetworkV2;
use openraft::error::NetworkError;
use openraft::error::RPCError;
use openraft::error::RaftError;
use openraft::error::ReplicationClosed;
use openraft::error::StreamingError;
use openraft::error::Unreachable;
use openraft::network::RPCOption;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::SnapshotResponse;
use openraft::raft::TransferLeaderRequest;
use openraft::raft::TransferLeaderResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use openraft::type_config::alias::SnapshotOf;
use openraft::type_config::alias::VoteOf;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::Channel;

use super::codec;
use super::transport::Connector;
use crate::cluster::AdminError;
use crate::cluster::AdminRequest;
use crate::cluster::AdminResponse;
use crate::config::MAX_GRPC_MESSAGE_BYTES;
use crate::error::ProposeError;
use crate::queue::Command;
use crate::queue::Response;
use crate::types::NodeId;
use crate::types::NodeInfo;
use crate::types::SnapshotData;
use crate::types::TypeConfig;

/// Deadline of a forwarded write (it waits for a commit, so longer than a heartbeat).
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline of adding a member: the leader waits for the new learner to catch up.
pub const ADD_MEMBER_TIMEOUT: Duration = Duration::from_secs(300);
/// Floor of an AppendEntries deadline (see `append_entries`).
pub const MIN_APPEND_TIMEOUT: Duration = Duration::from_secs(2);
/// gRPC metadata key naming the sender's cluster on every peer call.
pub const CLUSTER_ID_HEADER: &str = "flotilla-cluster-id";
/// gRPC metadata key naming the sending node on every peer call.
pub const NODE_ID_HEADER: &str = "flotilla-node-id";

/// Creates one [`PeerClient`] per target for openraft's replication streams.
#[derive(Clone)]
pub struct NetworkFactory {
    connector: Arc<dyn Connector>,
    /// Stamped on every call so peers of another cluster refuse it. `None` only while a new
    /// node asks to join (it does not know its cluster yet).
    cluster_id: Option<Arc<str>>,
    /// This node's id, stamped so a leader can refuse writes forwarded by non-members.
    node_id: Option<NodeId>,
}

impl NetworkFactory {
    pub fn new(connector: Arc<dyn Connector>) -> Self {
        Self {
            connector,
            cluster_id: None,
            node_id: None,
        }
    }

    /// The same network, stamping calls with this node's cluster and id.
    pub fn with_identity(&self, cluster_id: &str, node_id: NodeId) -> Self {
        Self {
            connector: self.connector.clone(),
            cluster_id: Some(cluster_id.into()),
            node_id: Some(node_id),
        }
    }

    /// A client for `addr`, for forwarding writes and admin requests.
    pub fn client(&self, target: NodeId, addr: &str) -> PeerClient {
        let stamp = self
            .cluster_id
            .as_ref()
            .and_then(|c| c.parse().ok())
            .map(|c| (c, self.node_id.unwrap_or(0)));
        PeerClient::new(self.connector.as_ref(), stamp, target, addr)
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> PeerClient {
        self.client(target, &node.addr)
    }
}

/// The failure of one peer RPC, before it is shaped into openraft's error types.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("node {target} at {addr} is unreachable: {source}")]
    Unreachable {
        target: NodeId,
        addr: String,
        source: tonic::Status,
    },
    #[error("node {target} at {addr} failed the call: {source}")]
    Call {
        target: NodeId,
        addr: String,
        source: tonic::Status,
    },
    #[error("node {target} at {addr} did not answer within {timeout:?}")]
    Timeout {
        target: NodeId,
        addr: String,
        timeout: Duration,
    },
    #[error("node {target} at {addr}: {source}")]
    Codec {
        target: NodeId,
        addr: String,
        source: codec::CodecError,
    },
    #[error("node {target} at {addr} could not be dialled: {source}")]
    Dial {
        target: NodeId,
        addr: String,
        source: tonic::transport::Error,
    },
    #[error("node {target} at {addr} returned an error: {message}")]
    Remote {
        target: NodeId,
        addr: String,
        message: String,
    },
}

impl PeerError {
    fn into_rpc(self) -> RPCError<TypeConfig> {
        match self {
            e @ (PeerError::Unreachable { .. } | PeerError::Dial { .. }) => {
                RPCError::Unreachable(Unreachable::new(&e))
            }
            e => RPCError::Network(NetworkError::new(&e)),
        }
    }
}

/// A connection to one peer.
pub struct PeerClient {
    target: NodeId,
    addr: String,
    /// The sender's cluster id (as metadata) and node id.
    stamp: Option<(tonic::metadata::MetadataValue<tonic::metadata::Ascii>, NodeId)>,
    client: Result<RaftServiceClient<Channel>, Arc<tonic::transport::Error>>,
}

type Rpc = fn(
    RaftServiceClient<Channel>,
    tonic::Request<RaftMessage>,
) -> futures::future::BoxFuture<'static, Result<tonic::Response<RaftMessage>, tonic::Status>>;

impl PeerClient {
    fn new(
        connector: &dyn Connector,
        stamp: Option<(tonic::metadata::MetadataValue<tonic::metadata::Ascii>, NodeId)>,
        target: NodeId,
        addr: &str,
    ) -> Self {
        let client = connector
            .channel(addr)
            .map(|ch| {
                RaftServiceClient::new(ch)
                    .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES)
            })
            .map_err(Arc::new);

        Self {
            target,
            addr: addr.to_string(),
            stamp,
            client,
        }
    }

    /// One request/response: encode, call under `timeout`, decode `Ok` data or the remote error.
    async fn call<Req, Resp, Err>(
        &self,
        rpc: Rpc,
        req: &Req,
        timeout: Duration,
    ) -> Result<Result<Resp, Err>, PeerError>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        Err: DeserializeOwned,
    {
        let (target, addr) = (self.target, self.addr.clone());
        let client = match &self.client {
            Ok(c) => c.clone(),
            Err(e) => {
                return Err(PeerError::Remote {
                    target,
                    addr,
                    message: format!("bad address: {e}"),
                });
            }
        };
        let data = codec::encode(req).map_err(|source| PeerError::Codec {
            target,
            addr: addr.clone(),
            source,
        })?;
        let mut request = tonic::Request::new(RaftMessage {
            data: data.into(),
            error: Default::default(),
        });
        request.set_timeout(timeout);
        if let Some((cluster, node)) = &self.stamp {
            request.metadata_mut().insert(CLUSTER_ID_HEADER, cluster.clone());
            request
                .metadata_mut()
                .insert(NODE_ID_HEADER, tonic::metadata::MetadataValue::from(*node));
        }
        let reply = match tokio::time::timeout(timeout, rpc(client, request)).await {
            Err(_) => {
                return Err(PeerError::Timeout {
                    target,
                    addr,
                    timeout,
                });
            }
            Ok(Err(status)) if status.code() == tonic::Code::Unavailable => {
                return Err(PeerError::Unreachable {
                    target,
                    addr,
                    source: status,
                });
            }
            Ok(Err(status)) => {
                return Err(PeerError::Call {
                    target,
                    addr,
                    source: status,
                });
            }
            Ok(Ok(reply)) => reply.into_inner(),
        };
        if !reply.error.is_empty() {
            let err: Err =
                codec::decode(&reply.error).map_err(|source| PeerError::Codec { target, addr, source })?;
            return Ok(Err(err));
        }
        let resp: Resp =
            codec::decode(&reply.data).map_err(|source| PeerError::Codec { target, addr, source })?;
        Ok(Ok(resp))
    }

    async fn raft_call<Req, Resp>(
        &self,
        rpc: Rpc,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, RPCError<TypeConfig>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
    {
        match self
            .call::<Req, Resp, RaftError<TypeConfig>>(rpc, req, timeout)
            .await
        {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(remote)) => Err(PeerError::Remote {
                target: self.target,
                addr: self.addr.clone(),
                message: remote.to_string(),
            }
            .into_rpc()),
            Err(e) => Err(e.into_rpc()),
        }
    }

    /// Forward a batch of commands to this peer (the leader) to propose there.
    pub async fn forward(&self, commands: &[Command]) -> Result<Vec<Response>, ProposeError> {
        let rpc: Rpc = |mut c, r| Box::pin(async move { c.forward(r).await });
        match self
            .call::<_, Vec<Response>, ProposeError>(rpc, &commands, FORWARD_TIMEOUT)
            .await
        {
            Ok(result) => result,
            Err(PeerError::Call { source, .. }) if source.code() == tonic::Code::PermissionDenied => {
                Err(ProposeError::NotAMember)
            }
            Err(e) => Err(ProposeError::Forward(e.to_string())),
        }
    }
}

impl PeerClient {
    /// Send an admin request to this peer (which forwards it to its leader unless `forwarded`).
    pub async fn admin(&self, req: &AdminRequest, forwarded: bool) -> Result<AdminResponse, AdminError> {
        let rpc: Rpc = |mut c, r| Box::pin(async move { c.admin(r).await });
        let timeout = if matches!(req, AdminRequest::AddMember { .. }) {
            ADD_MEMBER_TIMEOUT
        } else {
            FORWARD_TIMEOUT
        };
        match self
            .call::<_, AdminResponse, AdminError>(rpc, &(forwarded, req), timeout)
            .await
        {
            Ok(result) => result,
            Err(e) => Err(AdminError::Forward(e.to_string())),
        }
    }
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let call: Rpc = |mut c, r| Box::pin(async move { c.append_entries(r).await });
        // openraft's deadline is the heartbeat interval, but an append includes the follower's
        // fsync: under load that takes longer, and each timeout costs a resend and a backoff.
        self.raft_call(call, &rpc, option.hard_ttl().max(MIN_APPEND_TIMEOUT))
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let call: Rpc = |mut c, r| Box::pin(async move { c.vote(r).await });
        self.raft_call(call, &rpc, option.hard_ttl()).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let call: Rpc = |mut c, r| Box::pin(async move { c.pre_vote(r).await });
        self.raft_call(call, &rpc, option.hard_ttl()).await
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        let call: Rpc = |mut c, r| Box::pin(async move { c.transfer_leader(r).await });
        self.raft_call(call, &req, option.hard_ttl().max(MIN_APPEND_TIMEOUT))
            .await
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<TypeConfig>,
        snapshot: SnapshotOf<TypeConfig, SnapshotData>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let call: Rpc = |mut c, r| Box::pin(async move { c.install_snapshot(r).await });
        let req = (vote, snapshot.meta, snapshot.snapshot);
        // A whole snapshot in one message; the deadline scales with openraft's snapshot timeout.
        let send = self.raft_call::<_, SnapshotResponse<TypeConfig>>(call, &req, option.hard_ttl());
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            result = send => result.map_err(|e| match e {
                RPCError::Unreachable(u) => StreamingError::Unreachable(u),
                RPCError::Network(n) => StreamingError::Network(n),
                other => StreamingError::Network(NetworkError::new(&AnyError::error(other.to_string()))),
            }),
        }
    }
}
