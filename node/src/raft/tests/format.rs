//! Data written by an older build stays readable: a WAL and a snapshot written by the format of
//! issue 10 (log entries untagged = entry format 1, snapshot format 2) are checked in under
//! `fixtures/entries-v1-snapshot-v2/`, and this build must open them and reach the same state.
//!
//! The fixture holds one entry of every payload kind (membership, blank) and every command
//! kind, a vote and a commit; its snapshot covers entries 1..=6 and the log holds 1..=8, so
//! opening it exercises the restart path (snapshot, then re-apply the committed tail).
//!
//! A fixture directory is written once, by the build whose format it records
//! (`write_fixtures` below, ignored), and never regenerated: a new format gets a new
//! directory next to the old ones.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use openraft::EntryPayload;
use openraft::Membership;
use openraft::RaftSnapshotBuilder;
use openraft::alias::EntryOf;
use openraft::alias::VoteOf;
use openraft::entry::RaftEntry;
use openraft::storage::RaftLogStorage;
use openraft::storage::RaftStateMachine;

use super::append_durable;
use super::lid;
use crate::queue::Command;
use crate::queue::Completion;
use crate::queue::LeaseRef;
use crate::queue::Outcome;
use crate::queue::Request;
use crate::queue::TaskSpec;
use crate::raft::log_store::LogStore;
use crate::raft::state_machine::StateMachineStore;
use crate::replica::Replica;
use crate::types::NodeInfo;
use crate::types::TypeConfig;

/// The fixture of issue 10's format.
#[allow(dead_code)] // read by the tests added next
const V1_DIR: &str = "entries-v1-snapshot-v2";
/// The snapshot covers entries up to this index.
const SNAPSHOT_AT: u64 = 6;
/// Base of the fixture's clock (2023-11-14).
const T0: u64 = 1_700_000_000_000;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/raft/tests/fixtures")
}

fn spec(name: &str, queue: &str, args: &'static str) -> TaskSpec {
    TaskSpec {
        name: name.into(),
        queue: queue.into(),
        args: Bytes::from_static(args.as_bytes()),
        priority: 0,
        eta_ms: None,
        countdown_ms: None,
        max_retries: 0,
        backoff_ms: 0,
        time_limit_ms: None,
        idempotency_key: None,
        result_ttl_ms: 3_600_000,
    }
}

fn normal(term: u64, index: u64, now_ms: u64, commands: Vec<Command>) -> EntryOf<TypeConfig> {
    EntryOf::<TypeConfig>::new(
        lid(term, index),
        EntryPayload::Normal(Request { now_ms, commands }),
    )
}

fn lease(task: u64, attempt: u32) -> LeaseRef {
    LeaseRef { task, attempt }
}

/// The fixture's log: every payload kind and every command kind, with options set.
pub(crate) fn fixture_entries() -> Vec<EntryOf<TypeConfig>> {
    let nodes = BTreeMap::from([(
        1u64,
        NodeInfo {
            addr: "127.0.0.1:7001".into(),
            zone: "a".into(),
        },
    )]);
    let membership = Membership::new(vec![BTreeSet::from([1u64])], nodes).expect("membership");
    let ((pool1, pool2), lease_ms) = (("pool-1".to_string(), "pool-2".to_string()), 30_000);
    vec![
        EntryOf::<TypeConfig>::new(lid(1, 1), EntryPayload::Membership(membership)),
        EntryOf::<TypeConfig>::new(lid(1, 2), EntryPayload::Blank),
        normal(1, 3, T0, vec![
            Command::Submit {
                tasks: vec![
                    TaskSpec {
                        priority: 5,
                        time_limit_ms: Some(10_000),
                        ..spec("email.send", "", r#"{"to":"a@example.com"}"#)
                    },
                    TaskSpec {
                        max_retries: 3,
                        backoff_ms: 1_000,
                        idempotency_key: Some("order-42".into()),
                        ..spec("report.build", "default", r#"[1,2,3]"#)
                    },
                    TaskSpec {
                        eta_ms: Some(T0 + 3_600_000),
                        ..spec("cleanup", "other", "null")
                    },
                    TaskSpec {
                        countdown_ms: Some(500),
                        ..spec("cleanup", "other", "{}")
                    },
                ]
                .into(),
            },
            Command::AllocateNodeId,
        ]),
        normal(1, 4, T0 + 10, vec![Command::Lease {
            worker: pool1.clone(),
            queues: vec!["default".into(), "other".into()],
            max: 2,
            lease_ms,
            standing_ticket: None,
        }]),
        normal(1, 5, T0 + 20, vec![
            Command::Heartbeat {
                worker: pool1.clone(),
                leases: vec![lease(1, 1)],
                lease_ms,
            },
            Command::Complete {
                worker: pool1.clone(),
                completions: vec![
                    Completion {
                        lease: lease(1, 1),
                        outcome: Outcome::Success(Bytes::from_static(b"\"sent\"")),
                    },
                    Completion {
                        lease: lease(2, 1),
                        outcome: Outcome::Failure {
                            error: "smtp timeout".into(),
                            retry: true,
                        },
                    },
                ],
            },
        ]),
        normal(1, 6, T0 + 30, vec![
            Command::Submit {
                tasks: vec![spec("email.send", "", r#"{"to":"b@example.com"}"#)].into(),
            },
            Command::Lease {
                worker: pool2.clone(),
                queues: vec!["default".into()],
                max: 4,
                lease_ms,
                standing_ticket: Some(7),
            },
            Command::Release {
                worker: pool2.clone(),
                leases: vec![lease(5, 1)],
            },
        ]),
        normal(2, 7, T0 + 2_000, vec![
            Command::Cancel { ids: vec![3, 99] },
            Command::PauseQueue {
                queue: "other".into(),
                paused: true,
            },
            Command::Submit {
                tasks: vec![spec("cleanup", "other", "{}")].into(),
            },
            Command::PurgeQueue {
                queue: "other".into(),
            },
            Command::Tick,
        ]),
        normal(2, 8, T0 + 3_000, vec![
            Command::ReleaseWorker { worker: pool1 },
            Command::ClearStanding { worker: pool2 },
            Command::PauseQueue {
                queue: "other".into(),
                paused: false,
            },
            Command::AllocateNodeId,
        ]),
    ]
}

fn fixture_vote() -> VoteOf<TypeConfig> {
    let mut vote = VoteOf::<TypeConfig>::new(2, 1);
    vote.committed = true;
    vote
}

async fn apply(sm: &mut StateMachineStore, entries: Vec<EntryOf<TypeConfig>>) {
    sm.apply(futures::stream::iter(entries.into_iter().map(|e| Ok((e, None)))))
        .await
        .expect("apply");
}

/// Write the fixture's data directory into `dir` with this build's encoders.
async fn write_data_dir(dir: &Path) {
    let entries = fixture_entries();
    let last = entries.last().expect("entries").log_id;
    let mut log = LogStore::open(dir).expect("open log");
    log.save_vote(&fixture_vote()).await.expect("vote");
    append_durable(&mut log, entries.clone()).await;
    log.save_committed(Some(last)).await.expect("commit");
    // A synced write after the commit, so the commit record is on disk too.
    log.save_vote(&fixture_vote()).await.expect("vote");
    drop(log);

    let mut sm = StateMachineStore::open(dir, Arc::new(Replica::default())).expect("open sm");
    apply(&mut sm, entries[..SNAPSHOT_AT as usize].to_vec()).await;
    sm.get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("snapshot");
}

/// Writes a fixture directory with this build's formats. Run it once, by hand, when a format
/// changes (after adding a new directory name above):
/// `FLOTILLA_WRITE_FIXTURE=<name> cargo test -p flotilla-node write_fixtures -- --ignored`.
#[tokio::test]
#[ignore = "writes a fixture into the source tree; run by hand"]
async fn write_fixtures() {
    let name = std::env::var("FLOTILLA_WRITE_FIXTURE").expect("FLOTILLA_WRITE_FIXTURE=<dir name>");
    let dir = fixtures_dir().join(name);
    assert!(!dir.exists(), "{} exists: fixtures are never rewritten", dir.display());
    write_data_dir(&dir).await;
    // The lock file belongs to a running store, not to the format.
    let _ = fs::remove_file(dir.join("wal/LOCK"));
}
