//! openraft's network: [`NetworkFactory`] (`RaftNetworkFactory`) opens a [`RaftPeer`]
//! (`RaftNetworkV2`) per target over the peers-only `RaftService`. The call itself (deadline,
//! identity, encoding, errors) is [`super::call`]'s; this file only picks each RPC's deadline
//! and shapes failures into openraft's error types.
//!
//! A snapshot goes in chunks (`InstallSnapshotStream`, [`DEFAULT_SNAPSHOT_CHUNK_BYTES`] each),
//! each of which must make progress within a deadline, instead of in one message under one
//! deadline for the whole transfer (openraft's `install_snapshot_timeout`, 200 ms), which a large
//! snapshot never met. A peer of an older build answers `UNIMPLEMENTED`; it then gets the
//! snapshot whole (`InstallSnapshot`), as before, under a deadline that grows with the size.

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
use super::snapshot_stream::Head;
use crate::types::NodeId;
use crate::types::NodeInfo;
use crate::types::SnapshotData;
use crate::types::TypeConfig;

/// Floor of an AppendEntries deadline (see `append_entries`).
pub const MIN_APPEND_TIMEOUT: Duration = Duration::from_secs(2);

/// Bytes of snapshot per message of a streamed snapshot, unless set otherwise.
pub const DEFAULT_SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;
/// Floor of the deadline for each chunk of a streamed snapshot to be taken by the transport.
/// openraft's own snapshot timeout (200 ms) is for the whole transfer and would starve a WAN.
const SNAPSHOT_CHUNK_TIMEOUT: Duration = Duration::from_secs(5);

/// Deadline for the reply to a snapshot once its last byte is sent: the receiver decodes it,
/// writes and fsyncs it, and swaps its state. 10 s, plus 1 s per 16 MiB.
fn snapshot_reply_timeout(bytes: usize) -> Duration {
    Duration::from_secs(10 + (bytes as u64 >> 24))
}

/// Opens one [`RaftPeer`] per target for openraft's replication streams.
#[derive(Clone)]
pub struct NetworkFactory {
    peers: Peers,
    snapshot_chunk_bytes: usize,
}

impl NetworkFactory {
    pub fn new(peers: Peers) -> Self {
        Self {
            peers,
            snapshot_chunk_bytes: DEFAULT_SNAPSHOT_CHUNK_BYTES,
        }
    }

    /// Stream snapshots in messages of `bytes` (`--snapshot-chunk-bytes`).
    pub fn snapshot_chunk_bytes(mut self, bytes: usize) -> Self {
        self.snapshot_chunk_bytes = bytes.max(1);
        self
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = RaftPeer;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> RaftPeer {
        RaftPeer {
            channel: self.peers.channel(target, &node.addr),
            snapshot_chunk_bytes: self.snapshot_chunk_bytes,
            streams_snapshots: true,
        }
    }
}

/// openraft's connection to one peer.
pub struct RaftPeer {
    channel: PeerChannel,
    snapshot_chunk_bytes: usize,
    /// False once the peer answered that it does not serve streamed snapshots (an older build).
    streams_snapshots: bool,
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
        let size = snapshot.snapshot.len();
        let send = self.send_snapshot(vote, snapshot, option);
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            result = send => result.map_err(|e| match e {
                RPCError::Unreachable(u) => StreamingError::Unreachable(u),
                RPCError::Network(n) => StreamingError::Network(n),
                other => StreamingError::Network(NetworkError::new(&AnyError::error(format!(
                    "snapshot of {size} bytes: {other}"
                )))),
            }),
        }
    }
}

impl RaftPeer {
    /// Send a snapshot in chunks, with a deadline per chunk; to a peer of an older build
    /// (which does not serve the stream), whole, under a deadline that grows with its size.
    async fn send_snapshot(
        &mut self,
        vote: VoteOf<TypeConfig>,
        snapshot: SnapshotOf<TypeConfig, SnapshotData>,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, RPCError<TypeConfig>> {
        let size = snapshot.snapshot.len();
        let reply_timeout = snapshot_reply_timeout(size).max(option.hard_ttl());
        if self.streams_snapshots {
            let head: Head = (vote, snapshot.meta.clone(), size as u64);
            let body = bytes::Bytes::from(snapshot.snapshot);
            let progress = option.hard_ttl().max(SNAPSHOT_CHUNK_TIMEOUT);
            let sent = self
                .channel
                .call_snapshot_stream::<SnapshotResponse<TypeConfig>, RaftError<TypeConfig>>(
                    &head,
                    body.clone(),
                    self.snapshot_chunk_bytes,
                    progress,
                    reply_timeout,
                )
                .await;
            match sent {
                Err(PeerError::Call { source, .. }) if source.code() == tonic::Code::Unimplemented => {
                    tracing::warn!(
                        target = %self.channel.target(),
                        bytes = size,
                        "peer does not take streamed snapshots (an older build); sending it whole"
                    );
                    self.streams_snapshots = false;
                    let snapshot = SnapshotOf::<TypeConfig, SnapshotData> {
                        meta: snapshot.meta,
                        snapshot: body.to_vec(),
                    };
                    return self.send_whole(vote, snapshot, reply_timeout).await;
                }
                Ok(Ok(resp)) => return Ok(resp),
                Ok(Err(remote)) => return Err(into_rpc(self.channel.remote(remote.to_string()))),
                Err(e) => return Err(into_rpc(e)),
            }
        }
        self.send_whole(vote, snapshot, reply_timeout).await
    }

    /// The whole snapshot in one `InstallSnapshot` message (what builds before streaming take).
    async fn send_whole(
        &self,
        vote: VoteOf<TypeConfig>,
        snapshot: SnapshotOf<TypeConfig, SnapshotData>,
        timeout: Duration,
    ) -> Result<SnapshotResponse<TypeConfig>, RPCError<TypeConfig>> {
        let call: Rpc = |mut c, r| Box::pin(async move { c.install_snapshot(r).await });
        let req = (vote, snapshot.meta, snapshot.snapshot);
        self.raft_call(call, &req, timeout).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshots_reply_deadline_grows_with_its_size() {
        assert_eq!(snapshot_reply_timeout(0), Duration::from_secs(10));
        assert_eq!(snapshot_reply_timeout(156 << 20), Duration::from_secs(19));
    }
}
