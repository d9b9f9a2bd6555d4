//! Data written by an older build stays readable: a WAL and a snapshot written by the format of
//! issue 10 (log entries untagged = entry format 1, snapshot format 2) are checked in under
//! `fixtures/entries-v1-snapshot-v2/`, and this build must open them and reach the same state.
//! Issue 14's format (API tokens: entry format 2 for the token commands, snapshot format 3 with
//! the token table) is under `fixtures/entries-v2-snapshot-v3/`: the same log with tokens
//! created and revoked in it. Issue 11's format (the task catalogue: entry format 3 for
//! `DeclareTasks`, snapshot format 4 with the catalogue) is under
//! `fixtures/entries-v3-snapshot-v4/`: issue 14's log with task names declared in it. Issue
//! 11's second format (entry format 4: submit headers, a worker's retry delay, progress;
//! snapshot format 5 with the task extras) is under `fixtures/entries-v4-snapshot-v5/`. Issue
//! 12's format (periodic schedules: entry format 5 for the schedule commands, snapshot format 6
//! with the schedules) is under `fixtures/entries-v5-snapshot-v6/`: issue 11's second log with
//! schedules added, refused, paused, resumed, replaced and removed, two of them firing.
//! Issue 12's flow control (entry format 7 for the limit commands and a task's concurrency
//! key, snapshot format 8 with the limits, lanes and keys) is under
//! `fixtures/entries-v7-snapshot-v8/`: that log with limits set and removed and keyed tasks
//! leased under them. Issue 12's workflows (entry format 9 for `SubmitWorkflow`, snapshot
//! format 10 with the waiting tasks and workflows; 9 is a slot reserved for branch ops) are
//! under `fixtures/entries-v9-snapshot-v10/`: that log with a chain and its error callback
//! (entry 6, in the snapshot) and a task naming an existing parent (entry 8).
//! leased under them. Issue 13's format (operating tasks: entry format 8 for `Retry` and
//! `Revoke`; no new snapshot table, so the snapshot stays format 8) is under
//! `fixtures/entries-v8-snapshot-v8/`: that log with a running task revoked, a pending one
//! revoked and retried, and both commands naming unknown ids. Issue 13's attempt histories
//! (entry format 10 for `RecordAttempts`, snapshot format 11 with the histories; slot 9 stays a
//! unit) are under `fixtures/entries-v10-snapshot-v11/`: the workflows' log switched on in
//! entry 3, before its first lease, so the snapshot holds histories.
//!
//! The fixture holds one entry of every payload kind (membership, blank) and every command
//! kind, a vote and a commit; its snapshot covers entries 1..=6 and the log holds 1..=8, so
//! opening it exercises the restart path (snapshot, then re-apply the committed tail).
//!
//! Entries of a format newer than this build reads are refused by name, never skipped and
//! never cut off as a torn tail: in the WAL and in an AppendEntries message.
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
use openraft::RaftLogReader;
use openraft::RaftSnapshotBuilder;
use openraft::alias::EntryOf;
use openraft::alias::EntryPayloadOf;
use openraft::alias::VoteOf;
use openraft::entry::RaftEntry;
use openraft::storage::RaftLogStorage;
use openraft::storage::RaftStateMachine;
use raft_log::api::raft_log_writer::RaftLogWriter;

use super::append_durable;
use super::lid;
use crate::encoding;
use crate::network::codec;
use crate::queue::Cadence;
use crate::queue::CatchUp;
use crate::queue::Command;
use crate::queue::Completion;
use crate::queue::ENTRY_FORMAT;
use crate::queue::LeaseRef;
use crate::queue::Outcome;
use crate::queue::ProgressReport;
use crate::queue::Request;
use crate::queue::Role;
use crate::queue::ScheduleSpec;
use crate::queue::TaskDecl;
use crate::queue::TaskSpec;
use crate::queue::TaskState;
use crate::queue::TokenHash;
use crate::queue::entry_format::AsFormat;
use crate::raft::error::StorageError;
use crate::raft::log_store::LogStore;
use crate::raft::state_machine::StateMachineStore;
use crate::raft::wal::Bin;
use crate::raft::wal::WalCallback;
use crate::replica::Replica;
use crate::types::NodeInfo;
use crate::types::TypeConfig;

/// The fixture of issue 10's format.
const V1_DIR: &str = "entries-v1-snapshot-v2";
/// The fixture of issue 14's format (tokens).
const V2_DIR: &str = "entries-v2-snapshot-v3";
/// The fixture of issue 11's format (the task catalogue).
const V3_DIR: &str = "entries-v3-snapshot-v4";
/// The fixture of issue 11's second format (headers, retry delay, progress).
const V4_DIR: &str = "entries-v4-snapshot-v5";
/// The fixture of issue 12's format (schedules).
const V5_DIR: &str = "entries-v5-snapshot-v6";
/// The fixture of issue 12's flow control (limits, concurrency keys).
const V7_DIR: &str = "entries-v7-snapshot-v8";
/// The fixture of issue 12's workflows.
const V9_DIR: &str = "entries-v9-snapshot-v10";
/// The fixture of issue 13's operating commands (retry, revoke).
const V8_DIR: &str = "entries-v8-snapshot-v8";
/// The fixture of issue 13's attempt histories.
const V10_DIR: &str = "entries-v10-snapshot-v11";
/// The snapshot covers entries up to this index.
const SNAPSHOT_AT: u64 = 6;
/// Base of the fixture's clock (2023-11-14).
const T0: u64 = 1_700_000_000_000;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/raft/tests/fixtures")
}

/// The data directory of today's fixture (read only: copy it before opening a store on it).
pub(crate) fn fixture_dir() -> PathBuf {
    fixtures_dir().join(V1_DIR)
}

/// The data directory of issue 14's fixture.
fn fixture_dir_v2() -> PathBuf {
    fixtures_dir().join(V2_DIR)
}

/// The entries of the fixture in directory `name`.
fn entries_of(name: &str) -> Vec<EntryOf<TypeConfig>> {
    match name {
        V1_DIR => fixture_entries(),
        V2_DIR => fixture_entries_v2(),
        V3_DIR => fixture_entries_v3(),
        V4_DIR => fixture_entries_v4(),
        V5_DIR => fixture_entries_v5(),
        V7_DIR => fixture_entries_v7(),
        V9_DIR => fixture_entries_v9(),
        V8_DIR => fixture_entries_v8(),
        V10_DIR => fixture_entries_v10(),
        other => panic!("no fixture named {other}"),
    }
}

/// Issue 14's fixture: issue 10's log with tokens created (entry 3, before the snapshot; entry
/// 7, after it) and revoked (entry 5), so both the snapshot's token table and the re-applied
/// tail hold some.
pub(crate) fn fixture_entries_v2() -> Vec<EntryOf<TypeConfig>> {
    let mut entries = fixture_entries();
    let token = |b: u8, role, ttl_ms| Command::CreateToken {
        role,
        hash: TokenHash([b; 32]),
        label: format!("token {b}"),
        ttl_ms,
    };
    let mut add = |index: usize, commands: Vec<Command>| match &mut entries[index - 1].payload {
        EntryPayload::Normal(req) => req.commands.extend(commands),
        other => panic!("entry {index} is {other:?}"),
    };
    add(
        3,
        vec![token(1, Role::Admin, None), token(2, Role::Join, Some(60_000))],
    );
    add(
        5,
        vec![token(3, Role::Submit, None), Command::RevokeToken { id: 3 }],
    );
    add(
        7,
        vec![token(4, Role::Worker, Some(1_000)), token(1, Role::Submit, None)],
    );
    entries
}

/// Issue 11's fixture: issue 14's log with task names declared by a node (entry 4, before the
/// snapshot) and by a worker (entry 6), re-declared unchanged, with a queue changed and one
/// declaration refused (entry 8, after it), so both the snapshot's catalogue and the
/// re-applied tail hold some.
pub(crate) fn fixture_entries_v3() -> Vec<EntryOf<TypeConfig>> {
    let mut entries = fixture_entries_v2();
    let declare = |declarer: &str, tasks: &[(&str, &str)]| Command::DeclareTasks {
        declarer: declarer.into(),
        tasks: tasks
            .iter()
            .map(|(name, queue)| TaskDecl {
                name: (*name).into(),
                queue: (*queue).into(),
            })
            .collect(),
    };
    let mut add = |index: usize, commands: Vec<Command>| match &mut entries[index - 1].payload {
        EntryPayload::Normal(req) => req.commands.extend(commands),
        other => panic!("entry {index} is {other:?}"),
    };
    add(
        4,
        vec![declare(
            "node:1",
            &[
                ("email.send", ""),
                ("report.build", "default"),
                ("cleanup", "other"),
            ],
        )],
    );
    add(
        6,
        vec![declare(
            "py-worker@host",
            &[("tasks.add", "math"), ("email.send", "mail")],
        )],
    );
    add(
        8,
        vec![
            declare("node:1", &[("email.send", ""), ("cleanup", "other")]),
            declare("py-worker@host", &[("tasks.add", "math2")]),
            declare("", &[("never", "")]),
        ],
    );
    entries
}

/// Issue 11's second fixture: the catalogue's log with progress reported (entry 5, before the
/// snapshot: so the snapshot holds task extras, format 5; one report stale), and a task
/// submitted with headers, leased, and failed with a retry delay (entry 8, after it).
pub(crate) fn fixture_entries_v4() -> Vec<EntryOf<TypeConfig>> {
    let mut entries = fixture_entries_v3();
    let report = |task, attempt, data: &'static str| ProgressReport {
        lease: lease(task, attempt),
        data: Bytes::from_static(data.as_bytes()),
    };
    match &mut entries[4].payload {
        EntryPayload::Normal(req) => req.commands.insert(
            0,
            Command::Progress {
                reports: vec![
                    report(1, 1, r#"{"step":"smtp"}"#),
                    report(2, 1, r#"{"pct":50}"#),
                    report(2, 0, r#"{"stale":true}"#),
                ],
            },
        ),
        other => panic!("entry 5 is {other:?}"),
    }
    let pool3 = "pool-3".to_string();
    match &mut entries[7].payload {
        EntryPayload::Normal(req) => req.commands.extend([
            Command::Submit {
                tasks: vec![TaskSpec {
                    max_retries: 2,
                    headers: [
                        (
                            "traceparent".to_string(),
                            "00-0af7651916cd43dd-b7ad6b7169203331-01".to_string(),
                        ),
                        ("x-tenant".to_string(), "acme".to_string()),
                    ]
                    .into(),
                    ..spec("hook.call", "mail", "{}")
                }]
                .into(),
            },
            Command::Lease {
                pool: pool3.clone(),
                queues: vec!["mail".into()],
                max: 1,
                lease_ms: 30_000,
                standing_ticket: None,
            },
            Command::Complete {
                pool: pool3,
                completions: vec![Completion {
                    lease: lease(7, 1),
                    outcome: Outcome::RetryAfter {
                        error: "429 too many requests".into(),
                        delay_ms: 5_000,
                    },
                }],
            },
        ]),
        other => panic!("entry 8 is {other:?}"),
    }
    entries
}

/// Issue 12's fixture: issue 11's second log with two schedules added (entry 4), one of them paused
/// and a conflicting add refused (entry 6, before the snapshot), a third added by `replace`
/// and the paused one resumed (entry 7), the third removed (entry 8). Both schedules fire at
/// entry 8, into a queue no pool serves, so the tasks of the older fixtures keep their ids and
/// states.
pub(crate) fn fixture_entries_v5() -> Vec<EntryOf<TypeConfig>> {
    let mut entries = fixture_entries_v4();
    let schedule = |name: &str, cadence: Cadence, catch_up, grace_ms, task| ScheduleSpec {
        name: name.into(),
        cadence,
        catch_up,
        grace_ms,
        task,
    };
    let every = |every_ms| {
        schedule(
            "every",
            Cadence::Interval { every_ms },
            CatchUp::Skip,
            60_000,
            spec("report.build", "sched", "{}"),
        )
    };
    let cron = |name: &str, expr: &str, tz: &str| {
        schedule(
            name,
            Cadence::Cron {
                expr: expr.into(),
                tz: tz.into(),
            },
            CatchUp::Once,
            1_000,
            spec("cleanup", "sched", "null"),
        )
    };
    let add = |schedule: ScheduleSpec, replace| Command::AddSchedule {
        schedule: schedule.into(),
        replace,
    };
    let pause = |name: &str, paused| Command::PauseSchedule {
        name: name.into(),
        paused,
    };
    let mut push = |index: usize, commands: Vec<Command>| match &mut entries[index - 1].payload {
        EntryPayload::Normal(req) => req.commands.extend(commands),
        other => panic!("entry {index} is {other:?}"),
    };
    push(
        4,
        vec![
            add(every(2_500), false),
            add(cron("cron", "* * * * * *", "Europe/Berlin"), false),
        ],
    );
    push(6, vec![pause("cron", true), add(every(5_000), false)]);
    push(
        7,
        vec![
            add(cron("hourly", "0 * * * *", "America/New_York"), true),
            pause("cron", false),
        ],
    );
    push(
        8,
        vec![
            Command::RemoveSchedule {
                name: "hourly".into(),
            },
            pause("nope", true),
        ],
    );
    entries
}

/// Issue 12's flow-control fixture: the schedules' log with limits set (entry 4: queue
/// `limited` at one running task and 2/s, every key at one; entry 6, before the snapshot: a
/// rate for `cleanup`, then removed with a limit that never existed), and three keyed tasks
/// submitted to `limited` (ids 10 to 12) and leased (entry 8): one is granted, two are held by
/// the queue.
pub(crate) fn fixture_entries_v7() -> Vec<EntryOf<TypeConfig>> {
    use crate::queue::LimitRule;
    use crate::queue::LimitScope;
    use crate::queue::Rate;
    let mut entries = fixture_entries_v5();
    let set = |scope: LimitScope, rate: Option<Rate>, concurrency: Option<u32>| Command::SetLimit {
        scope,
        rule: LimitRule { rate, concurrency },
    };
    let per_s = |tokens| {
        Some(Rate {
            tokens,
            per_ms: 1_000,
        })
    };
    let keyed = |key: &str| TaskSpec {
        concurrency_key: Some(key.into()),
        ..spec("email.send", "limited", "{}")
    };
    let mut push = |index: usize, commands: Vec<Command>| match &mut entries[index - 1].payload {
        EntryPayload::Normal(req) => req.commands.extend(commands),
        other => panic!("entry {index} is {other:?}"),
    };
    push(
        4,
        vec![
            set(LimitScope::Queue("limited".into()), per_s(2), Some(1)),
            set(LimitScope::AnyKey, None, Some(1)),
        ],
    );
    push(
        6,
        vec![
            set(
                LimitScope::Task("cleanup".into()),
                Some(Rate {
                    tokens: 1,
                    per_ms: 60_000,
                }),
                None,
            ),
            Command::RemoveLimit {
                scope: LimitScope::Task("cleanup".into()),
            },
            Command::RemoveLimit {
                scope: LimitScope::Key("nobody".into()),
            },
        ],
    );
    push(
        8,
        vec![
            Command::Submit {
                tasks: vec![keyed("tenant-a"), keyed("tenant-a"), keyed("tenant-b")].into(),
            },
            Command::Lease {
                pool: "pool-9".into(),
                queues: vec!["limited".into()],
                max: 5,
                lease_ms: 30_000,
                standing_ticket: None,
            },
        ],
    );
    entries
}

/// Issue 13's fixture: issue 12's flow-control log with `Retry` and `Revoke` of unknown ids in
/// entry 6 (before the snapshot: they change nothing), and in entry 8 (re-applied on open) the
/// running keyed task 10 revoked (terminated), the pending task 11 revoked and then retried.
pub(crate) fn fixture_entries_v8() -> Vec<EntryOf<TypeConfig>> {
    let mut entries = fixture_entries_v7();
    let mut push = |index: usize, commands: Vec<Command>| match &mut entries[index - 1].payload {
        EntryPayload::Normal(req) => req.commands.extend(commands),
        other => panic!("entry {index} is {other:?}"),
    };
    push(
        6,
        vec![
            Command::Retry { ids: vec![99] },
            Command::Revoke {
                ids: vec![98],
                reason: String::new(),
            },
        ],
    );
    push(
        8,
        vec![
            Command::Revoke {
                ids: vec![10, 11],
                reason: "stuck".into(),
            },
            Command::Retry { ids: vec![11] },
        ],
    );
    entries
}

/// Issue 12's workflows: the flow-control log with a chain of two tasks on queue `flows`
/// and an error callback (entry 6, before the snapshot: the second task and the callback wait
/// in it), and in entry 8 a workflow of one task naming task 1 (succeeded) as its parent:
/// released at once with its result.
pub(crate) fn fixture_entries_v9() -> Vec<EntryOf<TypeConfig>> {
    use crate::queue::Parent;
    use crate::queue::ShapeNode;
    use crate::queue::WaitFor;
    use crate::queue::WorkflowSpec;
    use crate::queue::WorkflowTask;
    let mut entries = fixture_entries_v7();
    let task = |name: &str, parents: Vec<Parent>, wait| WorkflowTask {
        spec: spec(name, "flows", "[1]"),
        parents,
        wait,
    };
    let mut push = |index: usize, command: Command| match &mut entries[index - 1].payload {
        EntryPayload::Normal(req) => req.commands.push(command),
        other => panic!("entry {index} is {other:?}"),
    };
    push(
        6,
        Command::SubmitWorkflow {
            workflow: Box::new(WorkflowSpec {
                tasks: vec![
                    task("flow.a", vec![], WaitFor::AllSucceed),
                    task("flow.b", vec![Parent::Index(0)], WaitFor::AllSucceed),
                    task(
                        "flow.error",
                        vec![Parent::Index(0), Parent::Index(1)],
                        WaitFor::AnyFails,
                    ),
                ],
                shape: vec![
                    ShapeNode::Task(0),
                    ShapeNode::Task(1),
                    ShapeNode::Chain(vec![0, 1]),
                ],
                idempotency_key: Some("flow-1".into()),
            }),
        },
    );
    push(
        8,
        Command::SubmitWorkflow {
            workflow: Box::new(WorkflowSpec {
                tasks: vec![task("flow.after", vec![Parent::Task(1)], WaitFor::AllSucceed)],
                shape: vec![ShapeNode::Task(0)],
                idempotency_key: None,
            }),
        },
    );
    entries
}

/// Issue 13's attempt histories: the workflows' log with `RecordAttempts` first in entry 3,
/// before any lease, so every attempt after it is recorded (and the snapshot, at entry 6,
/// holds histories: format 11).
pub(crate) fn fixture_entries_v10() -> Vec<EntryOf<TypeConfig>> {
    let mut entries = fixture_entries_v9();
    match &mut entries[2].payload {
        EntryPayload::Normal(req) => req.commands.insert(0, Command::RecordAttempts),
        other => panic!("entry 3 is {other:?}"),
    }
    entries
}

/// A task with every option at its zero. Written out here, not taken from a shared test
/// helper: the fixture's entries must not change when someone else's defaults do.
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
        headers: Default::default(),
        concurrency_key: None,
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
        normal(
            1,
            3,
            T0,
            vec![
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
            ],
        ),
        normal(
            1,
            4,
            T0 + 10,
            vec![Command::Lease {
                pool: pool1.clone(),
                queues: vec!["default".into(), "other".into()],
                max: 2,
                lease_ms,
                standing_ticket: None,
            }],
        ),
        normal(
            1,
            5,
            T0 + 20,
            vec![
                Command::Heartbeat {
                    pool: pool1.clone(),
                    leases: vec![lease(1, 1)],
                    lease_ms,
                },
                Command::Complete {
                    pool: pool1.clone(),
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
            ],
        ),
        normal(
            1,
            6,
            T0 + 30,
            vec![
                Command::Submit {
                    tasks: vec![spec("email.send", "", r#"{"to":"b@example.com"}"#)].into(),
                },
                Command::Lease {
                    pool: pool2.clone(),
                    queues: vec!["default".into()],
                    max: 4,
                    lease_ms,
                    standing_ticket: Some(7),
                },
                Command::Release {
                    pool: pool2.clone(),
                    leases: vec![lease(5, 1)],
                },
            ],
        ),
        normal(
            2,
            7,
            T0 + 2_000,
            vec![
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
            ],
        ),
        normal(
            2,
            8,
            T0 + 3_000,
            vec![
                Command::ReleasePool { pool: pool1 },
                Command::ClearStanding { pool: pool2 },
                Command::PauseQueue {
                    queue: "other".into(),
                    paused: false,
                },
                Command::AllocateNodeId,
            ],
        ),
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

/// Write the data directory of fixture `name` into `dir` with this build's encoders.
async fn write_data_dir(dir: &Path, name: &str) {
    let entries = entries_of(name);
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
    let dir = fixtures_dir().join(&name);
    assert!(
        !dir.exists(),
        "{} exists: fixtures are never rewritten",
        dir.display()
    );
    write_data_dir(&dir, &name).await;
    // The lock file belongs to a running store, not to the format.
    let _ = fs::remove_file(dir.join("wal/LOCK"));
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for entry in fs::read_dir(from).expect("read fixture dir") {
        let path = entry.expect("dir entry").path();
        let target = to.join(path.file_name().expect("name"));
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            fs::copy(&path, &target).expect("copy");
        }
    }
}

fn state_bytes(replica: &Replica) -> Vec<u8> {
    replica.read(|q| bincode::serde::encode_to_vec(q, bincode::config::standard()).expect("encode"))
}

/// The state this build computes from `entries`, applied to an empty machine.
async fn replay(entries: &[EntryOf<TypeConfig>]) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let replica = Arc::new(Replica::default());
    let mut sm = StateMachineStore::open(dir.path(), replica.clone()).expect("open sm");
    apply(&mut sm, entries.to_vec()).await;
    state_bytes(&replica)
}

fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for sub in ["wal", "snapshot"] {
        let mut names: Vec<PathBuf> = fs::read_dir(dir.join(sub))
            .expect("read dir")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.file_name().is_some_and(|n| n != "LOCK"))
            .collect();
        names.sort();
        files.extend(
            names
                .into_iter()
                .map(|p| p.strip_prefix(dir).expect("prefix").to_path_buf()),
        );
    }
    files
}

/// Opens fixture `name` with this build, checks every entry and the snapshot's state, and
/// re-applies the tail as a restart does; returns the replica.
async fn open_fixture(name: &str) -> Arc<Replica> {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&fixtures_dir().join(name), dir.path());
    let expected = entries_of(name);

    let mut log = LogStore::open(dir.path()).expect("open the fixture's log");
    assert_eq!(log.read_vote().await.expect("vote"), Some(fixture_vote()));
    assert_eq!(log.read_committed().await.expect("committed"), Some(lid(2, 8)));
    let mut reader = log.get_log_reader().await;
    let got = RaftLogReader::try_get_log_entries(&mut reader, 0..)
        .await
        .expect("read entries");
    assert_eq!(got, expected, "every entry decodes to what was written");

    let replica = Arc::new(Replica::default());
    let mut sm = StateMachineStore::open(dir.path(), replica.clone()).expect("open the fixture's snapshot");
    let (applied, membership) = sm.applied_state().await.expect("applied state");
    assert_eq!(applied, Some(lid(1, SNAPSHOT_AT)));
    assert_eq!(membership.log_id(), &Some(lid(1, 1)));
    assert_eq!(
        state_bytes(&replica),
        replay(&expected[..SNAPSHOT_AT as usize]).await,
        "the snapshot holds the state this build computes from the same entries"
    );

    // What a restart does: re-apply the committed entries after the snapshot.
    apply(&mut sm, got[SNAPSHOT_AT as usize..].to_vec()).await;
    assert_eq!(state_bytes(&replica), replay(&expected).await);
    replica.read(|q| {
        q.check_invariants().expect("invariants");
        if name == V9_DIR || name == V10_DIR {
            // Its workflow (entry 6) takes ids the older logs' later tasks had: checked by its
            // own test.
            return;
        }
        // The fixture reaches the states it was written to cover.
        let state = |id| q.task(id).map(|t| t.state);
        let attempt = |id| q.task(id).map(|t| t.attempt);
        assert_eq!(state(1), Some(TaskState::Succeeded));
        // Failed, retried after its backoff and granted to pool-2's standing capacity.
        assert_eq!((state(2), attempt(2)), (Some(TaskState::Leased), Some(2)));
        assert_eq!(q.task(2).and_then(|t| t.error).as_deref(), Some("smtp timeout"));
        assert_eq!(state(3), Some(TaskState::Cancelled));
        assert_eq!(state(4), Some(TaskState::Cancelled), "purged");
        // Released by pool-2, then granted again to its standing capacity.
        assert_eq!((state(5), attempt(5)), (Some(TaskState::Leased), Some(2)));
        assert_eq!(
            state(6),
            Some(TaskState::Cancelled),
            "purged from the paused queue"
        );
    });
    replica
}

#[tokio::test]
async fn opens_a_log_and_snapshot_written_by_entry_format_1() {
    let replica = open_fixture(V1_DIR).await;
    replica.read(|q| assert!(q.tokens().is_pristine()));
}

#[tokio::test]
async fn opens_a_log_and_snapshot_written_by_entry_format_2() {
    let snap = fs::read(fixture_dir_v2().join("snapshot/current.snap")).expect("read");
    assert_eq!(
        snap[4..8],
        3u32.to_le_bytes(),
        "the fixture's snapshot is format 3"
    );
    let replica = open_fixture(V2_DIR).await;
    replica.read(|q| {
        let tokens = q.tokens().list();
        let summary: Vec<(u64, Role)> = tokens.iter().map(|t| (t.id, t.role)).collect();
        // Token 3 was revoked; the second create of hash 1 was refused.
        assert_eq!(summary, [(1, Role::Admin), (2, Role::Join), (4, Role::Worker)]);
        assert_eq!(tokens[1].expires_ms, Some(T0 + 60_000));
        let now = q.now_ms();
        assert!(q.tokens().find(&TokenHash([1; 32]), now).is_some());
        assert!(q.tokens().find(&TokenHash([4; 32]), now).is_none(), "expired");
    });
}

#[tokio::test]
async fn opens_a_log_and_snapshot_written_by_entry_format_3() {
    let snap = fs::read(fixtures_dir().join(V3_DIR).join("snapshot/current.snap")).expect("read");
    assert_eq!(
        snap[4..8],
        4u32.to_le_bytes(),
        "the fixture's snapshot is format 4"
    );
    let replica = open_fixture(V3_DIR).await;
    replica.read(|q| {
        assert_eq!(q.tokens().list().len(), 3, "issue 14's tokens are all there");
        let names: Vec<(String, String, usize)> = q
            .task_names()
            .into_iter()
            .map(|t| (t.name, t.default_queue, t.declarers.len()))
            .collect();
        let row = |n: &str, q: &str, d| (n.to_string(), q.to_string(), d);
        assert_eq!(
            names,
            [
                row("cleanup", "other", 1),
                row("email.send", "mail", 2),
                row("report.build", "default", 1),
                row("tasks.add", "math2", 1),
            ]
        );
        assert!(!q.catalog().contains("never"), "the refused declaration");
    });
}

#[tokio::test]
async fn opens_a_log_and_snapshot_written_by_entry_format_4() {
    let snap = fs::read(fixtures_dir().join(V4_DIR).join("snapshot/current.snap")).expect("read");
    assert_eq!(
        snap[4..8],
        5u32.to_le_bytes(),
        "the fixture's snapshot is format 5"
    );
    let replica = open_fixture(V4_DIR).await;
    replica.read(|q| {
        assert_eq!(q.task_names().len(), 4, "the catalogue is all there");
        let progress = |id| q.task(id).and_then(|t| t.progress).map(|p| (p.attempt, p.data));
        assert_eq!(progress(1), Some((1, Bytes::from_static(br#"{"step":"smtp"}"#))));
        assert_eq!(
            progress(2),
            Some((1, Bytes::from_static(br#"{"pct":50}"#))),
            "the stale report changed nothing"
        );
        assert_eq!(progress(3), None);
        let t = q.task(7).expect("task 7");
        assert_eq!((t.state, t.attempt), (TaskState::Retrying, 1));
        assert_eq!(t.error.as_deref(), Some("429 too many requests"));
        assert_eq!(q.headers(7).get("x-tenant").map(String::as_str), Some("acme"));
        assert_eq!(
            q.next_deadline_ms(),
            Some(T0 + 3_000 + 5_000),
            "the worker's retry delay"
        );
    });
}

#[tokio::test]
async fn opens_a_log_and_snapshot_written_by_entry_format_5() {
    let snap = fs::read(fixtures_dir().join(V5_DIR).join("snapshot/current.snap")).expect("read");
    assert_eq!(
        snap[4..8],
        6u32.to_le_bytes(),
        "the fixture's snapshot is format 6"
    );
    let replica = open_fixture(V5_DIR).await;
    replica.read(|q| {
        assert_eq!(q.task_names().len(), 4, "issue 11's catalogue is all there");
        let list = q.schedules().list();
        let summary: Vec<(&str, u64, bool, Option<u64>, u64)> = list
            .iter()
            .map(|s| (s.spec.name.as_str(), s.id, s.paused, s.last_slot_ms, s.fired))
            .collect();
        // "hourly" (id 3) was removed; the refused add changed nothing.
        assert_eq!(
            summary,
            [
                ("cron", 2, false, Some(T0 + 3_000), 1),
                ("every", 1, false, Some(T0 + 2_510), 1),
            ]
        );
        assert_eq!(list[1].spec.cadence, Cadence::Interval { every_ms: 2_500 });
        let fired = |id, slot| {
            let task = q
                .task_by_key(&crate::queue::schedule_key(id, slot))
                .expect("fired");
            q.task(task).expect("held")
        };
        assert_eq!((fired(1, T0 + 2_510).id, fired(2, T0 + 3_000).id), (7, 8));
        assert_eq!(fired(1, T0 + 2_510).queue, "sched");
    });
}

#[tokio::test]
async fn opens_a_log_and_snapshot_written_by_entry_format_7() {
    use crate::queue::LimitScope;
    let snap = fs::read(fixtures_dir().join(V7_DIR).join("snapshot/current.snap")).expect("read");
    assert_eq!(
        snap[4..8],
        8u32.to_le_bytes(),
        "the fixture's snapshot is format 8"
    );
    let replica = open_fixture(V7_DIR).await;
    replica.read(|q| {
        assert_eq!(q.schedules().list().len(), 2, "the schedules are all there");
        let limits: Vec<(LimitScope, u64, u64)> = q
            .limits()
            .into_iter()
            .map(|l| (l.scope, l.running, l.held))
            .collect();
        assert_eq!(
            limits,
            [
                (LimitScope::Queue("limited".into()), 1, 2),
                (LimitScope::AnyKey, 1, 0),
            ]
        );
        // Tasks 10 to 12 (9 is the older fixtures' hook.call).
        let states: Vec<TaskState> = (10..=12).map(|id| q.task(id).expect("task").state).collect();
        assert_eq!(
            states,
            [TaskState::Leased, TaskState::Pending, TaskState::Pending]
        );
    });
}

#[tokio::test]
async fn opens_a_log_and_snapshot_written_by_entry_format_8() {
    let replica = open_fixture(V8_DIR).await;
    replica.read(|q| {
        let t = |id| q.task(id).expect("task");
        assert_eq!(
            (t(10).state, t(10).error.as_deref()),
            (TaskState::Cancelled, Some("stuck")),
            "revoked while it ran"
        );
        assert_eq!(
            (t(11).state, t(11).error.as_deref()),
            (TaskState::Pending, Some("stuck"))
        );
        assert_eq!(t(12).state, TaskState::Pending);
        assert!(q.task(98).is_none() && q.task(99).is_none(), "never created");
    });
}

#[tokio::test]
async fn opens_a_log_and_snapshot_written_by_entry_format_9() {
    let snap = fs::read(fixtures_dir().join(V9_DIR).join("snapshot/current.snap")).expect("read");
    assert_eq!(
        snap[4..8],
        10u32.to_le_bytes(),
        "the fixture's snapshot is format 10"
    );
    let replica = open_fixture(V9_DIR).await;
    replica.read(|q| {
        q.callbacks_exact().expect("callbacks_exact");
        assert_eq!(q.limits().len(), 2, "the limits are all there");
        let w = q.workflow(1).expect("workflow 1");
        let [a, b, e] = [w.tasks[0].id, w.tasks[1].id, w.tasks[2].id];
        assert_eq!(q.task(a).map(|t| t.state), Some(TaskState::Pending));
        assert!(q.is_waiting(b) && q.is_waiting(e));
        let after = q.workflow(2).expect("workflow 2").tasks[0].id;
        assert_eq!(q.task(after).map(|t| t.state), Some(TaskState::Pending));
        let results = q.headers(after).get(crate::queue::PARENT_RESULTS_HEADER).cloned();
        assert!(
            results.is_some_and(|r| r.starts_with('[')),
            "task 1's result passed"
        );
    });
}

#[tokio::test]
async fn opens_a_log_and_snapshot_written_by_entry_format_10() {
    use crate::queue::AttemptEnd;
    let snap = fs::read(fixtures_dir().join(V10_DIR).join("snapshot/current.snap")).expect("read");
    assert_eq!(
        snap[4..8],
        11u32.to_le_bytes(),
        "the fixture's snapshot is format 11"
    );
    let replica = open_fixture(V10_DIR).await;
    replica.read(|q| {
        assert!(q.records_attempts());
        let history = |id| {
            q.describe(id)
                .expect("task")
                .attempts
                .into_iter()
                .map(|a| (a.attempt, a.holder, a.ended.map(|(_, how)| how)))
                .collect::<Vec<_>>()
        };
        // Task 1 ran once and succeeded.
        assert_eq!(history(1).len(), 1);
        assert_eq!(history(1)[0].2, Some(AttemptEnd::Succeeded));
        // Task 2 failed once and runs again.
        let two = history(2);
        assert_eq!(two.len(), 2, "{two:?}");
        assert_eq!(two[0].2, Some(AttemptEnd::Failed { retryable: true }));
        assert_eq!(two[1].2, None);
        // Task 5 was released by pool-2, then granted to it again.
        let five = history(5);
        assert_eq!(five.len(), 2, "{five:?}");
        assert_eq!(
            (five[0].1.as_str(), five[0].2),
            ("pool-2", Some(AttemptEnd::Released))
        );
        assert_eq!((five[1].1.as_str(), five[1].2), ("pool-2", None));
    });
}

/// A rolling upgrade (and its rollback) mixes this build with the one that wrote the fixture:
/// so this build writes what that build reads. Entries whose commands all have their entry
/// format 1 layout are written untagged, byte for byte as before; so is the snapshot of a
/// state without tokens (format 2). And what issues 14 and 11's builds wrote, this one writes too.
#[tokio::test]
async fn writes_the_bytes_of_the_fixtures() {
    for name in [
        V1_DIR, V2_DIR, V3_DIR, V4_DIR, V5_DIR, V7_DIR, V8_DIR, V9_DIR, V10_DIR,
    ] {
        writes_the_bytes_of(name).await;
    }
}

async fn writes_the_bytes_of(name: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    write_data_dir(dir.path(), name).await;
    let fixture = fixtures_dir().join(name);
    let files = all_files(&fixture);
    assert_eq!(all_files(dir.path()), files);
    for file in files {
        assert!(
            fs::read(dir.path().join(&file)).expect("read") == fs::read(fixture.join(&file)).expect("read"),
            "{} differs from the fixture",
            file.display()
        );
    }
}

/// `EntryPayload::Normal(req)`, untagged or tagged as a format (no command of this build
/// needs a tag yet, so openraft's own types cannot write one). Written only.
#[derive(Debug, Clone)]
struct Normal(Request, Option<u32>);

impl serde::Serialize for Normal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.1 {
            Some(format) => {
                s.serialize_newtype_variant("EntryPayload", 1, "Normal", &AsFormat(&self.0, format))
            }
            None => serde::Serialize::serialize(&EntryPayloadOf::<TypeConfig>::Normal(self.0.clone()), s),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Normal {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom("test payloads are only written"))
    }
}

fn newer_request() -> Request {
    Request {
        now_ms: T0,
        commands: vec![Command::Tick],
    }
}

#[test]
fn tagged_normal_mirrors_openraft_payload() {
    // The mirror is only worth its tests if, tagged as format 1, it is openraft's encoding
    // plus the tag.
    let req = newer_request();
    let mut mirror = encoding::encode(&Normal(req.clone(), Some(1))).unwrap();
    mirror.drain(1..3); // the tag and its format
    assert_eq!(mirror, encoding::encode(&Normal(req, None)).unwrap());
}

/// raft-log writing [`Normal`] payloads: how a newer build's WAL looks to this one.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct NewerWal;

impl raft_log::Types for NewerWal {
    type LogId = Bin<openraft::alias::LogIdOf<TypeConfig>>;
    type LogPayload = Bin<Normal>;
    type Vote = Bin<VoteOf<TypeConfig>>;
    type Callback = WalCallback;
    type UserData = ();

    fn log_index(log_id: &Self::LogId) -> u64 {
        log_id.0.index
    }

    fn payload_size(_: &Self::LogPayload) -> u64 {
        64
    }
}

#[tokio::test]
async fn a_log_tail_written_by_a_newer_build_is_refused_not_truncated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal_dir = dir.path().join(crate::raft::log_store::WAL_DIR);
    fs::create_dir_all(&wal_dir).expect("mkdir");
    let req = newer_request();
    {
        let config = raft_log::Config::new(wal_dir.display());
        let mut wal = raft_log::RaftLog::<NewerWal>::open(Arc::new(config)).expect("open wal");
        wal.append([
            (Bin(lid(1, 1)), Bin(Normal(req.clone(), None))),
            (Bin(lid(1, 2)), Bin(Normal(req.clone(), Some(ENTRY_FORMAT + 1)))),
        ])
        .expect("append");
        let (tx, rx) = tokio::sync::oneshot::channel();
        wal.flush(true, Some(WalCallback::Done(tx))).expect("flush");
        rx.await.expect("flush thread").expect("flushed");
    }
    let chunk = crate::raft::wal::chunk_files(&wal_dir)
        .expect("chunks")
        .pop()
        .expect("a chunk");
    let before = fs::read(&chunk).expect("read");

    let err = LogStore::open(dir.path())
        .err()
        .expect("a newer entry must be refused");
    assert!(matches!(err, StorageError::NewerFormat { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("newer than this build reads") && msg.contains("upgrade this node"),
        "{msg}"
    );
    assert_eq!(fs::read(&chunk).expect("read"), before, "nothing was truncated");
}

#[test]
fn an_append_entries_with_a_newer_entry_is_refused_by_name() {
    let req = newer_request();
    let message = |format: Option<u32>| {
        let payload = encoding::encode(&Normal(req.clone(), format)).unwrap();
        // AppendEntriesRequest { vote, prev_log_id, entries: [Entry { log_id, payload }], leader_commit }
        let mut bytes = codec::encode(&(
            VoteOf::<TypeConfig>::new(2, 1),
            None::<openraft::alias::LogIdOf<TypeConfig>>,
            1u8,
            lid(2, 1),
        ))
        .unwrap();
        bytes.extend(payload);
        bytes.extend(encoding::encode(&None::<openraft::alias::LogIdOf<TypeConfig>>).unwrap());
        bytes
    };
    type Append = openraft::raft::AppendEntriesRequest<TypeConfig>;
    let ok: Append = codec::decode(&message(None)).expect("the untagged mirror is a valid message");
    assert_eq!(ok.entries.len(), 1);
    let err = codec::decode::<Append>(&message(Some(ENTRY_FORMAT + 1))).unwrap_err();
    assert!(err.is_newer_format(), "{err}");
    assert!(err.to_string().contains("upgrade this node"), "{err}");
}
