//! The pool end to end against the real queue state machine, through [`LocalBackend`].

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Deserialize;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use super::core::PIPELINE;
use super::testing::Fault;
use super::testing::LocalBackend;
use super::testing::RecordingBackend;
use super::testing::any_command;
use super::testing::is_complete;
use super::testing::is_lease;
use super::testing::task_spec;
use super::*;
use crate::clock::SystemClock;
use crate::queue::Command;
use crate::queue::Response;
use crate::queue::TaskId;
use crate::queue::TaskSpec;
use crate::queue::TaskState;
use crate::queue::TaskView;
use crate::replica::Replica;

const BOUND: Duration = Duration::from_secs(10);

fn local() -> LocalBackend {
    LocalBackend::new(Arc::new(Replica::default()), Arc::new(SystemClock))
}

fn config(workers: usize) -> PoolConfig {
    PoolConfig {
        worker_name: "test-node".into(),
        workers,
        // Short, so retries and lease expiries elsewhere are noticed fast.
        idle_poll_ms: 20,
        ..PoolConfig::default()
    }
}

fn builtins() -> TaskRegistry {
    let mut r = TaskRegistry::new();
    register_builtins(&mut r);
    r
}

fn submit(local: &LocalBackend, tasks: Vec<TaskSpec>) -> Vec<TaskId> {
    match local.apply(Command::Submit { tasks: tasks.into() }) {
        Response::Submitted(s) => s.into_iter().map(|s| s.id).collect(),
        other => panic!("unexpected response to submit: {other:?}"),
    }
}

/// Wait (bounded) until every task is final, then read them.
async fn wait_final(replica: &Replica, ids: &[TaskId]) -> Vec<TaskView> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    replica.watch_tasks(ids, &tx);
    let mut left: BTreeSet<TaskId> = ids.iter().copied().collect();
    tokio::time::timeout(BOUND, async {
        while !left.is_empty() {
            let id = rx.recv().await.expect("the replica keeps the sender");
            left.remove(&id);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("tasks did not finish in time: {left:?} left"));
    ids.iter()
        .map(|id| {
            replica
                .read(|q| q.task(*id))
                .expect("a final task is kept for its ttl")
        })
        .collect()
}

async fn wait_stats(pool: &PoolHandle, what: &str, f: impl FnMut(&PoolStats) -> bool) {
    let mut stats = pool.watch_stats();
    tokio::time::timeout(BOUND, stats.wait_for(f))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}: {:?}", pool.stats()))
        .expect("the pool publishes stats while alive");
}

fn start(cfg: PoolConfig, registry: TaskRegistry, backend: Arc<dyn Backend>) -> PoolHandle {
    WorkerPool::start(cfg, Arc::new(registry), backend, Handle::current()).expect("pool starts")
}

/// Completions proposed per task, over the whole run.
fn completions_per_task(commands: &[Command]) -> BTreeMap<TaskId, usize> {
    let mut per_task = BTreeMap::new();
    for cmd in commands {
        if let Command::Complete { completions, .. } = cmd {
            for c in completions {
                *per_task.entry(c.lease.task).or_default() += 1;
            }
        }
    }
    per_task
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_noops_succeed_once_each_spending_no_retry() {
    let local = local();
    let recorder = Arc::new(RecordingBackend::new(Arc::new(local.clone())));
    let pool = start(
        PoolConfig {
            max_completion_batch: 64,
            ..config(4)
        },
        builtins(),
        recorder.clone(),
    );
    let ids = submit(&local, (0..1000).map(|_| task_spec("noop", "")).collect());

    let tasks = wait_final(local.replica(), &ids).await;
    for t in &tasks {
        assert_eq!((t.state, t.max_retries), (TaskState::Succeeded, 0), "{t:?}");
        assert_eq!(t.result.as_deref(), Some(&b"null"[..]));
    }
    wait_stats(&pool, "every completion accepted", |s| s.in_flight == 0).await;
    // A noop never fails, so a task runs on its first attempt unless the pool handed it back
    // unstarted (lease-ahead on a loaded machine: a scheduling hiccup passes for a stall);
    // each such release is the only way to a later attempt.
    let stats = pool.stats();
    let handed_back = stats.unbuffered_total + stats.short_lease_released_total;
    let later_attempts: u64 = tasks.iter().map(|t| u64::from(t.attempt) - 1).sum();
    assert_eq!(later_attempts, handed_back, "{stats:?}");
    let per_task = completions_per_task(&recorder.commands());
    assert_eq!(per_task.len(), 1000);
    assert!(
        per_task.values().all(|n| *n == 1),
        "a completion was proposed twice"
    );
    assert_eq!(
        (stats.leased_total, stats.succeeded_total, stats.completed_total),
        (1000 + handed_back, 1000, 1000)
    );
    assert_eq!(stats.stale_total, 0);
    for cmd in recorder.commands() {
        if let Command::Complete { completions, .. } = cmd {
            assert!(
                completions.len() <= 64,
                "batch over the cap: {}",
                completions.len()
            );
        }
    }
    let c = recorder.concurrency();
    assert!(
        (1..=PIPELINE).contains(&c.lease_max) && (1..=PIPELINE).contains(&c.complete_max),
        "leases or completes in flight beyond the pipeline: {c:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_returns_its_arguments_as_the_result() {
    let local = local();
    let _pool = start(config(2), builtins(), Arc::new(local.clone()));
    let args = r#"{"x": [1, 2, 3], "y": "z"}"#;
    let ids = submit(&local, vec![task_spec("echo", args)]);
    let t = &wait_final(local.replica(), &ids).await[0];
    assert_eq!(t.state, TaskState::Succeeded);
    assert_eq!(t.result.as_deref(), Some(args.as_bytes()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_and_unknown_names_are_dead_at_once() {
    let local = local();
    let _pool = start(config(2), builtins(), Arc::new(local.clone()));
    let retries = |mut spec: TaskSpec| {
        spec.max_retries = 5;
        spec
    };
    let ids = submit(
        &local,
        vec![
            retries(task_spec("sleep", r#"{"ms":"soon"}"#)),
            retries(task_spec("no-such-task", "")),
        ],
    );
    let tasks = wait_final(local.replica(), &ids).await;
    assert_eq!((tasks[0].state, tasks[0].attempt), (TaskState::Dead, 1));
    let error = tasks[0].error.as_deref().unwrap_or_default();
    assert!(
        error.starts_with("invalid arguments for task 'sleep': invalid type: string \"soon\""),
        "{error}"
    );
    assert_eq!((tasks[1].state, tasks[1].attempt), (TaskState::Dead, 1));
    assert_eq!(
        tasks[1].error.as_deref(),
        Some("unknown task name 'no-such-task'")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_with_two_retries_is_dead_after_three_attempts() {
    let local = local();
    let _pool = start(config(2), builtins(), Arc::new(local.clone()));
    let mut spec = task_spec("fail", r#"{"message":"boom"}"#);
    spec.max_retries = 2;
    spec.backoff_ms = 5;
    let ids = submit(&local, vec![spec]);
    let t = &wait_final(local.replica(), &ids).await[0];
    assert_eq!((t.state, t.attempt), (TaskState::Dead, 3));
    assert_eq!(t.error.as_deref(), Some("boom"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_limit_fails_a_long_task_quickly() {
    let local = local();
    let _pool = start(config(2), builtins(), Arc::new(local.clone()));
    let mut spec = task_spec("sleep", r#"{"ms":5000}"#);
    spec.time_limit_ms = Some(200);
    let started = tokio::time::Instant::now();
    let ids = submit(&local, vec![spec]);
    let t = &wait_final(local.replica(), &ids).await[0];
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(t.state, TaskState::Dead);
    assert_eq!(t.error.as_deref(), Some("time limit of 200 ms exceeded"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_a_task_longer_than_its_lease_on_its_first_attempt() {
    let local = local();
    // Two workers: the idle one keeps proposing leases, which advance the queue's clock, so an
    // unheartbeated lease would really expire.
    // Five heartbeats per lease: a loaded machine may delay a few.
    let cfg = PoolConfig {
        lease_ms: 1000,
        heartbeat_interval_ms: 200,
        ..config(2)
    };
    let pool = start(cfg, builtins(), Arc::new(local.clone()));
    let ids = submit(&local, vec![task_spec("sleep", r#"{"ms":2500}"#)]);
    let t = &wait_final(local.replica(), &ids).await[0];
    assert_eq!((t.state, t.attempt), (TaskState::Succeeded, 1));
    assert_eq!(pool.stats().stale_total, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_aborts_running_tasks_and_releases_them_to_pending() {
    let local = local();
    let pool = start(config(3), builtins(), Arc::new(local.clone()));
    let mut done = submit(&local, vec![task_spec("noop", "")]);
    wait_final(local.replica(), &done).await;
    let long: Vec<TaskId> = submit(
        &local,
        (0..3).map(|_| task_spec("sleep", r#"{"ms":60000}"#)).collect(),
    );
    wait_stats(&pool, "three running tasks", |s| s.busy == 3).await;

    let started = tokio::time::Instant::now();
    let report = pool.drain(Duration::from_millis(200)).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(3),
        "drain took {took:?}"
    );
    assert_eq!(
        report,
        DrainReport {
            finished: 0,
            released: 3,
            aborted: 3,
            unflushed: 0
        }
    );
    for id in &long {
        let t = local.replica().read(|q| q.task(*id)).expect("task exists");
        assert_eq!(t.state, TaskState::Pending, "{t:?}");
    }
    // Stopped: nothing new is leased.
    done = submit(&local, vec![task_spec("noop", "")]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        local.replica().read(|q| q.task(done[0])).map(|t| t.state),
        Some(TaskState::Pending)
    );
    assert_eq!(pool.drain(Duration::ZERO).await, DrainReport::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_lets_tasks_finish_within_the_grace() {
    let local = local();
    let pool = start(config(2), builtins(), Arc::new(local.clone()));
    let ids = submit(
        &local,
        (0..2).map(|_| task_spec("sleep", r#"{"ms":100}"#)).collect(),
    );
    wait_stats(&pool, "two running tasks", |s| s.busy == 2).await;
    let report = pool.drain(Duration::from_secs(5)).await;
    assert_eq!(
        report,
        DrainReport {
            finished: 2,
            released: 0,
            aborted: 0,
            unflushed: 0
        }
    );
    for t in wait_final(local.replica(), &ids).await {
        assert_eq!(t.state, TaskState::Succeeded);
    }
}

#[derive(Deserialize)]
struct ProbeArgs {
    ms: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_never_exceed_free_capacity() {
    const WORKERS: usize = 3;
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let mut registry = TaskRegistry::new();
    let (r, p) = (running.clone(), peak.clone());
    registry.register("probe", move |args: ProbeArgs| {
        let (running, peak) = (r.clone(), p.clone());
        async move {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(args.ms)).await;
            running.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, TaskError>(())
        }
    });
    let local = local();
    let r = running.clone();
    let replica = local.replica().clone();
    // Checked as each lease is proposed. Handlers that already started still hold their
    // workers, and so does the pool's standing capacity (tasks may be granted to it at any
    // moment), so asking for more than the rest would be prefetching (off here: `--prefetch
    // 0`; lease-ahead is the core's, tested in `core/ahead_tests.rs` and its proptests).
    let recorder = Arc::new(
        RecordingBackend::new(Arc::new(local.clone())).with_check(move |cmd| {
            if let Command::Lease {
                max, pool: worker, ..
            } = cmd
            {
                let running = r.load(Ordering::SeqCst);
                let standing = replica.read(|q| q.standing_capacity(worker)) as usize;
                assert!(
                    *max as usize + running + standing <= WORKERS,
                    "lease of {max} with {running} running and {standing} standing"
                );
            }
        }),
    );
    let cfg = PoolConfig {
        prefetch: Prefetch::Fixed(0),
        ..config(WORKERS)
    };
    let pool = start(cfg, registry, recorder.clone());
    // Waves: the first finds the pool idle with standing capacity, the rest race with it.
    let mut ids = Vec::new();
    for wave in 0..6 {
        wait_stats(&pool, "the previous wave done", |s| {
            s.busy == 0 && s.in_flight == 0
        })
        .await;
        ids.extend(submit(
            &local,
            (0..10)
                .map(|i| task_spec("probe", &format!(r#"{{"ms":{}}}"#, 1 + (i + wave) % 7)))
                .collect(),
        ));
        tokio::time::sleep(Duration::from_millis(3)).await;
        ids.extend(submit(&local, vec![task_spec("probe", r#"{"ms":1}"#)]));
    }
    for t in wait_final(local.replica(), &ids).await {
        assert_eq!(t.state, TaskState::Succeeded, "{t:?}");
    }
    assert!(peak.load(Ordering::SeqCst) <= WORKERS);
    assert!(peak.load(Ordering::SeqCst) > 1, "tasks never ran in parallel");
    assert!(recorder.concurrency().lease_max <= PIPELINE);
    drop(pool);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_proposals_are_retried_and_completions_recorded_once() {
    let local = local();
    let recorder = Arc::new(RecordingBackend::new(Arc::new(local.clone())));
    // Short leases: a lost reply to an entry that also carried a `Lease` strands its grants
    // until they expire.
    // No lease-ahead: only the injected faults may strand or re-run a task. Leases long enough
    // that a loaded machine's delayed heartbeat does not expire one.
    let cfg = PoolConfig {
        lease_ms: 1000,
        heartbeat_interval_ms: 200,
        prefetch: Prefetch::Fixed(0),
        ..config(2)
    };
    let pool = start(cfg, builtins(), recorder.clone());
    // Proposals that never reach the log, of any kind; completions that are applied but whose
    // reply is lost (their retries are then stale, and must change nothing).
    recorder.inject(4, Fault::BeforeApply, any_command);
    recorder.inject(3, Fault::AfterApply, is_complete);
    let ids = submit(
        &local,
        (0..50).map(|_| task_spec("sleep", r#"{"ms":5}"#)).collect(),
    );
    for t in wait_final(local.replica(), &ids).await {
        // Attempt 2: granted by the `Lease` of an entry whose reply was lost, run after expiry.
        assert_eq!(t.state, TaskState::Succeeded, "{t:?}");
        assert!((1..=2).contains(&t.attempt), "{t:?}");
    }
    wait_stats(&pool, "every completion accepted", |s| s.in_flight == 0).await;
    assert_eq!(
        recorder.pending_faults(),
        0,
        "the injected failures were not all hit"
    );
    let per_task = completions_per_task(&recorder.commands());
    assert_eq!(per_task.len(), 50, "a completion was dropped");
    // A lost reply makes its batch, already recorded, come back stale on the retry; a retry
    // may itself lose its reply (then its own retry is the stale one), so at least one is.
    let stats = pool.stats();
    assert!(stats.stale_total >= 1, "{stats:?}");
    assert_eq!(stats.completed_total, 50, "{stats:?}");
}

/// A lost reply to a `Lease` strands its grants: the pool never learns of them. They come back
/// when their leases expire (a lost lease, which uses no retry) and then run normally. A
/// `Complete` in the same entry loses its reply too: its retry comes back stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_of_a_lost_lease_reply_run_again_after_expiry() {
    let local = local();
    let recorder = Arc::new(RecordingBackend::new(Arc::new(local.clone())));
    // No lease-ahead: only the injected faults may strand or re-run a task. Leases long enough
    // that a loaded machine's delayed heartbeat does not expire one.
    let cfg = PoolConfig {
        lease_ms: 1000,
        heartbeat_interval_ms: 200,
        prefetch: Prefetch::Fixed(0),
        ..config(2)
    };
    let pool = start(cfg, builtins(), recorder.clone());
    recorder.inject(1, Fault::AfterApply, is_lease);
    let ids = submit(
        &local,
        (0..10)
            .map(|_| TaskSpec {
                max_retries: 1,
                ..task_spec("noop", "")
            })
            .collect(),
    );
    let tasks = wait_final(local.replica(), &ids).await;
    assert!(tasks.iter().all(|t| t.state == TaskState::Succeeded), "{tasks:?}");
    let rerun = tasks.iter().filter(|t| t.attempt == 2).count();
    assert!(
        (1..=2).contains(&rerun),
        "expected the stranded grants to run again: {tasks:?}"
    );
    // At most the two workers' completions rode in the entry whose reply was lost.
    assert!(pool.stats().stale_total <= 2, "{:?}", pool.stats());
}

#[test]
fn config_is_validated() {
    let bad = |cfg: PoolConfig| matches!(cfg.validate(), Err(WorkerError::Config(_)));
    assert!(PoolConfig::default().validate().is_ok());
    let defaults = PoolConfig::default();
    assert_eq!(defaults.heartbeat_interval_ms, defaults.lease_ms / 3);
    assert!(bad(PoolConfig {
        workers: 0,
        ..PoolConfig::default()
    }));
    assert!(bad(PoolConfig {
        heartbeat_interval_ms: 30_000,
        ..PoolConfig::default()
    }));
    assert!(bad(PoolConfig {
        max_completion_batch: 0,
        ..PoolConfig::default()
    }));
}

/// A pool that dies holding leases (process killed) and starts again under the same name runs
/// those tasks at once, on a new attempt, without waiting for the leases to expire and
/// without using up a retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_pool_releases_the_leases_of_its_earlier_run() {
    let local = local();
    // Leases far longer than the test: only the release can bring the tasks back in time.
    let cfg = PoolConfig {
        lease_ms: 600_000,
        heartbeat_interval_ms: 200_000,
        ..config(2)
    };
    let first = start(cfg.clone(), builtins(), Arc::new(local.clone()));
    let ids = submit(
        &local,
        (0..2).map(|_| task_spec("sleep", r#"{"ms": 60000}"#)).collect(),
    );
    let mut stats = first.watch_stats();
    tokio::time::timeout(BOUND, stats.wait_for(|s| s.busy == 2))
        .await
        .expect("both tasks start")
        .expect("stats channel open");
    // Dropping the handle stops the pool without releasing anything, like a SIGKILL would.
    drop(first);
    for id in &ids {
        assert_eq!(
            local.replica().read(|q| q.task(*id)).unwrap().state,
            TaskState::Leased
        );
    }
    // The second run finds the tasks still leased to its name, releases them, runs them.
    let mut registry = TaskRegistry::new();
    registry.register("sleep", |_: serde_json::Value| async { Ok::<_, TaskError>(()) });
    let second = start(cfg, registry, Arc::new(local.clone()));
    let tasks = wait_final(local.replica(), &ids).await;
    for t in &tasks {
        assert_eq!((t.state, t.attempt), (TaskState::Succeeded, 2), "{t:?}");
    }
    drop(second);
}

/// An idle pool leaves standing capacity; a task submitted then is granted to it in the
/// submit's own entry and runs without the pool proposing a `Lease` for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_with_standing_capacity_runs_a_submitted_task_without_proposing_a_lease() {
    let local = local();
    let recorder = Arc::new(RecordingBackend::new(Arc::new(local.clone())));
    let pool = start(config(2), builtins(), recorder.clone());
    wait_stats(&pool, "standing capacity for both workers", |s| s.standing == 2).await;
    assert_eq!(local.replica().read(|q| q.standing_capacity("test-node")), 2);
    let leases_before = recorder.commands().iter().filter(|c| is_lease(c)).count();

    let ids = submit(&local, vec![task_spec("echo", r#""hi""#)]);
    let t = &wait_final(local.replica(), &ids).await[0];
    assert_eq!((t.state, t.attempt), (TaskState::Succeeded, 1), "{t:?}");
    let commands = recorder.commands();
    let completed_at = commands
        .iter()
        .position(
            |c| matches!(c, Command::Complete { completions, .. } if completions[0].lease.task == ids[0]),
        )
        .expect("the task was completed by the pool");
    let leases = commands[..completed_at].iter().filter(|c| is_lease(c)).count();
    assert_eq!(
        leases, leases_before,
        "a lease was proposed for the task: {commands:?}"
    );
    wait_stats(&pool, "the freed worker standing again", |s| {
        s.standing >= s.workers && s.in_flight == 0
    })
    .await;
    assert_eq!(pool.stats().leased_total, 1);

    // Draining clears the standing capacity: nothing more is granted to the pool.
    pool.drain(Duration::from_secs(1)).await;
    assert_eq!(local.replica().read(|q| q.standing_capacity("test-node")), 0);
    let later = submit(&local, vec![task_spec("noop", "")]);
    assert_eq!(
        local.replica().read(|q| q.task(later[0])).map(|t| t.state),
        Some(TaskState::Pending)
    );
}

/// A grant whose lease is no longer the pool's by the time the pool hears of it (here released
/// later in the same entry, as a grant replayed from before a `ReleasePool` would be) is
/// dropped, not run; the task runs once, on its next lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_no_longer_held_on_the_replica_is_dropped() {
    let runs = Arc::new(AtomicUsize::new(0));
    let mut registry = TaskRegistry::new();
    let counter = runs.clone();
    registry.register("count", move |_: serde_json::Value| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok::<_, TaskError>(())
        }
    });
    let local = local();
    let pool = start(config(2), registry, Arc::new(local.clone()));
    wait_stats(&pool, "standing capacity", |s| s.standing == 2).await;
    let responses = local.replica().apply(&crate::queue::Request {
        now_ms: crate::clock::Clock::now_ms(&SystemClock),
        commands: vec![
            Command::Submit {
                tasks: vec![task_spec("count", "{}")].into(),
            },
            Command::ReleasePool {
                pool: "test-node".into(),
            },
        ],
    });
    let Response::Submitted(s) = &responses[0] else {
        panic!("{responses:?}")
    };
    assert_eq!(responses[1], Response::ReleasedPool(1));
    let t = &wait_final(local.replica(), &[s[0].id]).await[0];
    assert_eq!((t.state, t.attempt), (TaskState::Succeeded, 2), "{t:?}");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(pool.stats().stale_grants_total, 1);
}

/// A snapshot install replaces the replica's state without the applies in between: the pool
/// takes its standing capacity from the new state (here none, an empty queue), stands again,
/// and a task submitted then is granted to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_snapshot_install_the_pool_stands_again_from_the_new_state() {
    let local = local();
    let pool = start(config(2), builtins(), Arc::new(local.clone()));
    wait_stats(&pool, "standing capacity", |s| s.standing == 2).await;
    local.replica().replace(crate::queue::QueueState::new());
    // The fresh state knows no pool; the resync frees the pool's capacity, it leases again.
    tokio::time::timeout(BOUND, async {
        while local.replica().read(|q| q.standing_capacity("test-node")) != 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the pool stands again");
    wait_stats(&pool, "standing again", |s| s.standing == 2).await;
    let ids = submit(&local, vec![task_spec("noop", "")]);
    let t = &wait_final(local.replica(), &ids).await[0];
    assert_eq!((t.state, t.attempt), (TaskState::Succeeded, 1), "{t:?}");
}
