//! Every decoder that a peer or a disk can reach, fed hostile bytes: the 11-byte request that
//! aborted a node, random bytes, and valid encodings with random damage. None may panic or
//! allocate more than [`super::decode`]'s limit allows.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::io::Cursor;

use bincode::error::DecodeError;
use openraft::Membership;
use openraft::alias::EntryOf;
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
use proptest::prelude::*;
use raft_log::codeq::Decode as _;

use super::*;
use crate::error::ProposeError;
use crate::network::codec;
use crate::network::peer::AdminError;
use crate::network::peer::AdminRequest;
use crate::network::peer::AdminResponse;
use crate::queue::Command;
use crate::queue::Response;
use crate::raft::snapshot;
use crate::raft::tests::format::fixture_dir;
use crate::raft::tests::format::fixture_entries;
use crate::raft::wal;
use crate::types::NodeInfo;
use crate::types::SnapshotData;
use crate::types::TypeConfig;

/// `(forwarded: bool, AdminRequest::AllocateNodeId { addr, .. })` whose `addr` claims `len`
/// bytes: the shape of the 11-byte request that aborted a node.
fn admin_request_claiming(len: u64) -> Vec<u8> {
    let mut bytes = vec![0, 1, 253];
    bytes.extend_from_slice(&len.to_le_bytes());
    bytes
}

#[test]
fn the_11_byte_admin_request_is_refused_before_allocating() {
    let attack = admin_request_claiming(1 << 40);
    assert_eq!(attack.len(), 11);
    // Without a limit this allocates 1 TiB and aborts the test process. `LimitExceeded` (not
    // `UnexpectedEnd`) says the claim was refused before the allocation.
    let err = decode::<(bool, AdminRequest)>(&attack).unwrap_err();
    assert!(matches!(err, DecodeError::LimitExceeded), "{err:?}");
    // Through the peer codec, which `RaftService` uses for every message.
    let err = codec::decode::<(bool, AdminRequest)>(&attack).unwrap_err();
    assert!(
        matches!(err, codec::CodecError::Decode(DecodeError::LimitExceeded)),
        "{err:?}"
    );
    // A fixed limit as large as the biggest message (1 GiB) would still let a few bytes
    // allocate that much; the limit follows the input instead.
    let err = decode::<(bool, AdminRequest)>(&admin_request_claiming(1 << 28)).unwrap_err();
    assert!(matches!(err, DecodeError::LimitExceeded), "{err:?}");
}

#[test]
fn a_legitimate_value_is_never_refused() {
    // The worst case claims the most per byte: many one-byte varints of a wide type.
    let ints: Vec<u64> = vec![7; 100_000];
    assert_eq!(decode::<Vec<u64>>(&encode(&ints).unwrap()).unwrap(), ints);
    let wide: Vec<u128> = vec![7; 100_000];
    assert_eq!(decode::<Vec<u128>>(&encode(&wide).unwrap()).unwrap(), wide);
    let text = "x".repeat(5 << 20);
    assert_eq!(decode::<String>(&encode(&text).unwrap()).unwrap(), text);
}

#[test]
fn trailing_bytes_are_refused() {
    let mut bytes = encode(&5u64).unwrap();
    bytes.push(0);
    assert!(decode::<u64>(&bytes).is_err());
    assert_eq!(decode_prefix::<u64>(&bytes).unwrap(), (5, 1));
}

#[test]
fn limit_steps_follow_the_input() {
    let limit_for = |len| STEPS[step(len)];
    assert_eq!(limit_for(0), 1 << 16);
    assert_eq!(limit_for(4096), 1 << 16);
    assert_eq!(limit_for(4097), 1 << 20);
    assert_eq!(limit_for(1 << 30), 1 << 36);
    assert_eq!(limit_for(usize::MAX), usize::MAX);
}

/// Decode `bytes` as every peer message (request, reply and error types).
fn every_peer_message(bytes: &[u8]) {
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
fn every_disk_format(bytes: &[u8]) {
    let _ = snapshot::decode(bytes);
    let _ = wal::valid_prefix(bytes);
    let _ = wal::Bin::<openraft::alias::EntryPayloadOf<TypeConfig>>::decode(Cursor::new(bytes));
    let _ = wal::Bin::<LogIdOf<TypeConfig>>::decode(Cursor::new(bytes));
    let _ = wal::Bin::<VoteOf<TypeConfig>>::decode(Cursor::new(bytes));
}

/// A valid AppendEntries of the fixture's entries (every command kind).
fn append_entries() -> Vec<u8> {
    let entries: Vec<EntryOf<TypeConfig>> = fixture_entries();
    let req = AppendEntriesRequest::<TypeConfig> {
        vote: VoteOf::<TypeConfig>::new(2, 1),
        prev_log_id: None,
        entries,
        leader_commit: None,
    };
    codec::encode(&req).unwrap()
}

fn snapshot_message() -> Vec<u8> {
    let bytes = std::fs::read(fixture_dir().join("snapshot/current.snap")).unwrap();
    let nodes = BTreeMap::from([(1u64, NodeInfo::default())]);
    let meta = SnapshotMetaOf::<TypeConfig> {
        last_log_id: None,
        last_membership: openraft::StoredMembership::new(
            None,
            Membership::new(vec![BTreeSet::from([1u64])], nodes).unwrap(),
        ),
    };
    codec::encode(&(VoteOf::<TypeConfig>::new(2, 1), meta, bytes)).unwrap()
}

/// Random damage to a valid encoding: overwrite, insert or delete bytes.
#[derive(Debug, Clone)]
enum Damage {
    Set(usize, u8),
    Insert(usize, u8),
    Delete(usize),
}

fn damage(mut bytes: Vec<u8>, damages: &[Damage]) -> Vec<u8> {
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

fn damages() -> impl Strategy<Value = Vec<Damage>> {
    let one = prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Damage::Set(at, b)),
        // Bytes that start long lengths and wide varints.
        (any::<usize>(), prop_oneof![Just(0xFFu8), Just(0xFD), Just(0xFC)])
            .prop_map(|(at, b)| Damage::Set(at, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Damage::Insert(at, b)),
        any::<usize>().prop_map(Damage::Delete),
    ];
    prop::collection::vec(one, 1..8)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        every_peer_message(&bytes);
        every_disk_format(&bytes);
    }

    #[test]
    fn damaged_peer_messages_never_panic(d in damages()) {
        every_peer_message(&damage(append_entries(), &d));
        every_peer_message(&damage(snapshot_message(), &d));
    }

    #[test]
    fn damaged_files_never_panic(d in damages(), fix_crc in any::<bool>()) {
        let wal_file = std::fs::read(crate::raft::wal::chunk_files(&fixture_dir().join("wal")).unwrap()[0].clone()).unwrap();
        every_disk_format(&damage(wal_file, &d));
        let mut snap = damage(std::fs::read(fixture_dir().join("snapshot/current.snap")).unwrap(), &d);
        if fix_crc && snap.len() >= snapshot::HEADER_LEN {
            // Past the checksum, so the body's decoder sees the damage.
            let crc = crc32fast::hash(&snap[snapshot::HEADER_LEN..]);
            snap[8..snapshot::HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
        }
        every_disk_format(&snap);
    }
}

#[test]
fn the_fuzzed_messages_are_valid_to_start_with() {
    // Otherwise the damage tests would only ever test the first byte.
    let req: AppendEntriesRequest<TypeConfig> = codec::decode(&append_entries()).unwrap();
    assert_eq!(req.entries, fixture_entries());
    let (_, _, data): (VoteOf<TypeConfig>, SnapshotMetaOf<TypeConfig>, SnapshotData) =
        codec::decode(&snapshot_message()).unwrap();
    snapshot::decode(&data).unwrap();
}
