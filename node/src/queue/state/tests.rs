//! Unit tests of every command and lifecycle path. Every step also checks the invariants.
//!
//! Here: the harness ([`H`] applies one entry and checks the invariants after it) and the tests
//! of `apply` as a whole, the commands `state.rs` keeps (submit, cancel, purge, pause, node
//! ids) and the reads. The tests of each concern sit in `tests/` under the name of its file:
//! `lease`, `index`, `interner`, `key_index`, `task`, `table`, `invariants`, `standing`,
//! `format`, `v1` (and `request`, the log entry's size estimates). `proptests.rs` drives
//! `apply` as a whole with random entries.

use bytes::Bytes;

use super::*;

mod attempts;
mod format;
mod index;
mod interner;
mod invariants;
mod key_index;
mod lease;
mod limits;
mod limits_proptests;
mod listing;
mod operator;
mod request;
mod standing;
mod table;
mod task;
mod v1;
mod workflow;
mod workflow_proptests;

pub(super) fn spec(name: &str) -> TaskSpec {
    TaskSpec {
        name: name.into(),
        queue: String::new(),
        args: Bytes::from_static(b"{}"),
        priority: 0,
        eta_ms: None,
        countdown_ms: None,
        max_retries: 0,
        backoff_ms: 0,
        time_limit_ms: None,
        idempotency_key: None,
        result_ttl_ms: 1_000,
        headers: Default::default(),
        concurrency_key: None,
    }
}

fn in_queue(mut s: TaskSpec, queue: &str) -> TaskSpec {
    s.queue = queue.into();
    s
}

fn ok(bytes: &'static [u8]) -> Outcome {
    Outcome::Success(Bytes::from_static(bytes))
}

fn failure(retry: bool) -> Outcome {
    Outcome::Failure {
        error: "boom".into(),
        retry,
    }
}

/// A state plus helpers that apply one entry and check the invariants after it.
#[derive(Default)]
struct H {
    s: QueueState,
}

impl H {
    fn apply(&mut self, now: UnixMs, commands: Vec<Command>) -> (Vec<Response>, ApplyEffects) {
        let mut fx = ApplyEffects::default();
        let n = commands.len();
        let r = self.s.apply(
            &Request {
                now_ms: now,
                commands,
            },
            &mut fx,
        );
        assert_eq!(r.len(), n);
        self.s.check_invariants().unwrap();
        self.s.callbacks_exact().unwrap();
        (r, fx)
    }

    fn tick(&mut self, now: UnixMs) -> ApplyEffects {
        self.apply(now, vec![Command::Tick]).1
    }

    fn submit(&mut self, now: UnixMs, tasks: Vec<TaskSpec>) -> Vec<TaskId> {
        match self
            .apply(now, vec![Command::Submit { tasks: tasks.into() }])
            .0
            .remove(0)
        {
            Response::Submitted(s) => s.into_iter().map(|s| s.id).collect(),
            r => panic!("unexpected {r:?}"),
        }
    }

    fn lease_from(&mut self, now: UnixMs, queues: &[&str], max: u32, lease_ms: u64) -> Vec<Grant> {
        let queues = queues.iter().map(|q| q.to_string()).collect();
        let cmd = Command::Lease {
            pool: "w1".into(),
            queues,
            max,
            lease_ms,
            standing_ticket: None,
        };
        match self.apply(now, vec![cmd]).0.remove(0) {
            Response::Leased(g) => g,
            r => panic!("unexpected {r:?}"),
        }
    }

    fn lease(&mut self, now: UnixMs, max: u32, lease_ms: u64) -> Vec<LeaseRef> {
        self.lease_from(now, &[], max, lease_ms)
            .into_iter()
            .map(|g| g.lease)
            .collect()
    }

    fn complete(&mut self, now: UnixMs, lease: LeaseRef, outcome: Outcome) -> CompletionResult {
        let cmd = Command::Complete {
            pool: "w1".into(),
            completions: vec![Completion { lease, outcome }],
        };
        match self.apply(now, vec![cmd]).0.remove(0) {
            Response::Completed(mut c) => c.remove(0),
            r => panic!("unexpected {r:?}"),
        }
    }

    fn heartbeat(&mut self, now: UnixMs, lease: LeaseRef, lease_ms: u64) -> bool {
        let cmd = Command::Heartbeat {
            pool: "w1".into(),
            leases: vec![lease],
            lease_ms,
        };
        match self.apply(now, vec![cmd]).0.remove(0) {
            Response::Heartbeated(mut b) => b.remove(0),
            r => panic!("unexpected {r:?}"),
        }
    }

    fn release(&mut self, now: UnixMs, lease: LeaseRef) -> (bool, ApplyEffects) {
        let cmd = Command::Release {
            pool: "w1".into(),
            leases: vec![lease],
        };
        let (mut r, fx) = self.apply(now, vec![cmd]);
        match r.remove(0) {
            Response::Released(mut b) => (b.remove(0), fx),
            r => panic!("unexpected {r:?}"),
        }
    }

    fn cancel(&mut self, now: UnixMs, ids: Vec<TaskId>) -> Vec<bool> {
        match self.apply(now, vec![Command::Cancel { ids }]).0.remove(0) {
            Response::Cancelled(b) => b,
            r => panic!("unexpected {r:?}"),
        }
    }

    fn pause(&mut self, now: UnixMs, queue: &str, paused: bool) -> ApplyEffects {
        self.apply(
            now,
            vec![Command::PauseQueue {
                queue: queue.into(),
                paused,
            }],
        )
        .1
    }

    fn state(&self, id: TaskId) -> Option<TaskState> {
        self.s.task(id).map(|t| t.state)
    }
}

fn lr(task: TaskId, attempt: u32) -> LeaseRef {
    LeaseRef { task, attempt }
}

#[test]
fn new_state_is_empty_and_consistent() {
    let s = QueueState::new();
    s.check_invariants().unwrap();
    assert_eq!(s.now_ms(), 0);
    assert_eq!(s.task(1), None);
    assert!(s.stats().is_empty());
    assert_eq!(s.next_deadline_ms(), None);
    assert_eq!(s.leasable(&[]), 0);
    assert_eq!(s.task_count(), 0);
}

#[test]
fn submit_lease_complete_success() {
    let mut h = H::default();
    let mut t = spec("add");
    t.time_limit_ms = Some(5_000);
    let (r, fx) = h.apply(
        100,
        vec![Command::Submit {
            tasks: vec![t, spec("mul")].into(),
        }],
    );
    assert_eq!(
        r,
        vec![Response::Submitted(vec![
            Submitted {
                id: 1,
                duplicate: false
            },
            Submitted {
                id: 2,
                duplicate: false
            }
        ])]
    );
    assert_eq!(fx.became_pending, 2);
    let v = h.s.task(1).unwrap();
    assert_eq!(
        (v.name.as_str(), v.queue.as_str(), v.state, v.attempt),
        ("add", DEFAULT_QUEUE, TaskState::Pending, 0)
    );
    assert_eq!((v.created_ms, v.updated_ms), (100, 100));

    let grants = h.lease_from(200, &[], 1, 30_000);
    assert_eq!(
        grants,
        vec![Grant {
            lease: lr(1, 1),
            name: "add".into(),
            queue: DEFAULT_QUEUE.into(),
            args: Bytes::from_static(b"{}"),
            time_limit_ms: Some(5_000),
            lease_deadline_ms: 30_200,
            headers: Default::default(),
        }]
    );
    assert_eq!(h.s.current_lease(1), Some((lr(1, 1), "w1", 30_200)));
    assert_eq!(h.state(1), Some(TaskState::Leased));
    assert_eq!(h.s.task(1).unwrap().attempt, 1);
    assert_eq!(h.s.next_deadline_ms(), Some(30_200));

    let cmd = Command::Complete {
        pool: "w1".into(),
        completions: vec![Completion {
            lease: lr(1, 1),
            outcome: ok(b"42"),
        }],
    };
    let (r, fx) = h.apply(300, vec![cmd]);
    assert_eq!(r, vec![Response::Completed(vec![CompletionResult::Accepted])]);
    assert_eq!(fx.finished, vec![1]);
    let v = h.s.task(1).unwrap();
    assert_eq!(v.state, TaskState::Succeeded);
    assert_eq!(v.result, Some(Bytes::from_static(b"42")));
    assert_eq!(v.error, None);
    assert_eq!((v.created_ms, v.updated_ms), (100, 300));
    assert_eq!(h.s.current_lease(1), None);
    assert_eq!(
        h.s.stats()[DEFAULT_QUEUE],
        QueueCounts {
            pending: 1,
            succeeded: 1,
            ..Default::default()
        }
    );
}

#[test]
fn ids_are_sequential_and_never_reused() {
    let mut h = H::default();
    let mut s = spec("a");
    s.result_ttl_ms = 0;
    assert_eq!(h.submit(0, vec![s.clone(), s.clone()]), vec![1, 2]);
    assert_eq!(h.cancel(0, vec![1, 2]), vec![true, true]);
    h.tick(0);
    assert_eq!(h.s.task_count(), 0);
    assert_eq!(h.submit(0, vec![s]), vec![3]);
}

#[test]
fn eta_and_countdown_schedule_tasks() {
    let mut h = H::default();
    let mut eta = spec("eta");
    eta.eta_ms = Some(5_000);
    let mut countdown = spec("countdown");
    countdown.countdown_ms = Some(2_000);
    let mut both = spec("both");
    both.eta_ms = Some(1_500);
    both.countdown_ms = Some(3_000);
    let mut past = spec("past");
    past.eta_ms = Some(10);
    let mut zero = spec("zero");
    zero.countdown_ms = Some(0);
    let (_, fx) = h.apply(
        1_000,
        vec![Command::Submit {
            tasks: vec![eta, countdown, both, past, zero].into(),
        }],
    );
    assert_eq!(fx.became_pending, 2);
    let states: Vec<_> = (1..=5).map(|id| h.state(id).unwrap()).collect();
    use TaskState::*;
    assert_eq!(states, vec![Scheduled, Scheduled, Scheduled, Pending, Pending]);
    assert_eq!(h.s.next_deadline_ms(), Some(3_000));
    assert_eq!(h.tick(2_999).became_pending, 0);
    let fx = h.tick(4_000); // countdown (3_000) and both (max(1_500, 4_000) = 4_000)
    assert_eq!(fx.became_pending, 2);
    assert_eq!(h.state(1), Some(Scheduled));
    assert_eq!(h.state(3), Some(Pending));
    assert_eq!(h.s.stats()[DEFAULT_QUEUE].scheduled, 1);
    h.tick(5_000);
    assert_eq!(h.state(1), Some(Pending));
    assert_eq!(h.s.next_deadline_ms(), None);
}

#[test]
fn paused_queue_is_skipped_and_shown() {
    let mut h = H::default();
    h.submit(
        0,
        vec![
            in_queue(spec("a1"), "a"),
            in_queue(spec("b1"), "b"),
            in_queue(spec("a2"), "a"),
        ],
    );
    h.pause(1, "a", true);
    assert!(h.s.stats()["a"].paused);
    assert!(!h.s.stats()["b"].paused);
    assert_eq!(h.s.leasable(&[]), 1);
    assert_eq!(h.s.leasable(&["a".into()]), 0);
    let g = h.lease_from(1, &["a", "b"], 10, 100);
    assert_eq!(g.len(), 1);
    assert_eq!(g[0].queue, "b");
    // Pausing twice changes nothing; un-pausing wakes workers for its pending tasks.
    h.pause(1, "a", true);
    assert_eq!(h.pause(2, "a", false).became_pending, 2);
    assert_eq!(h.pause(2, "a", false).became_pending, 0);
    assert_eq!(h.lease_from(3, &["a"], 10, 100).len(), 2);
    // An empty queue can be paused: it then shows in stats until un-paused.
    h.pause(4, "idle", true);
    assert_eq!(
        h.s.stats()["idle"],
        QueueCounts {
            paused: true,
            ..Default::default()
        }
    );
    h.pause(5, "idle", false);
    assert!(!h.s.stats().contains_key("idle"));
    // Un-pausing an unknown queue is a no-op.
    h.pause(5, "ghost", false);
    assert!(!h.s.stats().contains_key("ghost"));
    // Submitting into a paused queue keeps the tasks pending but not leasable.
    h.pause(6, "", true);
    h.submit(6, vec![spec("d")]);
    assert_eq!(h.s.stats()[DEFAULT_QUEUE].pending, 1);
    assert!(h.lease(6, 10, 100).is_empty());
}

#[test]
fn cancel_in_each_state() {
    let mut h = H::default();
    let mut scheduled = spec("scheduled");
    scheduled.eta_ms = Some(1_000);
    let mut retrying = spec("retrying");
    retrying.max_retries = 1;
    retrying.backoff_ms = 500;
    // Ids: 1 retrying, 2 leased, 3 succeeded, 4 scheduled, 5 pending.
    h.submit(0, vec![retrying, spec("leased"), spec("succeeded")]);
    let l = h.lease(0, 3, 100);
    h.complete(1, l[0], failure(true));
    h.complete(1, l[2], ok(b""));
    h.submit(2, vec![scheduled, spec("pending")]);
    use TaskState::*;
    let before: Vec<_> = (1..=5).map(|id| h.state(id).unwrap()).collect();
    assert_eq!(before, vec![Retrying, Leased, Succeeded, Scheduled, Pending]);

    let (r, fx) = h.apply(
        3,
        vec![Command::Cancel {
            ids: vec![1, 2, 3, 4, 5, 5, 99, 0],
        }],
    );
    assert_eq!(
        r,
        vec![Response::Cancelled(vec![
            true, false, false, true, true, false, false, false
        ])]
    );
    assert_eq!(fx.finished, vec![1, 4, 5]);
    let after: Vec<_> = (1..=5).map(|id| h.state(id).unwrap()).collect();
    assert_eq!(after, vec![Cancelled, Leased, Succeeded, Cancelled, Cancelled]);
    // Cancelled tasks never come back: their timers are gone and they are not leasable.
    // (Both were due by 1_002; the results expire at 3 + 1_000.)
    h.tick(1_002);
    assert_eq!(h.state(1), Some(Cancelled));
    assert_eq!(h.state(4), Some(Cancelled));
    // Only the task whose lease expired (2) is leasable again; cancelled ones never are.
    let again: Vec<TaskId> = h.lease(1_002, 10, 100).iter().map(|l| l.task).collect();
    assert_eq!(again, vec![2]);
    h.tick(1_003);
    assert_eq!((h.state(1), h.state(4), h.state(5)), (None, None, None));
}

#[test]
fn results_are_kept_for_their_ttl_then_purged() {
    let mut h = H::default();
    let mut s = spec("a");
    s.result_ttl_ms = 500;
    h.submit(0, vec![s, in_queue(spec("b"), "other")]);
    let l = h.lease(0, 1, 1_000)[0];
    h.complete(100, l, ok(b"r"));
    assert_eq!(h.s.next_deadline_ms(), Some(600));
    h.tick(599);
    assert_eq!(h.s.task(1).unwrap().result, Some(Bytes::from_static(b"r")));
    h.tick(600);
    assert_eq!(h.s.task(1), None);
    // The default queue held only that task, so it disappears; names are released.
    assert!(!h.s.stats().contains_key(DEFAULT_QUEUE));
    assert_eq!(h.s.task_names.get("a"), None);
    assert!(h.s.stats().contains_key("other"));
}

#[test]
fn zero_ttl_purges_on_the_next_apply() {
    let mut h = H::default();
    let mut s = spec("a");
    s.result_ttl_ms = 0;
    h.submit(0, vec![s]);
    let l = h.lease(0, 1, 100)[0];
    h.complete(5, l, ok(b""));
    // Still there right after the entry that finished it, gone at the next one.
    assert_eq!(h.state(1), Some(TaskState::Succeeded));
    assert_eq!(h.s.next_deadline_ms(), Some(5));
    h.tick(5);
    assert_eq!(h.s.task(1), None);
}

#[test]
fn purge_queue_cancels_waiting_tasks_only() {
    let mut h = H::default();
    let mut scheduled = in_queue(spec("s"), "q");
    scheduled.eta_ms = Some(100);
    let mut retrying = in_queue(spec("r"), "q");
    retrying.max_retries = 3;
    retrying.backoff_ms = 100;
    h.submit(0, vec![retrying, in_queue(spec("l"), "q")]);
    let l = h.lease(0, 2, 1_000);
    h.complete(0, l[0], failure(true));
    h.submit(
        0,
        vec![
            scheduled,
            in_queue(spec("p"), "q"),
            in_queue(spec("p2"), "q"),
            spec("other"),
        ],
    );
    let (r, fx) = h.apply(1, vec![Command::PurgeQueue { queue: "q".into() }]);
    assert_eq!(r, vec![Response::Purged(4)]);
    assert_eq!(fx.finished, vec![1, 3, 4, 5]);
    let c = &h.s.stats()["q"];
    assert_eq!(
        (c.leased, c.cancelled, c.pending, c.scheduled, c.retrying),
        (1, 4, 0, 0, 0)
    );
    assert_eq!(h.state(6), Some(TaskState::Pending));
    let (r, _) = h.apply(
        1,
        vec![
            Command::PurgeQueue { queue: "q".into() },
            Command::PurgeQueue { queue: "nope".into() },
        ],
    );
    assert_eq!(r, vec![Response::Purged(0), Response::Purged(0)]);
    let (r, _) = h.apply(1, vec![Command::PurgeQueue { queue: String::new() }]);
    assert_eq!(r, vec![Response::Purged(1)]);
}

#[test]
fn time_never_runs_backwards() {
    let mut h = H::default();
    h.tick(1_000);
    h.submit(500, vec![spec("a")]);
    assert_eq!(h.s.now_ms(), 1_000);
    let v = h.s.task(1).unwrap();
    assert_eq!((v.created_ms, v.updated_ms), (1_000, 1_000));
    let g = h.lease_from(10, &[], 1, 100);
    assert_eq!(g[0].lease_deadline_ms, 1_100);
}

#[test]
fn effects_report_finished_and_became_pending() {
    let mut h = H::default();
    let mut scheduled = spec("s");
    scheduled.eta_ms = Some(50);
    let mut retry = spec("r");
    retry.max_retries = 1;
    retry.backoff_ms = 10;
    h.submit(0, vec![retry, spec("ok"), spec("dead"), spec("expire")]);
    let l = h.lease(0, 4, 40);
    let (_, fx) = h.apply(
        10,
        vec![
            Command::Submit {
                tasks: vec![scheduled, spec("p")].into(),
            },
            Command::Complete {
                pool: "w".into(),
                completions: vec![
                    Completion {
                        lease: l[0],
                        outcome: failure(true),
                    },
                    Completion {
                        lease: l[1],
                        outcome: ok(b""),
                    },
                    Completion {
                        lease: l[2],
                        outcome: failure(false),
                    },
                ],
            },
            Command::Cancel { ids: vec![6] },
        ],
    );
    // One new pending submit; finished in order of occurrence.
    assert_eq!(
        fx,
        ApplyEffects {
            finished: vec![2, 3, 6],
            became_pending: 1,
            ..ApplyEffects::default()
        }
    );
    // At 50: the retry (due 20) is pending, the lease (40) expired back to pending (a lost
    // worker uses no retry), the ETA (50) came due.
    let fx = h.tick(50);
    assert_eq!(
        fx,
        ApplyEffects {
            finished: vec![],
            became_pending: 3,
            ..ApplyEffects::default()
        }
    );
}

#[test]
fn responses_match_commands_one_to_one() {
    let mut h = H::default();
    let cmds = vec![
        Command::Tick,
        Command::Submit {
            tasks: Vec::new().into(),
        },
        Command::Lease {
            pool: "w".into(),
            queues: vec![],
            max: 3,
            lease_ms: 1,
            standing_ticket: None,
        },
        Command::Complete {
            pool: "w".into(),
            completions: vec![],
        },
        Command::Heartbeat {
            pool: "w".into(),
            leases: vec![lr(1, 1)],
            lease_ms: 1,
        },
        Command::Release {
            pool: "w".into(),
            leases: vec![lr(1, 1), lr(2, 2)],
        },
        Command::Cancel { ids: vec![] },
        Command::PurgeQueue { queue: "x".into() },
        Command::PauseQueue {
            queue: "x".into(),
            paused: false,
        },
    ];
    let (r, fx) = h.apply(0, cmds);
    assert_eq!(
        r,
        vec![
            Response::Ticked,
            Response::Submitted(vec![]),
            Response::Leased(vec![]),
            Response::Completed(vec![]),
            Response::Heartbeated(vec![false]),
            Response::Released(vec![false, false]),
            Response::Cancelled(vec![]),
            Response::Purged(0),
            Response::Paused,
        ]
    );
    assert_eq!(fx, ApplyEffects::default());
    assert_eq!(h.s, QueueState::new());
    assert!(h.apply(0, vec![]).0.is_empty());
}

#[test]
fn huge_numbers_saturate_instead_of_panicking() {
    let mut h = H::default();
    let mut s = spec("a");
    s.eta_ms = Some(u64::MAX);
    s.countdown_ms = Some(u64::MAX);
    s.result_ttl_ms = u64::MAX;
    let mut r = spec("b");
    r.max_retries = u32::MAX;
    r.backoff_ms = u64::MAX;
    r.result_ttl_ms = u64::MAX;
    h.submit(u64::MAX - 10, vec![s, r]);
    assert_eq!(h.state(1), Some(TaskState::Scheduled));
    let l = h.lease_from(u64::MAX - 5, &[], u32::MAX, u64::MAX);
    assert_eq!(l[0].lease_deadline_ms, u64::MAX);
    h.complete(u64::MAX - 5, l[0].lease, failure(true));
    assert!(!h.heartbeat(u64::MAX, lr(9, 9), u64::MAX));
    h.tick(u64::MAX);
    // At the end of time everything is due: the ETA task is pending and the retry too.
    assert_eq!(h.state(1), Some(TaskState::Pending));
    assert_eq!(h.state(2), Some(TaskState::Pending));
    let l = h.lease(u64::MAX, 10, u64::MAX);
    // The leases' deadline is u64::MAX, which is already now: they expire before the
    // completion applies, so it is stale and both tasks are pending again.
    assert_eq!(h.complete(u64::MAX, l[0], ok(b"")), CompletionResult::Stale);
    h.tick(u64::MAX);
    assert_eq!(h.state(1), Some(TaskState::Pending));
    assert_eq!(h.state(2), Some(TaskState::Pending));
}

#[test]
fn node_ids_are_allocated_in_order_and_never_reused() {
    let mut h = H::default();
    let (r, _) = h.apply(5, vec![Command::AllocateNodeId, Command::AllocateNodeId]);
    assert_eq!(r, vec![Response::NodeId(2), Response::NodeId(3)]);
    // They survive a snapshot round trip: a restarted leader keeps counting.
    let bytes = bincode::serde::encode_to_vec(&h.s, bincode::config::standard()).unwrap();
    let (mut copy, _): (QueueState, usize) =
        bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
    let r = copy.apply(
        &Request {
            now_ms: 6,
            commands: vec![Command::AllocateNodeId],
        },
        &mut ApplyEffects::default(),
    );
    assert_eq!(r, vec![Response::NodeId(4)]);
}
