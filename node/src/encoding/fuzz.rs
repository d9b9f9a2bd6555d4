//! Every decoder that a stranger or a disk can reach, one function per kind of input, for the
//! fuzz tests: `encoding/tests.rs` runs them briefly with the unit tests, `node/tests/fuzz.rs`
//! runs them under an allocation cap (and for as long as asked: docs/TESTING.md, "Fuzzing").
//! A target only decodes and drops: it fails by panicking, or by allocating more than
//! [`allocation_budget`].
//!
//! - [`peer_message`]: every `RaftService` payload (requests, replies, errors), bincode.
//! - [`disk`]: a snapshot file, a WAL chunk, each WAL record field.
//! - [`protobuf_request`]: the request message of every RPC of every service (prost).
//! - [`auth_headers`]: what the auth layer reads of a call before its body (bearer token,
//!   cluster id, peer secret).
//! - [`Damage`], [`damaged`], [`full_submit`]: random damage to valid encodings, and a seed,
//!   for the tests' inputs.

use std::io::Cursor;

use flotilla_proto::v1 as pb;
use openraft::alias::LogIdOf;
use openraft::alias::SnapshotMetaOf;
use openraft::alias::VoteOf;
use openraft::error::Fatal;
use openraft::error::RaftError;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::SnapshotResponse;
use openraft::raft::TransferLeaderRequest;
use openraft::raft::TransferLeaderResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use prost::Message;
use raft_log::codeq::Decode as _;
use tonic::codegen::http::HeaderMap;
use tonic::codegen::http::HeaderValue;

use crate::error::ProposeError;
use crate::network::codec;
use crate::network::headers;
use crate::network::peer::AdminError;
use crate::network::peer::AdminRequest;
use crate::network::peer::AdminResponse;
use crate::network::peer_auth::PEER_SECRET;
use crate::network::peer_auth::PeerAuth;
use crate::network::peer_auth::SharedSecret;
use crate::queue::Command;
use crate::queue::Response;
use crate::raft::snapshot;
use crate::raft::wal;
use crate::types::SnapshotData;
use crate::types::TypeConfig;

/// A fuzz target: decode these bytes, every way its kind of input can be read.
pub type Target = fn(&[u8]);

/// The targets, by name.
pub const TARGETS: [(&str, Target); 4] = [
    ("peer_message", peer_message),
    ("disk", disk),
    ("protobuf_request", protobuf_request),
    ("auth_headers", auth_headers),
];

/// What serde may preallocate beyond [`super::decode`]'s limit: up to 1 MiB per sequence being
/// decoded (`serde::de::size_hint::cautious`), and our messages nest fewer than 8 sequences.
pub const SEQUENCE_PREALLOCATION: usize = 8 << 20;

/// Most a target may allocate at once for an input of `len` bytes: the decode limit that
/// follows the input, plus serde's preallocation of open sequences.
pub fn allocation_budget(len: usize) -> usize {
    super::limit_for(len).saturating_add(SEQUENCE_PREALLOCATION)
}

/// Decode `bytes` as every peer message (request, reply and error types).
pub fn peer_message(bytes: &[u8]) {
    macro_rules! each {
        ($($t:ty),* $(,)?) => { $( let _ = codec::decode::<$t>(bytes); )* };
    }
    each!(
        AppendEntriesRequest<TypeConfig>,
        AppendEntriesResponse<TypeConfig>,
        VoteRequest<TypeConfig>,
        VoteResponse<TypeConfig>,
        (VoteOf<TypeConfig>, SnapshotMetaOf<TypeConfig>, SnapshotData),
        SnapshotResponse<TypeConfig>,
        TransferLeaderRequest<TypeConfig>,
        TransferLeaderResponse<TypeConfig>,
        RaftError<TypeConfig>,
        Fatal<TypeConfig>,
        Vec<Command>,
        Vec<Response>,
        ProposeError,
        (bool, AdminRequest),
        AdminResponse,
        AdminError,
    );
}

/// Decode `bytes` as everything read from disk: a snapshot, a WAL chunk, each WAL field.
pub fn disk(bytes: &[u8]) {
    let _ = snapshot::decode(bytes);
    let _ = wal::valid_prefix(bytes);
    let _ = wal::Bin::<openraft::alias::EntryPayloadOf<TypeConfig>>::decode(Cursor::new(bytes));
    let _ = wal::Bin::<LogIdOf<TypeConfig>>::decode(Cursor::new(bytes));
    let _ = wal::Bin::<VoteOf<TypeConfig>>::decode(Cursor::new(bytes));
}

/// Decode `bytes` as the request of every RPC.
pub fn protobuf_request(bytes: &[u8]) {
    macro_rules! each {
        ($($t:ty),* $(,)?) => { $( let _ = <$t>::decode(bytes); )* };
    }
    each!(
        pb::SubmitRequest,
        pb::GetTaskRequest,
        pb::WaitResultsRequest,
        pb::CancelRequest,
        pb::QueueStatsRequest,
        pb::ClusterStatusRequest,
        pb::RemoveNodeRequest,
        pb::CreateTokenRequest,
        pb::ListTokensRequest,
        pb::RevokeTokenRequest,
        pb::ListTaskNamesRequest,
        pb::DeclareTaskNamesRequest,
        pb::WorkerMessage,
        pb::RaftMessage,
    );
}

/// Read `bytes` as the headers the auth layer looks at.
pub fn auth_headers(bytes: &[u8]) {
    let Ok(value) = HeaderValue::from_bytes(bytes) else {
        return;
    };
    let mut map = HeaderMap::new();
    map.insert(headers::AUTHORIZATION, value.clone());
    map.insert(headers::CLUSTER_ID, value.clone());
    map.insert(PEER_SECRET, value);
    let _ = headers::bearer_token(&map);
    let _ = headers::cluster_id_of(&map);
    if let Ok(secret) = SharedSecret::new("flt_fuzz_secret_0123456789abcdef") {
        let _ = secret.verify(&map, &Default::default());
    }
}

/// One random change to a valid encoding, drawn from three numbers (so a test's strategy is
/// one line: `(any::<u8>(), any::<usize>(), any::<u8>()).prop_map(Damage::draw)`).
#[derive(Clone, Copy, Debug)]
pub enum Damage {
    Set(usize, u8),
    Insert(usize, u8),
    Delete(usize),
}

impl Damage {
    /// `kind` picks the change; one kind in four writes a byte that starts a long length or a
    /// wide varint (`0xFF`, `0xFD`, `0xFC`, `0xFB`), the bytes that make decoders allocate.
    pub fn draw((kind, at, byte): (u8, usize, u8)) -> Self {
        const WIDE: [u8; 4] = [0xFF, 0xFD, 0xFC, 0xFB];
        match kind % 4 {
            0 => Damage::Set(at, byte),
            1 => Damage::Set(at, WIDE[usize::from(byte % 4)]),
            2 => Damage::Insert(at, byte),
            _ => Damage::Delete(at),
        }
    }
}

/// `bytes` with `damages` applied in order (positions wrap around the current length).
pub fn damaged(mut bytes: Vec<u8>, damages: &[Damage]) -> Vec<u8> {
    for d in damages {
        let len = bytes.len().max(1);
        match *d {
            Damage::Set(at, b) if !bytes.is_empty() => bytes[at % len] = b,
            Damage::Insert(at, b) => bytes.insert(at % (bytes.len() + 1), b),
            Damage::Delete(at) if !bytes.is_empty() => {
                bytes.remove(at % len);
            }
            _ => {}
        }
    }
    bytes
}

/// A valid `SubmitRequest` with every field set: a seed for damage.
pub fn full_submit() -> pb::SubmitRequest {
    let task = pb::TaskSpec {
        name: "email.send".into(),
        queue: "q".into(),
        args: b"{\"to\":\"a@example.com\"}".to_vec().into(),
        priority: 5,
        eta_unix_ms: 1,
        countdown_ms: 2,
        max_retries: 3,
        retry_backoff_ms: 4,
        time_limit_ms: 5,
        idempotency_key: "k".into(),
        result_ttl_ms: 6,
        headers: [("traceparent".to_string(), "00-01".to_string())].into(),
        concurrency_key: "tenant-1".into(),
    };
    pb::SubmitRequest {
        tasks: vec![task.clone(), task],
    }
}
