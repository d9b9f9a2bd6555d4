//! openraft's network: [`NetworkFactory`] (`RaftNetworkFactory`) opens a [`RaftPeer`]
//! (`RaftNetworkV2`) per target over the peers-only `RaftService`. The call itself (deadline,
//! identity, encoding, errors) is [`super::call`]'s; this file only picks each RPC's deadline
//! and shapes failures into openraft's error types.

use std::future::Future;
use std::time::Duration;

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

use super::call::PeerChannel;
use super::call::PeerError;
use super::call::Peers;
use super::call::Rpc;
use crate::types::NodeId;
use crate::types::NodeInfo;
use crate::types::SnapshotData;
use crate::types::TypeConfig;

/// Floor of an AppendEntries deadline (see `append_entries`).
pub const MIN_APPEND_TIMEOUT: Duration = Duration::from_secs(2);

/// Opens one [`RaftPeer`] per target for openraft's replication streams.
#[derive(Clone)]
pub struct NetworkFactory {
    peers: Peers,
}

impl NetworkFactory {
    pub fn new(peers: Peers) -> Self {
        Self { peers }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = RaftPeer;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> RaftPeer {
        RaftPeer {
            channel: self.peers.channel(target, &node.addr),
        }
    }
}

/// openraft's connection to one peer.
pub struct RaftPeer {
    channel: PeerChannel,
}

/// An unreachable peer (openraft backs off from it) or any other network failure.
fn into_rpc(e: PeerError) -> RPCError<TypeConfig> {
    match e {
        e @ (PeerError::Unreachable { .. } | PeerError::Dial { .. }) => {
            RPCError::Unreachable(Unreachable::new(&e))
        }
        e => RPCError::Network(NetworkError::new(&e)),
    }
}

impl RaftPeer {
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
            .channel
            .call::<Req, Resp, RaftError<TypeConfig>>(rpc, req, timeout)
            .await
        {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(remote)) => Err(into_rpc(self.channel.remote(remote.to_string()))),
            Err(e) => Err(into_rpc(e)),
        }
    }
}

impl RaftNetworkV2<TypeConfig> for RaftPeer {
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
