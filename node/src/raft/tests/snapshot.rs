//! Snapshot round trips: build, install elsewhere, persist, reload; refusal of foreign formats.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::sync::Arc;

use openraft::EntryPayload;
use openraft::Membership;
use openraft::RaftSnapshotBuilder;
use openraft::alias::EntryOf;
use openraft::alias::StoredMembershipOf;
use openraft::entry::RaftEntry;
use openraft::storage::RaftStateMachine;

use super::entries;
use super::lid;
use crate::raft::error::StorageError;
use crate::raft::snapshot;
use crate::raft::state_machine::StateMachineStore;
use crate::replica::Replica;
use crate::types::NodeInfo;
use crate::types::TypeConfig;

fn state_bytes(replica: &Replica) -> Vec<u8> {
    replica.read(|q| bincode::serde::encode_to_vec(q, bincode::config::standard()).unwrap())
}

fn membership_entry(index: u64) -> EntryOf<TypeConfig> {
    let voters = BTreeSet::from([1u64]);
    let nodes = std::collections::BTreeMap::from([(
        1u64,
        NodeInfo {
            addr: "127.0.0.1:1".into(),
            zone: "a".into(),
        },
    )]);
    let m = Membership::new(vec![voters], nodes).unwrap();
    EntryOf::<TypeConfig>::new(lid(1, index), EntryPayload::Membership(m))
}

async fn apply(sm: &mut StateMachineStore, entries: Vec<EntryOf<TypeConfig>>) {
    sm.apply(futures::stream::iter(entries.into_iter().map(|e| Ok((e, None)))))
        .await
        .unwrap();
}

fn open(dir: &Path) -> (Arc<Replica>, StateMachineStore) {
    let replica = Arc::new(Replica::default());
    let sm = StateMachineStore::open(dir, replica.clone()).unwrap();
    (replica, sm)
}

/// A leader state machine with a membership and some applied entries.
async fn leader(dir: &Path) -> (Arc<Replica>, StateMachineStore) {
    let (replica, mut sm) = open(dir);
    let mut es = vec![membership_entry(1)];
    es.extend(entries(2, 9));
    apply(&mut sm, es).await;
    assert_ne!(
        state_bytes(&replica),
        state_bytes(&Replica::default()),
        "the state moved"
    );
    (replica, sm)
}

#[tokio::test]
async fn build_then_install_elsewhere_gives_the_same_state() {
    let (dir_l, dir_f) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (replica_l, mut sm_l) = leader(dir_l.path()).await;

    let snap = sm_l.get_snapshot_builder().await.build_snapshot().await.unwrap();
    assert_eq!(snap.meta.last_log_id, Some(lid(1, 9)));
    assert_eq!(snap.meta.last_membership.log_id(), &Some(lid(1, 1)));
    assert_eq!(&snap.snapshot[..4], b"FLQS");
    // Built snapshots are persisted and served as the current one.
    let cur = sm_l
        .get_current_snapshot()
        .await
        .unwrap()
        .expect("current snapshot");
    assert_eq!((&cur.meta, &cur.snapshot), (&snap.meta, &snap.snapshot));

    let (replica_f, mut sm_f) = open(dir_f.path());
    sm_f.install_snapshot(&snap.meta, snap.snapshot.clone())
        .await
        .unwrap();
    assert_eq!(state_bytes(&replica_f), state_bytes(&replica_l));
    assert_eq!(
        sm_f.applied_state().await.unwrap(),
        sm_l.applied_state().await.unwrap()
    );
    assert_eq!(
        sm_f.get_current_snapshot().await.unwrap().unwrap().snapshot,
        snap.snapshot
    );

    // The installed snapshot is durable: a fresh process loads it.
    drop(sm_f);
    let (replica_f2, mut sm_f2) = open(dir_f.path());
    assert_eq!(state_bytes(&replica_f2), state_bytes(&replica_l));
    assert_eq!(sm_f2.applied_state().await.unwrap().0, Some(lid(1, 9)));
}

#[tokio::test]
async fn snapshot_builder_is_a_consistent_view() {
    let dir = tempfile::tempdir().unwrap();
    let (replica, mut sm) = leader(dir.path()).await;
    let before = state_bytes(&replica);
    let mut builder = sm.get_snapshot_builder().await;
    // Entries applied after the builder was taken are not in its snapshot.
    apply(&mut sm, entries(10, 12)).await;
    assert_ne!(state_bytes(&replica), before);
    let snap = builder.build_snapshot().await.unwrap();
    assert_eq!(snap.meta.last_log_id, Some(lid(1, 9)));
    let image = snapshot::decode(&snap.snapshot).unwrap();
    assert_eq!(
        bincode::serde::encode_to_vec(&image.state, bincode::config::standard()).unwrap(),
        before
    );
}

#[tokio::test]
async fn unknown_format_version_is_refused() {
    let (dir_l, dir_f) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_, mut sm_l) = leader(dir_l.path()).await;
    let snap = sm_l.get_snapshot_builder().await.build_snapshot().await.unwrap();
    // A version from a newer build.
    let newer = snapshot::FORMAT_VERSION + 1;
    let mut v3 = snap.snapshot.clone();
    v3[4..8].copy_from_slice(&newer.to_le_bytes());

    let (replica_f, mut sm_f) = open(dir_f.path());
    let err = sm_f.install_snapshot(&snap.meta, v3.clone()).await.unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "unsupported snapshot format version {newer}; this build reads version {}",
            snapshot::FORMAT_VERSION
        )),
        "{err}"
    );
    assert_eq!(
        state_bytes(&replica_f),
        state_bytes(&Replica::default()),
        "state untouched"
    );
    assert!(
        sm_f.get_current_snapshot().await.unwrap().is_none(),
        "nothing persisted"
    );

    // The same file found on disk at start is a clear error naming it.
    let path = sm_f.snapshot_path();
    drop(sm_f);
    fs::write(&path, &v3).unwrap();
    match StateMachineStore::open(dir_f.path(), Arc::new(Replica::default())) {
        Err(e @ StorageError::SnapshotFile { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&path.display().to_string()) && msg.contains(&format!("version {newer}")),
                "{msg}"
            );
        }
        Err(other) => panic!("expected SnapshotFile, got {other:?}"),
        Ok(_) => panic!("opened a snapshot of an unknown version"),
    }
}

#[tokio::test]
async fn damaged_or_foreign_snapshots_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut sm) = leader(dir.path()).await;
    let snap = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();

    let mut flipped = snap.snapshot.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert!(matches!(
        snapshot::decode(&flipped),
        Err(crate::raft::error::SnapshotFormatError::Checksum { .. })
    ));
    assert!(matches!(
        snapshot::decode(&snap.snapshot[..snap.snapshot.len() - 3]),
        Err(crate::raft::error::SnapshotFormatError::Checksum { .. })
    ));
    assert!(matches!(
        snapshot::decode(b"{\"json\": true}"),
        Err(crate::raft::error::SnapshotFormatError::BadMagic { .. })
    ));

    // Metadata that disagrees with the contents is refused too.
    let mut meta = snap.meta.clone();
    meta.last_log_id = Some(lid(1, 100));
    let err = sm
        .install_snapshot(&meta, snap.snapshot.clone())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
    meta.last_log_id = snap.meta.last_log_id;
    meta.last_membership = StoredMembershipOf::<TypeConfig>::default();
    assert!(sm.install_snapshot(&meta, snap.snapshot.clone()).await.is_err());
}

#[tokio::test]
async fn an_older_build_does_not_replace_a_newer_install() {
    let (dir_l, dir_f) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_, mut sm_l) = leader(dir_l.path()).await;
    let newer = sm_l.get_snapshot_builder().await.build_snapshot().await.unwrap();

    let (_, mut sm_f) = open(dir_f.path());
    apply(&mut sm_f, vec![membership_entry(1)]).await;
    let mut old_builder = sm_f.get_snapshot_builder().await;
    sm_f.install_snapshot(&newer.meta, newer.snapshot.clone())
        .await
        .unwrap();
    old_builder.build_snapshot().await.unwrap();
    let cur = sm_f.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(cur.meta, newer.meta);
}

/// A snapshot written by a build of format version 1 (before the dense task table) still loads:
/// nodes can be upgraded over their data, and take an old leader's snapshot.
#[tokio::test]
async fn format_version_1_is_read_and_converted() {
    let (dir_l, dir_f) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (replica_l, mut sm_l) = leader(dir_l.path()).await;
    let snap = sm_l.get_snapshot_builder().await.build_snapshot().await.unwrap();
    let image = snapshot::decode(&snap.snapshot).unwrap();

    #[derive(serde::Serialize)]
    struct ImageV1<'a> {
        last_applied: &'a Option<openraft::alias::LogIdOf<TypeConfig>>,
        last_membership: &'a StoredMembershipOf<TypeConfig>,
        state: crate::queue::QueueStateV1,
    }
    let body = bincode::serde::encode_to_vec(
        ImageV1 {
            last_applied: &image.last_applied,
            last_membership: &image.last_membership,
            state: crate::queue::state::downgrade_to_v1(&image.state),
        },
        bincode::config::standard(),
    )
    .unwrap();
    let mut v1 = Vec::from(snapshot::MAGIC);
    v1.extend_from_slice(&1u32.to_le_bytes());
    v1.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    v1.extend_from_slice(&body);
    assert_eq!(snapshot::decode(&v1).unwrap(), image);

    let (replica_f, mut sm_f) = open(dir_f.path());
    sm_f.install_snapshot(&snap.meta, v1).await.unwrap();
    assert_eq!(state_bytes(&replica_f), state_bytes(&replica_l));
    // Reloaded from the v1 file on disk at start.
    drop(sm_f);
    let replica = Arc::new(Replica::default());
    let _sm = StateMachineStore::open(dir_f.path(), replica.clone()).unwrap();
    assert_eq!(state_bytes(&replica), state_bytes(&replica_l));
}

/// The oldest format that holds the state: format 2 until a token exists, then format 3; both
/// read back to the same state.
#[test]
fn a_state_with_tokens_is_written_as_format_3_and_one_without_as_format_2() {
    use crate::queue::ApplyEffects;
    use crate::queue::Command;
    use crate::queue::QueueState;
    use crate::queue::Request;
    use crate::queue::Role;
    use crate::queue::TokenHash;

    let membership = openraft::StoredMembership::default();
    let mut state = QueueState::new();
    let plain = snapshot::encode_parts(&None, &membership, &state).unwrap();
    assert_eq!(plain[4..8], 2u32.to_le_bytes());
    assert_eq!(snapshot::decode(&plain).unwrap().state, state);
    let create = Command::CreateToken {
        role: Role::Admin,
        hash: TokenHash([7; 32]),
        label: "first".into(),
        ttl_ms: None,
    };
    for commands in [vec![create], vec![Command::RevokeToken { id: 1 }]] {
        state.apply(&Request { now_ms: 5, commands }, &mut ApplyEffects::default());
        // Revoked, the table still remembers its next id: still format 3.
        let with = snapshot::encode_parts(&None, &membership, &state).unwrap();
        assert_eq!(with[4..8], 3u32.to_le_bytes());
        assert_eq!(snapshot::decode(&with).unwrap().state, state);
    }
    // The state's own encoding refuses to drop tokens.
    let err = crate::encoding::encode(&crate::queue::InFormat(&state, 2)).unwrap_err();
    assert!(err.to_string().contains("format 3"), "{err}");
}

/// A declared task name takes the state to format 4 (from 2 or from 3), and it reads back.
#[test]
fn a_state_with_declared_names_is_written_as_format_4() {
    use crate::queue::ApplyEffects;
    use crate::queue::Command;
    use crate::queue::QueueState;
    use crate::queue::Request;
    use crate::queue::TaskDecl;

    let membership = openraft::StoredMembership::default();
    let declare = Command::DeclareTasks {
        declarer: "node:1".into(),
        tasks: vec![TaskDecl {
            name: "noop".into(),
            queue: String::new(),
        }],
    };
    let revoke = Command::RevokeToken { id: 1 };
    let create = Command::CreateToken {
        role: crate::queue::Role::Admin,
        hash: crate::queue::TokenHash([7; 32]),
        label: String::new(),
        ttl_ms: None,
    };
    for before in [vec![], vec![create, revoke]] {
        let mut state = QueueState::new();
        state.apply(
            &Request {
                now_ms: 5,
                commands: before,
            },
            &mut ApplyEffects::default(),
        );
        let without = snapshot::encode_parts(&None, &membership, &state).unwrap();
        assert_ne!(without[4..8], 4u32.to_le_bytes());
        state.apply(
            &Request {
                now_ms: 6,
                commands: vec![declare.clone()],
            },
            &mut ApplyEffects::default(),
        );
        let with = snapshot::encode_parts(&None, &membership, &state).unwrap();
        assert_eq!(with[4..8], 4u32.to_le_bytes());
        let back = snapshot::decode(&with).unwrap().state;
        assert_eq!(back, state);
        assert!(back.catalog().contains("noop"));
        // The older formats' writers refuse to drop the catalogue.
        let err = crate::encoding::encode(&crate::queue::InFormat(&state, 3)).unwrap_err();
        assert!(err.to_string().contains("format 4"), "{err}");
        assert!(crate::encoding::encode(&crate::queue::InFormat(&state, 2)).is_err());
    }
}

/// A schedule takes the state to format 6 (and removing it does not take it back: the table
/// is no longer pristine), and it reads back; the older writers refuse to drop it.
#[test]
fn a_state_with_schedules_is_written_as_format_6() {
    use crate::queue::ApplyEffects;
    use crate::queue::Cadence;
    use crate::queue::CatchUp;
    use crate::queue::Command;
    use crate::queue::QueueState;
    use crate::queue::Request;
    use crate::queue::ScheduleSpec;
    use crate::queue::TaskSpec;

    let membership = openraft::StoredMembership::default();
    let mut state = QueueState::new();
    let format =
        |state: &QueueState| snapshot::encode_parts(&None, &membership, state).unwrap()[4..8].to_vec();
    assert_eq!(format(&state), 2u32.to_le_bytes());
    let add = Command::AddSchedule {
        schedule: ScheduleSpec {
            name: "s".into(),
            cadence: Cadence::Cron {
                expr: "*/5 * * * * *".into(),
                tz: "Europe/Berlin".into(),
            },
            catch_up: CatchUp::Once,
            grace_ms: 5_000,
            task: TaskSpec {
                name: "noop".into(),
                queue: String::new(),
                args: Default::default(),
                priority: 0,
                eta_ms: None,
                countdown_ms: None,
                max_retries: 0,
                backoff_ms: 0,
                time_limit_ms: None,
                idempotency_key: None,
                result_ttl_ms: 60_000,
                headers: Default::default(),
                concurrency_key: None,
            },
        }
        .into(),
        replace: false,
    };
    for (now, commands) in [(1_000, vec![add]), (12_000, vec![Command::Tick])] {
        state.apply(
            &Request {
                now_ms: now,
                commands,
            },
            &mut ApplyEffects::default(),
        );
    }
    assert_eq!(state.task_count(), 2, "slots 5,000 and 10,000");
    let bytes = snapshot::encode_parts(&None, &membership, &state).unwrap();
    assert_eq!(bytes[4..8], 6u32.to_le_bytes());
    let back = snapshot::decode(&bytes).unwrap().state;
    assert_eq!(back, state);
    assert_eq!(back.schedules().list(), state.schedules().list());
    for older in [
        crate::encoding::encode(&crate::queue::InFormat(&state, 5)),
        crate::encoding::encode(&crate::queue::InFormat(&state, 3)),
        crate::encoding::encode(&crate::queue::InFormat(&state, 2)),
    ] {
        assert!(older.unwrap_err().to_string().contains("format 6"));
    }
    state.apply(
        &Request {
            now_ms: 12_000,
            commands: vec![Command::RemoveSchedule { name: "s".into() }],
        },
        &mut ApplyEffects::default(),
    );
    assert_eq!(format(&state), 6u32.to_le_bytes());
}

/// A frozen queue that fails its check (a timer set that does not match the tasks: a bug) costs
/// that snapshot only: no error reaches openraft (it would stop the node's Raft core), nothing
/// is written, the snapshot held stays current and is what openraft is handed back (not newer,
/// so it purges nothing), and a later build of a sound state succeeds.
#[tokio::test]
async fn a_snapshot_that_fails_its_check_is_skipped_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let (replica, mut sm) = leader(dir.path()).await;
    let sound = replica.read(|q| q.clone());
    let mut broken = sound.clone();
    broken.break_timer_set_for_test();

    // With no snapshot held: an empty one at no log id, and still none on disk.
    replica.replace(broken.clone());
    let skipped = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
    assert_eq!(skipped.meta.last_log_id, None);
    assert!(sm.get_current_snapshot().await.unwrap().is_none());

    // A sound snapshot, then a broken state: the sound one is handed back and stays current.
    replica.replace(sound);
    let good = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
    assert_eq!(good.meta.last_log_id, Some(lid(1, 9)));
    apply(&mut sm, entries(10, 12)).await;
    replica.replace(broken);
    let skipped = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
    assert_eq!(skipped.meta, good.meta);
    assert_eq!(skipped.snapshot, good.snapshot);
    let current = sm.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!((current.meta, current.snapshot), (good.meta, good.snapshot));
}
