//! One peer call, written once for openraft's RPCs and Flotilla's own: [`Peers`] (the
//! connector and the identity stamped on every call) opens a [`PeerChannel`] to one peer, and
//! [`PeerChannel::call`] encodes a request, sends it under a deadline, and decodes the reply or
//! the peer's error, shaping every failure into a [`PeerError`].
//!
//! Every call has a deadline: a partitioned peer never errors by itself (and under
//! simulation, never at all).

use std::sync::Arc;
use std::time::Duration;

use flotilla_proto::v1::RaftMessage;
use flotilla_proto::v1::raft_service_client::RaftServiceClient;
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::Channel;

use super::codec;
use super::headers;
use super::headers::Stamp;
use super::peer_auth::PeerAuth;
use super::snapshot_stream;
use super::transport::Connector;
use crate::config::MAX_GRPC_MESSAGE_BYTES;
use crate::types::NodeId;

/// How this node reaches its peers: the connector, and the identity and proof it stamps on
/// every call.
#[derive(Clone)]
pub struct Peers {
    connector: Arc<dyn Connector>,
    /// `None` only while a new node asks to join (it does not know its cluster yet): peers of
    /// a cluster refuse such calls, except the questions a joining node may ask.
    stamp: Option<Stamp>,
    /// This member's proof of membership (`None` while joining).
    auth: Option<Arc<dyn PeerAuth>>,
    /// A joining node's join token (`authorization: Bearer ..`).
    token: Option<headers::Bearer>,
    /// What each peer's replies said it reads; shared by every clone.
    formats: PeerFormats,
}

/// The newest log entry format each peer's build reads, as its latest reply said
/// ([`headers::ENTRY_FORMAT`]; 0: a reply without it, from a build before it).
#[derive(Clone, Debug, Default)]
pub struct PeerFormats(Arc<std::sync::Mutex<std::collections::BTreeMap<NodeId, u32>>>);

impl PeerFormats {
    fn record(&self, node: NodeId, format: u32) {
        let mut formats = self.0.lock().unwrap_or_else(|e| e.into_inner());
        formats.insert(node, format);
    }

    /// What `node`'s latest reply said it reads; `None` before any reply.
    pub fn get(&self, node: NodeId) -> Option<u32> {
        let formats = self.0.lock().unwrap_or_else(|e| e.into_inner());
        formats.get(&node).copied()
    }
}

impl Peers {
    /// Anonymous peers: calls carry no cluster or node id and no proof.
    pub fn new(connector: Arc<dyn Connector>) -> Self {
        Self {
            connector,
            stamp: None,
            auth: None,
            token: None,
            formats: PeerFormats::default(),
        }
    }

    /// The same peers, presenting `token` (a joining node's join token) on every call.
    pub fn with_token(&self, token: Option<&str>) -> Self {
        Self {
            token: token.and_then(headers::Bearer::new),
            ..self.clone()
        }
    }

    /// The same peers, stamping calls with this node's cluster and id and proving membership
    /// with `auth`.
    pub fn with_identity(&self, cluster_id: &str, node_id: NodeId, auth: Arc<dyn PeerAuth>) -> Self {
        Self {
            connector: self.connector.clone(),
            stamp: Stamp::new(cluster_id, node_id),
            auth: Some(auth),
            token: None,
            formats: self.formats.clone(),
        }
    }

    /// What each peer said it reads (every channel of these peers records into it).
    pub fn formats(&self) -> PeerFormats {
        self.formats.clone()
    }

    /// A channel to node `target` at `addr` (connected lazily).
    pub fn channel(&self, target: NodeId, addr: &str) -> PeerChannel {
        let client = self
            .connector
            .channel(addr)
            .map(|ch| {
                RaftServiceClient::new(ch)
                    .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES)
            })
            .map_err(Arc::new);
        PeerChannel {
            target,
            addr: addr.to_string(),
            stamp: self.stamp.clone(),
            auth: self.auth.clone(),
            token: self.token.clone(),
            formats: self.formats.clone(),
            client,
        }
    }
}

/// The failure of one peer call, before the caller shapes it into its own error type.
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

/// One method of `RaftService` (they all carry a `RaftMessage` each way).
pub type Rpc = fn(
    RaftServiceClient<Channel>,
    tonic::Request<RaftMessage>,
) -> BoxFuture<'static, Result<tonic::Response<RaftMessage>, tonic::Status>>;

/// A connection to one peer.
pub struct PeerChannel {
    target: NodeId,
    addr: String,
    stamp: Option<Stamp>,
    auth: Option<Arc<dyn PeerAuth>>,
    token: Option<headers::Bearer>,
    formats: PeerFormats,
    client: Result<RaftServiceClient<Channel>, Arc<tonic::transport::Error>>,
}

impl PeerChannel {
    /// The node this channel reaches.
    pub fn target(&self) -> NodeId {
        self.target
    }

    /// The peer's error for a failure it reported in its reply (`message`).
    pub fn remote(&self, message: String) -> PeerError {
        PeerError::Remote {
            target: self.target,
            addr: self.addr.clone(),
            message,
        }
    }

    /// One request/response: encode, call under `timeout`, decode `Ok` data or the remote error.
    pub async fn call<Req, Resp, Err>(
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
            Err(e) => return Err(self.remote(format!("bad address: {e}"))),
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
        self.stamp(request.metadata_mut());
        let reply = match tokio::time::timeout(timeout, rpc(client, request)).await {
            Err(_) => {
                return Err(PeerError::Timeout {
                    target,
                    addr,
                    timeout,
                });
            }
            Ok(Err(status)) => return Err(self.failed(status)),
            Ok(Ok(reply)) => {
                let format = headers::entry_format(reply.metadata()).unwrap_or(0);
                self.formats.record(target, format);
                reply.into_inner()
            }
        };
        self.decode_reply(reply)
    }

    /// A streamed snapshot (`InstallSnapshotStream`): `head`, then `body` in chunks of
    /// `chunk_bytes` (see [`snapshot_stream`]). No deadline covers the whole transfer, which
    /// may be long; instead each chunk must be taken by the transport within `progress` (it
    /// takes one only once the peer has read what fills HTTP/2's flow-control windows), and
    /// the reply must come within `reply_timeout` of the last chunk.
    pub async fn call_snapshot_stream<Resp, Err>(
        &self,
        head: &snapshot_stream::Head,
        body: bytes::Bytes,
        chunk_bytes: usize,
        progress: Duration,
        reply_timeout: Duration,
    ) -> Result<Result<Resp, Err>, PeerError>
    where
        Resp: DeserializeOwned,
        Err: DeserializeOwned,
    {
        let client = match &self.client {
            Ok(c) => c.clone(),
            Err(e) => return Err(self.remote(format!("bad address: {e}"))),
        };
        let head = codec::encode(head).map_err(|source| PeerError::Codec {
            target: self.target,
            addr: self.addr.clone(),
            source,
        })?;
        // Room for one message: a send returns once the transport took the one before it.
        let (tx, rx) = tokio::sync::mpsc::channel::<RaftMessage>(1);
        let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
        self.stamp(request.metadata_mut());
        let call = async move {
            let mut client = client;
            client.install_snapshot_stream(request).await
        };
        tokio::pin!(call);
        let chunks =
            std::iter::once(bytes::Bytes::from(head)).chain(snapshot_stream::chunks(body, chunk_bytes));
        let feed = async {
            for data in chunks {
                let msg = RaftMessage {
                    data,
                    error: Default::default(),
                };
                match tokio::time::timeout(progress, tx.send(msg)).await {
                    Err(_) => return Err(self.stalled(progress)),
                    // The call ended early (refused, or failed): its result says why.
                    Ok(Err(_)) => return Ok(()),
                    Ok(Ok(())) => {}
                }
            }
            Ok(())
        };
        let ended = tokio::select! {
            reply = &mut call => Some(reply),
            fed = feed => {
                fed?;
                None
            }
        };
        drop(tx);
        let reply = match ended {
            Some(reply) => reply,
            None => tokio::time::timeout(reply_timeout, call)
                .await
                .map_err(|_| self.stalled(reply_timeout))?,
        };
        self.decode_reply(reply.map_err(|status| self.failed(status))?.into_inner())
    }

    /// Who is calling, on every call of this channel: the cluster and node id, the proof of
    /// membership, and a joining node's token.
    fn stamp(&self, metadata: &mut tonic::metadata::MetadataMap) {
        if let Some(stamp) = &self.stamp {
            stamp.apply(metadata);
        }
        if let Some(auth) = &self.auth {
            auth.stamp(metadata);
        }
        if let Some(token) = &self.token {
            token.apply(metadata);
        }
    }

    fn stalled(&self, timeout: Duration) -> PeerError {
        PeerError::Timeout {
            target: self.target,
            addr: self.addr.clone(),
            timeout,
        }
    }

    /// A call the peer (or the transport) failed.
    fn failed(&self, status: tonic::Status) -> PeerError {
        let (target, addr) = (self.target, self.addr.clone());
        if status.code() == tonic::Code::Unavailable {
            PeerError::Unreachable {
                target,
                addr,
                source: status,
            }
        } else {
            PeerError::Call {
                target,
                addr,
                source: status,
            }
        }
    }

    /// The reply's `Ok` data, or the peer's own error.
    fn decode_reply<Resp, Err>(&self, reply: RaftMessage) -> Result<Result<Resp, Err>, PeerError>
    where
        Resp: DeserializeOwned,
        Err: DeserializeOwned,
    {
        let codec_err = |source| PeerError::Codec {
            target: self.target,
            addr: self.addr.clone(),
            source,
        };
        if !reply.error.is_empty() {
            return Ok(Err(codec::decode(&reply.error).map_err(codec_err)?));
        }
        Ok(Ok(codec::decode(&reply.data).map_err(codec_err)?))
    }
}
