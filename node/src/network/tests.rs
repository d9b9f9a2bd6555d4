//! Snapshots over a real loopback connection to a stub peer whose receiving end is the node's
//! own ([`snapshot_stream::receive`]): sent in chunks to a peer of this build and whole to a
//! peer of an older build (which answers the stream with UNIMPLEMENTED); a transfer much longer
//! than any deadline goes through as long as each chunk moves; a peer that stops reading fails
//! the transfer; a receiver refuses a snapshot over its limit, cut short, or longer than
//! announced.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use flotilla_proto::v1::RaftMessage;
use flotilla_proto::v1::raft_service_client::RaftServiceClient;
use flotilla_proto::v1::raft_service_server::RaftService;
use flotilla_proto::v1::raft_service_server::RaftServiceServer;
use futures::StreamExt;
use openraft::RaftNetworkFactory;
use openraft::RaftNetworkV2;
use openraft::Vote;
use openraft::error::RaftError;
use openraft::error::ReplicationClosed;
use openraft::error::StreamingError;
use openraft::network::RPCOption;
use openraft::raft::SnapshotResponse;
use openraft::type_config::alias::SnapshotMetaOf;
use openraft::type_config::alias::SnapshotOf;
use openraft::type_config::alias::VoteOf;
use tokio::time::Instant;
use tonic::Code;
use tonic::Request;
use tonic::Response;
use tonic::Status;
use tonic::Streaming;

use super::NetworkFactory;
use super::PeerChannel;
use super::Peers;
use super::TcpConnector;
use super::call::PeerError;
use super::codec;
use super::snapshot_stream;
use super::snapshot_stream::Head;
use super::snapshot_stream::ReceiveLimits;
use crate::types::NodeInfo;
use crate::types::SnapshotData;
use crate::types::TypeConfig;

/// What the stub peer does with a streamed snapshot.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Take it as this build does, waiting `read_delay` before reading each message.
    Take { max_bytes: u64, read_delay: Duration },
    /// Answer UNIMPLEMENTED (a build before streaming).
    Unknown,
    /// Read the first message, then stop reading (a stuck peer).
    Stall,
}

/// Per snapshot received: how it came ("stream of N messages" or "whole") and its bytes.
type Received = Arc<Mutex<Vec<(String, SnapshotData)>>>;

#[derive(Clone)]
struct Stub {
    mode: Mode,
    received: Received,
}

fn answer() -> Result<Response<RaftMessage>, Status> {
    let resp = SnapshotResponse::<TypeConfig>::new(Vote::new(1, 1));
    Ok(Response::new(RaftMessage {
        data: codec::encode(&resp).unwrap().into(),
        error: Default::default(),
    }))
}

#[tonic::async_trait]
impl RaftService for Stub {
    async fn install_snapshot_stream(
        &self,
        req: Request<Streaming<RaftMessage>>,
    ) -> Result<Response<RaftMessage>, Status> {
        let (max_bytes, read_delay) = match self.mode {
            Mode::Unknown => return Err(Status::unimplemented("no such method")),
            Mode::Stall => {
                req.into_inner().message().await?;
                return std::future::pending().await;
            }
            Mode::Take {
                max_bytes,
                read_delay,
            } => (max_bytes, read_delay),
        };
        let messages = Arc::new(Mutex::new(0));
        let counted = Arc::clone(&messages);
        let slow = req.into_inner().then(move |message| {
            *counted.lock().unwrap() += 1;
            async move {
                tokio::time::sleep(read_delay).await;
                message
            }
        });
        let limits = ReceiveLimits {
            max_bytes,
            ..Default::default()
        };
        let (_, snapshot) = snapshot_stream::receive(Box::pin(slow), limits)
            .await
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let how = format!("stream of {} messages", messages.lock().unwrap());
        self.received.lock().unwrap().push((how, snapshot.snapshot));
        answer()
    }

    async fn install_snapshot(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let (_, _, data): (VoteOf<TypeConfig>, SnapshotMetaOf<TypeConfig>, SnapshotData) =
            codec::decode(&req.into_inner().data).unwrap();
        self.received.lock().unwrap().push(("whole".into(), data));
        answer()
    }

    async fn append_entries(&self, _: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn vote(&self, _: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn pre_vote(&self, _: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn transfer_leader(&self, _: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn forward(&self, _: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn admin(&self, _: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        Err(Status::unimplemented(""))
    }
}

/// Serve a stub on a loopback port; returns its address and what it received.
async fn serve(mode: Mode) -> (String, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let received = Received::default();
    let stub = Stub {
        mode,
        received: Arc::clone(&received),
    };
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(RaftServiceServer::new(stub))
            .serve_with_incoming(incoming),
    );
    (addr, received)
}

fn body(bytes: usize) -> SnapshotData {
    (0..bytes).map(|i| (i % 251) as u8).collect()
}

/// A member's peers (the stub checks no proof; any secret will do).
fn peers() -> Peers {
    let proof = Arc::new(super::peer_auth::SharedSecret::new("flt_test").expect("a valid secret"));
    Peers::new(Arc::new(TcpConnector::default())).with_identity("c", 1, proof)
}

fn channel(addr: &str) -> PeerChannel {
    peers().channel(2, addr)
}

/// Through openraft's network (`full_snapshot`) in chunks of 1000 bytes, with openraft's own
/// snapshot timeout (200 ms), which these transfers outlast.
async fn send_snapshot(addr: &str, bytes: usize) -> Result<(), String> {
    let peers = peers();
    let mut factory = NetworkFactory::new(peers).snapshot_chunk_bytes(1000);
    let node = NodeInfo {
        addr: addr.to_string(),
        zone: String::new(),
    };
    let mut peer = factory.new_client(2, &node).await;
    let snapshot = SnapshotOf::<TypeConfig, SnapshotData> {
        meta: Default::default(),
        snapshot: body(bytes),
    };
    let never_closed = std::future::pending::<ReplicationClosed>();
    let option = RPCOption::new(Duration::from_millis(200));
    let result = peer
        .full_snapshot(Vote::new(1, 1), snapshot, never_closed, option)
        .await;
    result
        .map(drop)
        .map_err(|e: StreamingError<TypeConfig>| e.to_string())
}

/// Straight through [`PeerChannel::call_snapshot_stream`], with the deadlines given.
async fn stream_snapshot(
    addr: &str,
    bytes: usize,
    chunk_bytes: usize,
    deadline: Duration,
) -> Result<SnapshotResponse<TypeConfig>, PeerError> {
    let head: Head = (Vote::new(1, 1), Default::default(), bytes as u64);
    let sent = channel(addr)
        .call_snapshot_stream::<SnapshotResponse<TypeConfig>, RaftError<TypeConfig>>(
            &head,
            body(bytes).into(),
            chunk_bytes,
            deadline,
            deadline,
        )
        .await?;
    Ok(sent.unwrap())
}

/// A reader slow enough that 12 messages take longer than openraft's 200 ms.
const SLOW: Mode = Mode::Take {
    max_bytes: u64::MAX,
    read_delay: Duration::from_millis(25),
};

#[tokio::test]
async fn a_snapshot_goes_in_chunks_to_this_build_and_whole_to_an_older_one() {
    let (addr, received) = serve(SLOW).await;
    let started = Instant::now();
    send_snapshot(&addr, 10_500).await.unwrap();
    // Longer than openraft's snapshot timeout: that is not the transfer's deadline any more.
    assert!(
        started.elapsed() > Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    let expected = vec![("stream of 12 messages".to_string(), body(10_500))];
    assert_eq!(*received.lock().unwrap(), expected);

    let (addr, received) = serve(Mode::Unknown).await;
    send_snapshot(&addr, 2_000).await.unwrap();
    assert_eq!(
        *received.lock().unwrap(),
        vec![("whole".to_string(), body(2_000))]
    );
}

#[tokio::test]
async fn a_long_transfer_goes_through_while_each_chunk_makes_progress() {
    // 60 ms per message read: 25 messages take about three times the deadline.
    let slower = Mode::Take {
        max_bytes: u64::MAX,
        read_delay: Duration::from_millis(60),
    };
    let (addr, received) = serve(slower).await;
    // 24 chunks of 512 KiB: far more than the HTTP/2 windows hold, so the sender waits on the
    // slow reader chunk by chunk, each time well within the deadline (with room for a loaded
    // machine), but the whole transfer takes longer than the deadline several times over.
    let deadline = Duration::from_millis(500);
    let started = Instant::now();
    stream_snapshot(&addr, 24 << 19, 1 << 19, deadline).await.unwrap();
    assert!(started.elapsed() > 2 * deadline, "{:?}", started.elapsed());
    let received = received.lock().unwrap();
    assert_eq!(received[0].0, "stream of 25 messages");
    assert!(received[0].1 == body(24 << 19));
}

#[tokio::test]
async fn a_peer_that_stops_reading_fails_the_transfer_instead_of_hanging() {
    let (addr, received) = serve(Mode::Stall).await;
    let deadline = Duration::from_millis(200);
    let started = Instant::now();
    // Far more than the HTTP/2 windows hold, so the sender must wait for the peer to read.
    let err = stream_snapshot(&addr, 32 << 20, 1 << 20, deadline)
        .await
        .unwrap_err();
    assert!(
        matches!(err, PeerError::Timeout { timeout, .. } if timeout == deadline),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(received.lock().unwrap().is_empty());
}

/// A raw stream: a head announcing `announced` bytes, then `sent` bytes in chunks of 10,000.
async fn raw_stream(addr: &str, announced: u64, sent: usize) -> Status {
    let mut client = RaftServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let head: Head = (Vote::new(1, 1), Default::default(), announced);
    let messages = std::iter::once(bytes::Bytes::from(codec::encode(&head).unwrap()))
        .chain(snapshot_stream::chunks(body(sent).into(), 10_000))
        .map(|data| RaftMessage {
            data,
            error: Default::default(),
        });
    client
        .install_snapshot_stream(tokio_stream::iter(messages))
        .await
        .unwrap_err()
}

#[tokio::test]
async fn a_receiver_refuses_a_snapshot_over_its_limit_cut_short_or_too_long() {
    let (addr, received) = serve(Mode::Take {
        max_bytes: 100_000,
        read_delay: Duration::ZERO,
    })
    .await;

    let err = stream_snapshot(&addr, 1 << 20, 64 << 10, Duration::from_secs(5)).await;
    let Err(PeerError::Call { source, .. }) = err else {
        panic!("{err:?}")
    };
    assert_eq!(source.code(), Code::InvalidArgument);
    assert!(
        source.message().contains("over this node's limit of 100000"),
        "{source}"
    );

    let cut_short = raw_stream(&addr, 50_000, 30_000).await;
    assert!(
        cut_short
            .message()
            .contains("announced 50000 bytes but carried 30000"),
        "{cut_short}"
    );
    // A head within the limit that lies: the receiver stops at the first chunk past it.
    let too_long = raw_stream(&addr, 50_000, 1 << 20).await;
    assert!(
        too_long
            .message()
            .contains("announced 50000 bytes but carried 60000"),
        "{too_long}"
    );

    assert!(received.lock().unwrap().is_empty());
}
