//! Every decoder that a peer or a disk can reach, fed hostile bytes: the 11-byte request that
//! aborted a node, random bytes, and valid encodings with random damage. None may panic or
//! allocate more than [`super::decode`]'s limit allows.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use bincode::error::DecodeError;
use openraft::Membership;
use openraft::alias::EntryOf;
use openraft::alias::SnapshotMetaOf;
use openraft::alias::VoteOf;
use openraft::raft::AppendEntriesRequest;
use proptest::prelude::*;

use super::fuzz::Damage;
use super::fuzz::damaged;
use super::fuzz::disk as every_disk_format;
use super::fuzz::peer_message as every_peer_message;
use super::fuzz::protobuf_request as every_protobuf_request;
use super::*;
use crate::network::codec;
use crate::network::peer::AdminRequest;
use crate::raft::snapshot;
use crate::raft::tests::format::fixture_dir;
use crate::raft::tests::format::fixture_entries_v2;
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

/// A valid AppendEntries of the fixture's entries (every command kind, both entry formats).
fn append_entries() -> Vec<u8> {
    let entries: Vec<EntryOf<TypeConfig>> = fixture_entries_v2();
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

fn damages() -> impl Strategy<Value = Vec<Damage>> {
    prop::collection::vec(
        (any::<u8>(), any::<usize>(), any::<u8>()).prop_map(Damage::draw),
        1..8,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        every_peer_message(&bytes);
        every_disk_format(&bytes);
        every_protobuf_request(&bytes);
        super::fuzz::auth_headers(&bytes);
    }

    #[test]
    fn damaged_protobuf_requests_never_panic(d in damages()) {
        every_protobuf_request(&damaged(submit_request(), &d));
    }

    #[test]
    fn damaged_peer_messages_never_panic(d in damages()) {
        every_peer_message(&damaged(append_entries(), &d));
        every_peer_message(&damaged(snapshot_message(), &d));
    }

    #[test]
    fn damaged_files_never_panic(d in damages(), fix_crc in any::<bool>()) {
        let wal_file = std::fs::read(crate::raft::wal::chunk_files(&fixture_dir().join("wal")).unwrap()[0].clone()).unwrap();
        every_disk_format(&damaged(wal_file, &d));
        let mut snap = damaged(std::fs::read(fixture_dir().join("snapshot/current.snap")).unwrap(), &d);
        if fix_crc && snap.len() >= snapshot::HEADER_LEN {
            // Past the checksum, so the body's decoder sees the damage.
            let crc = crc32fast::hash(&snap[snapshot::HEADER_LEN..]);
            snap[8..snapshot::HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
        }
        every_disk_format(&snap);
    }
}

/// A valid `SubmitRequest` with every field set.
fn submit_request() -> Vec<u8> {
    use prost::Message;
    super::fuzz::full_submit().encode_to_vec()
}

#[test]
fn the_fuzzed_messages_are_valid_to_start_with() {
    use prost::Message;
    assert_eq!(
        flotilla_proto::v1::SubmitRequest::decode(&submit_request()[..])
            .unwrap()
            .tasks
            .len(),
        2
    );
    // Otherwise the damage tests would only ever test the first byte.
    let req: AppendEntriesRequest<TypeConfig> = codec::decode(&append_entries()).unwrap();
    assert_eq!(req.entries, fixture_entries_v2());
    let (_, _, data): (VoteOf<TypeConfig>, SnapshotMetaOf<TypeConfig>, SnapshotData) =
        codec::decode(&snapshot_message()).unwrap();
    snapshot::decode(&data).unwrap();
}
