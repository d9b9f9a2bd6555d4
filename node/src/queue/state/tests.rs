//! Unit tests of every command and lifecycle path. Every step also checks the invariants.

use super::*;

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
            worker: "w1".into(),
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
            worker: "w1".into(),
            completions: vec![Completion { lease, outcome }],
        };
        match self.apply(now, vec![cmd]).0.remove(0) {
            Response::Completed(mut c) => c.remove(0),
            r => panic!("unexpected {r:?}"),
        }
    }

    fn heartbeat(&mut self, now: UnixMs, lease: LeaseRef, lease_ms: u64) -> bool {
        let cmd = Command::Heartbeat {
            worker: "w1".into(),
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
            worker: "w1".into(),
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
        }]
    );
    assert_eq!(h.s.current_lease(1), Some((lr(1, 1), "w1", 30_200)));
    assert_eq!(h.state(1), Some(TaskState::Leased));
    assert_eq!(h.s.task(1).unwrap().attempt, 1);
    assert_eq!(h.s.next_deadline_ms(), Some(30_200));

    let cmd = Command::Complete {
        worker: "w1".into(),
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
fn retries_follow_exponential_backoff() {
    let mut h = H::default();
    let mut s = spec("flaky");
    s.max_retries = 3;
    s.backoff_ms = 100;
    h.submit(1_000, vec![s]);
    let mut now = 1_000;
    // Failure n waits 100 * 2^(n-1): 100, 200, 400.
    for (n, wait) in [100, 200, 400].into_iter().enumerate() {
        let l = h.lease(now, 1, 10_000);
        assert_eq!(l, vec![lr(1, n as u32 + 1)]);
        assert_eq!(h.complete(now, l[0], failure(true)), CompletionResult::Accepted);
        let v = h.s.task(1).unwrap();
        assert_eq!(v.state, TaskState::Retrying);
        assert_eq!(v.error.as_deref(), Some("boom"));
        assert_eq!(h.s.next_deadline_ms(), Some(now + wait));
        assert_eq!(h.s.leasable(&[]), 0);
        assert!(h.lease(now + wait - 1, 1, 10_000).is_empty(), "not due yet");
        let fx = h.tick(now + wait);
        assert_eq!(fx.became_pending, 1);
        assert_eq!(h.state(1), Some(TaskState::Pending));
        now += wait;
    }
    let l = h.lease(now, 1, 10_000);
    let (_, fx) = h.apply(
        now,
        vec![Command::Complete {
            worker: "w1".into(),
            completions: vec![Completion {
                lease: l[0],
                outcome: failure(true),
            }],
        }],
    );
    assert_eq!(fx.finished, vec![1]);
    let v = h.s.task(1).unwrap();
    assert_eq!(
        (v.state, v.attempt, v.error.as_deref()),
        (TaskState::Dead, 4, Some("boom"))
    );
}

#[test]
fn backoff_is_capped_and_saturates() {
    assert_eq!(backoff_delay(100, 1), 100);
    assert_eq!(backoff_delay(100, 4), 800);
    assert_eq!(backoff_delay(1_000, 30), MAX_BACKOFF_MS);
    assert_eq!(backoff_delay(1, u32::MAX), MAX_BACKOFF_MS);
    assert_eq!(backoff_delay(u64::MAX, 1), MAX_BACKOFF_MS);
    assert_eq!(backoff_delay(0, 50), 0);
}

#[test]
fn retry_with_zero_backoff_is_pending_at_once() {
    let mut h = H::default();
    let mut s = spec("a");
    s.max_retries = 1;
    h.submit(0, vec![s]);
    let l = h.lease(0, 1, 100);
    let cmd = Command::Complete {
        worker: "w".into(),
        completions: vec![Completion {
            lease: l[0],
            outcome: failure(true),
        }],
    };
    let (_, fx) = h.apply(5, vec![cmd]);
    assert_eq!(fx.became_pending, 1);
    assert_eq!(h.state(1), Some(TaskState::Pending));
    assert_eq!(h.lease(5, 1, 100), vec![lr(1, 2)]);
}

#[test]
fn dead_after_max_retries_zero() {
    let mut h = H::default();
    h.submit(0, vec![spec("a")]);
    let l = h.lease(0, 1, 100);
    assert_eq!(h.complete(1, l[0], failure(true)), CompletionResult::Accepted);
    assert_eq!(h.state(1), Some(TaskState::Dead));
}

#[test]
fn non_retryable_failure_is_dead_at_once() {
    let mut h = H::default();
    let mut s = spec("a");
    s.max_retries = 5;
    s.backoff_ms = 10;
    h.submit(0, vec![s]);
    let l = h.lease(0, 1, 100);
    let cmd = Command::Complete {
        worker: "w".into(),
        completions: vec![Completion {
            lease: l[0],
            outcome: Outcome::Failure {
                error: "bad args".into(),
                retry: false,
            },
        }],
    };
    let (_, fx) = h.apply(1, vec![cmd]);
    assert_eq!(fx.finished, vec![1]);
    let v = h.s.task(1).unwrap();
    assert_eq!((v.state, v.error.as_deref()), (TaskState::Dead, Some("bad args")));
}

#[test]
fn stale_completion_after_expiry_and_release_changes_nothing() {
    let mut h = H::default();
    let mut s = spec("a");
    s.max_retries = 5;
    h.submit(0, vec![s]);
    let first = h.lease(0, 1, 100)[0];
    // The lease expires: counted as a failure, back to pending (backoff 0).
    let fx = h.tick(100);
    assert_eq!(fx.became_pending, 1);
    let v = h.s.task(1).unwrap();
    assert_eq!(
        (v.state, v.error.as_deref()),
        (TaskState::Pending, Some(LEASE_EXPIRED_ERROR))
    );
    let second = h.lease(150, 1, 100)[0];
    assert_eq!(second, lr(1, 2));

    let before = h.s.clone();
    let (r, fx) = h.apply(
        160,
        vec![Command::Complete {
            worker: "old".into(),
            completions: vec![Completion {
                lease: first,
                outcome: ok(b"1"),
            }],
        }],
    );
    assert_eq!(r, vec![Response::Completed(vec![CompletionResult::Stale])]);
    assert_eq!(fx, ApplyEffects::default());
    let mut expected = before;
    expected.now_ms = 160;
    assert_eq!(h.s, expected, "a stale completion changes nothing");

    // First valid completion wins; a second one for the same attempt is stale.
    assert_eq!(h.complete(170, second, ok(b"2")), CompletionResult::Accepted);
    let snapshot = h.s.clone();
    assert_eq!(h.complete(170, second, failure(false)), CompletionResult::Stale);
    assert_eq!(h.s, snapshot);
    assert_eq!(h.s.task(1).unwrap().result, Some(Bytes::from_static(b"2")));
    // Unknown task and wrong attempt numbers.
    assert_eq!(h.complete(170, lr(99, 1), ok(b"")), CompletionResult::Stale);
    assert_eq!(h.complete(170, lr(0, 0), ok(b"")), CompletionResult::Stale);
    assert_eq!(h.complete(170, lr(1, u32::MAX), ok(b"")), CompletionResult::Stale);
    assert_eq!(h.s, snapshot);
}

#[test]
fn two_completions_in_one_command_first_wins() {
    let mut h = H::default();
    h.submit(0, vec![spec("a")]);
    let l = h.lease(0, 1, 100)[0];
    let cmd = Command::Complete {
        worker: "w".into(),
        completions: vec![
            Completion {
                lease: l,
                outcome: failure(false),
            },
            Completion {
                lease: l,
                outcome: ok(b"x"),
            },
        ],
    };
    let (r, fx) = h.apply(1, vec![cmd]);
    assert_eq!(
        r,
        vec![Response::Completed(vec![
            CompletionResult::Accepted,
            CompletionResult::Stale
        ])]
    );
    assert_eq!(fx.finished, vec![1]);
    assert_eq!(h.state(1), Some(TaskState::Dead));
}

#[test]
fn lease_expiry_does_not_use_a_retry_but_the_cap_kills_the_task() {
    let mut h = H::default();
    let mut s = spec("poison");
    s.max_retries = 0;
    h.submit(0, vec![s]);
    let mut now = 0;
    for lost in 1..MAX_LOST_LEASES {
        h.lease(now, 1, 100);
        now += 100;
        let fx = h.tick(now);
        // The worker was lost: pending again at once, no retry used, the error says why.
        assert_eq!(fx.became_pending, 1, "expiry {lost}");
        let v = h.s.task(1).unwrap();
        assert_eq!(
            (v.state, v.error.as_deref()),
            (TaskState::Pending, Some(LEASE_EXPIRED_ERROR))
        );
        assert_eq!(h.s.tasks[&1].failures, 0);
        assert_eq!(h.s.tasks[&1].lost_leases, lost);
    }
    h.lease(now, 1, 100);
    let fx = h.tick(now + 100);
    assert_eq!(fx.finished, vec![1]);
    let v = h.s.task(1).unwrap();
    assert_eq!(
        (v.state, v.attempt, v.error.as_deref()),
        (
            TaskState::Dead,
            u32::from(MAX_LOST_LEASES),
            Some(LEASE_EXPIRED_ERROR)
        )
    );
}

#[test]
fn release_worker_frees_only_that_workers_leases() {
    let mut h = H::default();
    h.submit(0, vec![spec("a"), spec("b"), spec("c")]);
    let mine = h.s.apply(
        &Request {
            now_ms: 1,
            commands: vec![Command::Lease {
                worker: "node-1".into(),
                queues: vec![],
                max: 2,
                lease_ms: 1000,
                standing_ticket: None,
            }],
        },
        &mut ApplyEffects::default(),
    );
    let Response::Leased(mine) = &mine[0] else {
        panic!("{mine:?}")
    };
    h.s.apply(
        &Request {
            now_ms: 2,
            commands: vec![Command::Lease {
                worker: "node-2".into(),
                queues: vec![],
                max: 1,
                lease_ms: 1000,
                standing_ticket: None,
            }],
        },
        &mut ApplyEffects::default(),
    );
    let mut fx = ApplyEffects::default();
    let r = h.s.apply(
        &Request {
            now_ms: 3,
            commands: vec![Command::ReleaseWorker {
                worker: "node-1".into(),
            }],
        },
        &mut fx,
    );
    assert_eq!(r, vec![Response::ReleasedWorker(2)]);
    assert_eq!(fx.became_pending, 2);
    for g in mine {
        let t = h.s.task(g.lease.task).unwrap();
        assert_eq!((t.state, t.attempt), (TaskState::Pending, 1));
        assert_eq!(h.s.tasks[&g.lease.task].failures, 0);
    }
    assert_eq!(
        h.s.task(3).unwrap().state,
        TaskState::Leased,
        "node-2's lease is untouched"
    );
    // Unknown worker: nothing.
    let r = h.s.apply(
        &Request {
            now_ms: 4,
            commands: vec![Command::ReleaseWorker {
                worker: "ghost".into(),
            }],
        },
        &mut ApplyEffects::default(),
    );
    assert_eq!(r, vec![Response::ReleasedWorker(0)]);
    h.s.check_invariants().unwrap();
}

#[test]
fn one_big_time_jump_expires_the_lease_to_pending() {
    let mut h = H::default();
    let mut s = spec("a");
    s.max_retries = 1;
    s.backoff_ms = 10;
    h.submit(0, vec![s]);
    h.lease(0, 1, 100);
    // Expiry at 10_000: pending at once (a lost worker is not a failure), no timer left.
    let fx = h.tick(10_000);
    assert_eq!(fx.became_pending, 1);
    assert_eq!(h.state(1), Some(TaskState::Pending));
    assert_eq!(h.s.next_deadline_ms(), None);
}

#[test]
fn heartbeat_keeps_a_lease_alive() {
    let mut h = H::default();
    h.submit(0, vec![spec("a")]);
    let l = h.lease(0, 1, 100)[0];
    assert!(h.heartbeat(80, l, 100));
    assert_eq!(h.s.next_deadline_ms(), Some(180));
    h.tick(150);
    assert_eq!(h.state(1), Some(TaskState::Leased));
    assert!(!h.heartbeat(150, lr(1, 2), 100), "wrong attempt");
    assert!(!h.heartbeat(150, lr(7, 1), 100), "unknown task");
    assert_eq!(h.s.next_deadline_ms(), Some(180));
    h.tick(179);
    assert_eq!(h.state(1), Some(TaskState::Leased));
    h.tick(180);
    // Expired: the worker is presumed lost; the task is pending again.
    assert_eq!(h.state(1), Some(TaskState::Pending));
    assert!(!h.heartbeat(181, l, 100), "not leased any more");
}

#[test]
fn release_returns_the_task_without_counting_a_failure() {
    let mut h = H::default();
    let mut s = spec("a");
    s.max_retries = 0;
    h.submit(0, vec![s]);
    let l = h.lease(0, 1, 100)[0];
    let (released, fx) = h.release(10, l);
    assert!(released);
    assert_eq!(fx.became_pending, 1);
    let v = h.s.task(1).unwrap();
    assert_eq!((v.state, v.attempt, v.error), (TaskState::Pending, 1, None));
    assert!(!h.release(10, l).0, "no longer leased");
    assert!(!h.release(10, lr(42, 1)).0);
    // The attempt number stays consumed, and the failure budget is intact: with
    // max_retries 0, one retryable failure now still allows no retry, but it is the first.
    let l2 = h.lease(20, 1, 100)[0];
    assert_eq!(l2, lr(1, 2));
    assert_eq!(h.complete(30, l, ok(b"")), CompletionResult::Stale);
    h.complete(30, l2, failure(true));
    assert_eq!(h.state(1), Some(TaskState::Dead));
    assert_eq!(h.s.tasks[&1].failures, 1);
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
fn priority_then_fifo_within_a_queue() {
    let mut h = H::default();
    let with_priority = |name: &str, p: u8| {
        let mut s = spec(name);
        s.priority = p;
        s
    };
    h.submit(
        0,
        vec![
            with_priority("a", 0),
            with_priority("b", 5),
            with_priority("c", 5),
        ],
    );
    h.submit(1, vec![with_priority("d", 1), with_priority("e", 255)]);
    let names: Vec<String> = h
        .lease_from(2, &[], 10, 100)
        .into_iter()
        .map(|g| g.name)
        .collect();
    assert_eq!(names, vec!["e", "b", "c", "d", "a"]);
}

#[test]
fn lease_honours_queue_order_and_max() {
    let mut h = H::default();
    h.submit(
        0,
        vec![
            in_queue(spec("a1"), "a"),
            in_queue(spec("b1"), "b"),
            spec("d1"),
            in_queue(spec("a2"), "a"),
        ],
    );
    let names = |g: Vec<Grant>| {
        g.into_iter()
            .map(|g| format!("{}/{}", g.queue, g.name))
            .collect::<Vec<_>>()
    };
    // Listed order, unknown queue skipped, max respected across queues.
    assert_eq!(
        names(h.lease_from(1, &["nope", "b", "a"], 2, 100)),
        vec!["b/b1", "a/a1"]
    );
    // Empty name means the default queue.
    assert_eq!(names(h.lease_from(1, &[""], 5, 100)), vec!["default/d1"]);
    assert_eq!(h.lease_from(1, &["a"], 0, 100), vec![]);
    assert_eq!(h.s.leasable(&["a".into()]), 1);
    assert_eq!(
        h.s.leasable(&["a".into(), "a".into()]),
        1,
        "a queue listed twice counts once"
    );
    assert_eq!(h.s.leasable(&["b".into()]), 0);
    h.submit(2, vec![in_queue(spec("c1"), "c"), in_queue(spec("b2"), "b")]);
    // Empty list: every queue in name order.
    assert_eq!(h.s.leasable(&[]), 3);
    assert_eq!(names(h.lease_from(3, &[], 10, 100)), vec!["a/a2", "b/b2", "c/c1"]);
    assert_eq!(h.s.leasable(&[]), 0);
}

#[test]
fn lease_with_max_zero_or_nothing_pending_interns_no_worker() {
    let mut h = H::default();
    h.submit(0, vec![spec("a")]);
    assert!(h.lease(0, 0, 100).is_empty());
    assert!(h.lease_from(0, &["empty"], 5, 100).is_empty());
    assert!(h.s.idx.workers.slots.is_empty());
    h.lease(0, 1, 100);
    assert_eq!(h.s.idx.workers.slots.len(), 1);
    h.tick(100);
    // The expired lease released the worker name.
    assert!(h.s.idx.workers.ids.is_empty());
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
fn idempotency_across_entries_and_within_a_batch() {
    let mut h = H::default();
    let keyed = |k: &str| {
        let mut s = spec("a");
        s.idempotency_key = Some(k.into());
        s.result_ttl_ms = 100;
        s
    };
    let (r, fx) = h.apply(
        0,
        vec![Command::Submit {
            tasks: vec![keyed("k1"), keyed("k1"), keyed("k2")].into(),
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
                id: 1,
                duplicate: true
            },
            Submitted {
                id: 2,
                duplicate: false
            },
        ])]
    );
    assert_eq!(fx.became_pending, 2);
    // A later entry, and a later command of the same entry.
    let (r, _) = h.apply(
        10,
        vec![
            Command::Submit {
                tasks: vec![keyed("k2")].into(),
            },
            Command::Submit {
                tasks: vec![keyed("k1")].into(),
            },
        ],
    );
    assert_eq!(
        r,
        vec![
            Response::Submitted(vec![Submitted {
                id: 2,
                duplicate: true
            }]),
            Response::Submitted(vec![Submitted {
                id: 1,
                duplicate: true
            }]),
        ]
    );
    assert_eq!(h.s.task_count(), 2);
    // The key outlives the task's completion, but not its purge.
    let l = h.lease(20, 1, 100)[0];
    h.complete(30, l, ok(b""));
    assert_eq!(h.submit(129, vec![keyed("k1")]), vec![1]);
    h.tick(130);
    assert_eq!(h.s.task(1), None);
    let (r, _) = h.apply(
        130,
        vec![Command::Submit {
            tasks: vec![keyed("k1")].into(),
        }],
    );
    assert_eq!(
        r,
        vec![Response::Submitted(vec![Submitted {
            id: 3,
            duplicate: false
        }])]
    );
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
fn interned_slots_are_recycled() {
    let mut h = H::default();
    let mut s = in_queue(spec("first"), "q1");
    s.result_ttl_ms = 0;
    h.submit(0, vec![s]);
    h.cancel(0, vec![1]);
    h.tick(1);
    assert!(h.s.stats().is_empty());
    h.submit(1, vec![in_queue(spec("second"), "q2")]);
    assert_eq!(h.s.idx.queue_names.slots.len(), 1);
    assert_eq!(h.s.task_names.slots.len(), 1);
    let v = h.s.task(2).unwrap();
    assert_eq!((v.name.as_str(), v.queue.as_str()), ("second", "q2"));
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
                worker: "w".into(),
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
            worker: "w".into(),
            queues: vec![],
            max: 3,
            lease_ms: 1,
            standing_ticket: None,
        },
        Command::Complete {
            worker: "w".into(),
            completions: vec![],
        },
        Command::Heartbeat {
            worker: "w".into(),
            leases: vec![lr(1, 1)],
            lease_ms: 1,
        },
        Command::Release {
            worker: "w".into(),
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
fn exhausted_attempt_counter_kills_instead_of_reusing_a_token() {
    let mut h = H::default();
    h.submit(0, vec![spec("a"), spec("b")]);
    h.s.tasks.get_mut(1).unwrap().attempt = u32::MAX;
    h.s.tasks.get_mut(1).unwrap().failures = 0;
    let (r, fx) = h.apply(
        1,
        vec![Command::Lease {
            worker: "w".into(),
            queues: vec![],
            max: 1,
            lease_ms: 10,
            standing_ticket: None,
        }],
    );
    let Response::Leased(g) = &r[0] else { panic!() };
    assert_eq!(g.iter().map(|g| g.lease).collect::<Vec<_>>(), vec![lr(2, 1)]);
    assert_eq!(fx.finished, vec![1]);
    let v = h.s.task(1).unwrap();
    assert_eq!(
        (v.state, v.error.as_deref()),
        (TaskState::Dead, Some(ATTEMPTS_EXHAUSTED_ERROR))
    );
}

#[test]
fn check_invariants_detects_corruption() {
    let mut h = H::default();
    let mut s = spec("a");
    s.idempotency_key = Some("k".into());
    h.submit(0, vec![s, spec("b")]);
    h.lease(0, 1, 100);

    let mut bad = h.s.clone();
    bad.idx.timers.clear();
    assert!(bad.check_invariants().is_err());
    let mut bad = h.s.clone();
    bad.idx.queues[0].pending.clear();
    assert!(bad.check_invariants().is_err());
    let mut bad = h.s.clone();
    bad.tasks.get_mut(2).unwrap().state = TaskState::Scheduled;
    assert!(bad.check_invariants().is_err());
    let mut bad = h.s.clone();
    bad.idempotency.remove(b"k", 1);
    assert!(bad.check_invariants().is_err());
    let mut bad = h.s.clone();
    bad.tasks.get_mut(2).unwrap().key_len = 1;
    assert!(bad.check_invariants().is_err());
    let mut bad = h.s.clone();
    bad.idx.options.slots[0].refs += 1;
    assert!(bad.check_invariants().is_err());
    let mut bad = h.s.clone();
    bad.idx.queues[0].pending.insert(0, 1);
    assert!(bad.check_invariants().is_err());
    let mut bad = h.s.clone();
    let t = bad.tasks.remove(2).unwrap();
    bad.tasks.insert(5, t);
    assert!(bad.check_invariants().is_err());
    let mut bad = h.s.clone();
    bad.idx.queues[0].counts[TaskState::Dead as usize] += 1;
    assert!(bad.check_invariants().is_err());
    let mut bad = h.s.clone();
    bad.idx.workers.slots[0].refs += 1;
    assert!(bad.check_invariants().is_err());
    let mut bad = h.s.clone();
    bad.next_id = 2;
    assert!(bad.check_invariants().is_err());
    let mut bad = h.s.clone();
    bad.task_names.free.push(0);
    assert!(bad.check_invariants().is_err());
}

#[test]
fn snapshot_round_trips_through_bincode() {
    let mut h = H::default();
    let mut s = spec("a");
    s.idempotency_key = Some("k".into());
    s.eta_ms = Some(500);
    h.submit(0, vec![s, in_queue(spec("b"), "q"), spec("c")]);
    let l = h.lease(1, 1, 100);
    h.complete(2, l[0], ok(b"{\"x\":1}"));
    h.pause(3, "q", true);
    let cfg = bincode::config::standard();
    let bytes = bincode::serde::encode_to_vec(&h.s, cfg).unwrap();
    let (back, read): (QueueState, usize) = bincode::serde::decode_from_slice(&bytes, cfg).unwrap();
    assert_eq!(read, bytes.len());
    assert_eq!(back, h.s);
    back.check_invariants().unwrap();
}

#[test]
fn task_struct_stays_compact() {
    let size = std::mem::size_of::<Task>();
    println!("size_of::<Task>() = {size} bytes");
    // key + args (16) + output box (8) + 3 u64 (24) + 7 u32 (28) + 4 bytes. It was 120 with the
    // options inline, the args as `Bytes` and the key in a box of its own.
    assert!(size <= 80, "Task grew to {size} bytes");
    // A slot of the task table costs no more than the task.
    assert_eq!(std::mem::size_of::<Option<Task>>(), size);
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

#[test]
fn approx_size_grows_with_payloads() {
    let small = Request {
        now_ms: 0,
        commands: vec![Command::Submit {
            tasks: vec![spec("a")].into(),
        }],
    };
    let mut big_spec = spec("a");
    big_spec.args = Bytes::from(vec![b'x'; 10_000]);
    let big = Request {
        now_ms: 0,
        commands: vec![Command::Submit {
            tasks: vec![big_spec].into(),
        }],
    };
    // The small spec carries `{}` (2 bytes): the difference is exactly the extra payload.
    assert_eq!(big.approx_size() - small.approx_size(), 10_000 - 2);
    assert!(
        Request {
            now_ms: 0,
            commands: vec![Command::Tick]
        }
        .approx_size()
            > 0
    );
}

#[test]
fn approx_mem_size_counts_structs_and_heap() {
    let keyed = |i: usize| {
        let mut s = spec("noop");
        s.idempotency_key = Some(format!("{i:032}"));
        s
    };
    let req = Request {
        now_ms: 0,
        commands: vec![Command::Submit {
            tasks: (0..1000).map(keyed).collect(),
        }],
    };
    let per_task = req.approx_mem_size() / 1000;
    // The spec itself, its name, its args and its 32-byte key (48 with the allocator's header).
    let floor = (std::mem::size_of::<TaskSpec>() + 48) as u64;
    assert!(
        per_task >= floor,
        "{per_task} B per task, expected at least {floor}"
    );
    let encoded = bincode::serde::encode_to_vec(&req, bincode::config::standard())
        .unwrap()
        .len() as u64;
    assert!(
        per_task > 3 * encoded / 1000,
        "memory is several times the encoded size"
    );
}

#[test]
fn version_1_snapshots_are_read_and_converted() {
    let mut h = H::default();
    let mut keyed = spec("a");
    keyed.idempotency_key = Some("k".into());
    keyed.eta_ms = Some(500);
    let mut limited = in_queue(spec("b"), "q");
    limited.time_limit_ms = Some(30);
    limited.max_retries = 2;
    limited.backoff_ms = 7;
    let mut empty_key = spec("c");
    empty_key.idempotency_key = Some(String::new());
    h.submit(0, vec![keyed, limited, empty_key, spec("d"), spec("e")]);
    let l = h.lease(1, 2, 100);
    h.complete(2, l[0], ok(b"{\"x\":1}"));
    h.pause(3, "q", true);
    let cfg = bincode::config::standard();
    let old = bincode::serde::encode_to_vec(v1::downgrade(&h.s), cfg).unwrap();
    let (decoded, _): (QueueStateV1, usize) = bincode::serde::decode_from_slice(&old, cfg).unwrap();
    let upgraded = QueueState::try_from(decoded).unwrap();
    upgraded.check_invariants().unwrap();
    assert_eq!(upgraded, h.s);
    // And it carries on like the original.
    let mut dup = spec("z");
    dup.idempotency_key = Some("k".into());
    let mut a = h.s.clone();
    let mut b = upgraded;
    let req = Request {
        now_ms: 10,
        commands: vec![Command::Submit {
            tasks: vec![dup].into(),
        }],
    };
    let mut fx = ApplyEffects::default();
    assert_eq!(
        a.apply(&req, &mut fx),
        b.apply(&req, &mut ApplyEffects::default())
    );
    assert_eq!(a, b);
}

/// A task scheduled a week ahead stays while 200,000 newer tasks are submitted, run and purged
/// (result TTL 0): the task table's ring must not keep a slot for every id in between, and the
/// old task still comes due.
#[test]
fn a_long_lived_task_does_not_pin_the_task_table() {
    let week = 7 * 24 * 3600 * 1000;
    let mut h = H::default();
    let mut late = spec("late");
    late.eta_ms = Some(week);
    late.idempotency_key = Some("late".into());
    h.submit(0, vec![late]);
    let mut now = 0;
    let mut max_ring = 0;
    for _ in 0..200 {
        now += 1;
        let batch: Vec<TaskSpec> = (0..1000)
            .map(|_| {
                let mut s = spec("quick");
                s.result_ttl_ms = 0;
                s
            })
            .collect();
        h.submit(now, batch);
        let completions = h
            .lease(now, 1000, 60_000)
            .into_iter()
            .map(|lease| Completion {
                lease,
                outcome: ok(b"1"),
            })
            .collect();
        let worker = "w1".to_string();
        h.apply(now, vec![Command::Complete { worker, completions }]);
        h.tick(now + 1);
        let (ring, cap, _) = h.s.tasks.footprint();
        max_ring = max_ring.max(ring);
        assert!(cap <= 4096, "ring capacity {cap} with {} tasks", h.s.task_count());
    }
    h.s.check_invariants().unwrap();
    assert_eq!(h.s.task_count(), 1);
    assert!(max_ring <= 2001, "ring reached {max_ring} slots");
    assert_eq!(h.s.tasks.footprint().2, 1, "the old task sits in the side table");
    assert_eq!(h.state(1), Some(TaskState::Scheduled));
    h.tick(week);
    assert_eq!(h.state(1), Some(TaskState::Pending));
    assert_eq!(h.lease(week, 1, 100)[0].task, 1);
    h.s.check_invariants().unwrap();
}

// --- Standing capacity -------------------------------------------------------------------

fn stand(worker: &str, queues: &[&str], max: u32, lease_ms: u64) -> Command {
    Command::Lease {
        worker: worker.into(),
        queues: queues.iter().map(|q| q.to_string()).collect(),
        max,
        lease_ms,
        standing_ticket: Some(7),
    }
}

fn granted(fx: &ApplyEffects, worker: &str) -> Vec<TaskId> {
    fx.workers
        .get(worker)
        .map(|w| w.grants.iter().map(|g| g.lease.task).collect())
        .unwrap_or_default()
}

#[test]
fn an_idle_lease_leaves_standing_capacity_that_a_submit_is_granted_to_in_the_same_apply() {
    let mut h = H::default();
    let (r, fx) = h.apply(10, vec![stand("w1", &[], 2, 100)]);
    assert_eq!(r, vec![Response::Leased(vec![])]);
    let w = &fx.workers["w1"];
    assert_eq!((w.leases.clone(), w.standing), (vec![(7, 0)], Some(2)));
    assert_eq!(h.s.standing_capacity("w1"), 2);

    let (_, fx) = h.apply(
        20,
        vec![Command::Submit {
            tasks: vec![spec("a")].into(),
        }],
    );
    assert_eq!(granted(&fx, "w1"), vec![1]);
    let g = &fx.workers["w1"].grants[0];
    assert_eq!(
        (g.lease.attempt, g.lease_deadline_ms, g.name.as_str()),
        (1, 120, "a")
    );
    assert_eq!(fx.workers["w1"].standing, Some(1));
    // Granted, so nothing for idle pools to wake up for.
    assert_eq!(fx.became_pending, 0);
    assert_eq!(
        h.s.current_lease(1).map(|(l, w, _)| (l, w.to_owned())),
        Some((lr(1, 1), "w1".into()))
    );

    // Two more: one granted (the last unit), one pending.
    let (_, fx) = h.apply(
        30,
        vec![Command::Submit {
            tasks: vec![spec("b"), spec("c")].into(),
        }],
    );
    assert_eq!(granted(&fx, "w1"), vec![2]);
    assert_eq!(fx.workers["w1"].standing, Some(0));
    assert_eq!(fx.became_pending, 1);
    assert_eq!(h.s.standing_capacity("w1"), 0);
    assert_eq!(h.s.task(3).unwrap().state, TaskState::Pending);
}

#[test]
fn standing_capacity_adds_up_renews_and_expires_after_lease_ms() {
    let mut h = H::default();
    h.apply(0, vec![stand("w1", &[], 1, 100)]);
    // Another idle lease adds to it and renews all of it.
    h.submit(50, vec![]);
    let (_, fx) = h.apply(90, vec![stand("w1", &[], 2, 100)]);
    assert_eq!(fx.workers["w1"].leases, vec![(7, 0)]);
    assert_eq!(fx.workers["w1"].standing, Some(3));
    // A lease of 0 only renews (expiry 120 + 100); it leaves nothing new, so its reply settles
    // it and the pool hears nothing.
    let (_, fx) = h.apply(120, vec![stand("w1", &[], 0, 100)]);
    assert!(fx.workers.is_empty());
    // Not renewed: gone at 220, before the submit of that entry.
    let fx = h.tick(219);
    assert!(fx.workers.is_empty());
    assert_eq!(h.s.standing_capacity("w1"), 3);
    let (_, fx) = h.apply(
        220,
        vec![Command::Submit {
            tasks: vec![spec("a")].into(),
        }],
    );
    assert_eq!(fx.workers["w1"].standing, Some(0));
    assert!(granted(&fx, "w1").is_empty());
    assert_eq!(h.s.task(1).unwrap().state, TaskState::Pending);
    // An unticketed lease neither stands nor renews.
    h.lease(230, 1, 100);
    h.lease(240, 3, 100);
    assert_eq!(h.s.standing_capacity("w1"), 0);
}

#[test]
fn standing_grants_rotate_over_workers_deterministically() {
    let mut h = H::default();
    h.apply(0, vec![stand("w2", &[], 3, 1000), stand("w1", &[], 3, 1000)]);
    let mut order = Vec::new();
    for i in 0..4 {
        let (_, fx) = h.apply(
            10 + i,
            vec![Command::Submit {
                tasks: vec![spec("t")].into(),
            }],
        );
        for (w, e) in &fx.workers {
            order.extend(e.grants.iter().map(|_| w.clone()));
        }
    }
    // Never granted yet: by name; then least recently granted first.
    assert_eq!(order, ["w1", "w2", "w1", "w2"]);
    // A batch in one command goes round too, until the capacity is used up.
    let (_, fx) = h.apply(
        20,
        vec![Command::Submit {
            tasks: vec![spec("a"), spec("b"), spec("c")].into(),
        }],
    );
    assert_eq!((granted(&fx, "w1"), granted(&fx, "w2")), (vec![5], vec![6]));
    assert_eq!((h.s.standing_capacity("w1"), h.s.standing_capacity("w2")), (0, 0));
    assert_eq!(h.s.task(7).unwrap().state, TaskState::Pending);
}

#[test]
fn a_standing_grant_takes_the_task_a_lease_would_take() {
    let mut h = H::default();
    h.apply(0, vec![stand("w1", &["q2", "q1"], 1, 1000)]);
    let mut low = in_queue(spec("low"), "q2");
    low.priority = 1;
    let mut high = in_queue(spec("high"), "q2");
    high.priority = 9;
    // One command: every task is submitted first, then the grant takes the best of them — the
    // first listed queue, then priority; the other queue's task and `nope`'s stay pending.
    let (_, fx) = h.apply(
        5,
        vec![Command::Submit {
            tasks: vec![
                in_queue(spec("q1"), "q1"),
                low,
                high,
                in_queue(spec("other"), "nope"),
            ]
            .into(),
        }],
    );
    assert_eq!(granted(&fx, "w1"), vec![3]);
    assert_eq!(h.s.task(1).unwrap().state, TaskState::Pending);
    // With room again, it drains in lease order.
    h.apply(6, vec![stand("w1", &["q2", "q1"], 2, 1000)]);
    assert_eq!(h.s.task(2).unwrap().state, TaskState::Leased);
    assert_eq!(h.s.task(1).unwrap().state, TaskState::Leased);
    assert_eq!(h.s.task(4).unwrap().state, TaskState::Pending);
}

#[test]
fn tasks_becoming_pending_any_way_are_granted_to_standing_capacity() {
    let mut h = H::default();
    let mut eta = spec("eta");
    eta.eta_ms = Some(50);
    let mut retry = spec("retry");
    retry.max_retries = 1;
    retry.backoff_ms = 10;
    let ids = h.submit(0, vec![eta, retry, spec("expire"), spec("release")]);
    let leases = h.lease(0, 3, 30);
    assert_eq!(leases.len(), 3);
    h.apply(1, vec![stand("w2", &[], 4, 10_000)]);
    // Retry due at 11; lease expiry at 30; ETA at 50; a release now.
    assert_eq!(
        h.complete(1, leases[0], failure(true)),
        CompletionResult::Accepted
    );
    let (ok, fx) = h.release(2, leases[2]);
    assert!(ok);
    assert_eq!(granted(&fx, "w2"), vec![ids[3]]);
    assert_eq!(granted(&h.tick(11), "w2"), vec![ids[1]]);
    assert_eq!(granted(&h.tick(30), "w2"), vec![ids[2]]);
    assert_eq!(granted(&h.tick(50), "w2"), vec![ids[0]]);
    assert_eq!(h.s.standing_capacity("w2"), 0);
}

#[test]
fn paused_queues_wait_and_clear_and_release_worker_drop_standing_capacity() {
    let mut h = H::default();
    h.pause(0, "default", true);
    h.apply(0, vec![stand("w1", &[], 2, 1000), stand("w2", &[], 1, 1000)]);
    let ids = h.submit(1, vec![spec("a"), spec("b")]);
    assert_eq!(h.s.task(ids[0]).unwrap().state, TaskState::Pending);
    let fx = h.pause(2, "default", false);
    assert_eq!(
        (granted(&fx, "w1"), granted(&fx, "w2")),
        (vec![ids[0]], vec![ids[1]])
    );
    assert_eq!(fx.became_pending, 0);

    let (r, fx) = h.apply(3, vec![Command::ClearStanding { worker: "w1".into() }]);
    assert_eq!(r, vec![Response::ClearedStanding(true)]);
    assert_eq!(fx.workers["w1"].standing, Some(0));
    let (r, _) = h.apply(3, vec![Command::ClearStanding { worker: "w1".into() }]);
    assert_eq!(r, vec![Response::ClearedStanding(false)]);

    // ReleaseWorker: w2's lease goes back, its standing capacity is gone first, so the task
    // goes to w3's standing capacity, not back to w2.
    h.apply(4, vec![stand("w2", &[], 1, 1000), stand("w3", &[], 1, 1000)]);
    let (r, fx) = h.apply(5, vec![Command::ReleaseWorker { worker: "w2".into() }]);
    assert_eq!(r, vec![Response::ReleasedWorker(1)]);
    assert_eq!(fx.workers["w2"].standing, Some(0));
    assert_eq!(granted(&fx, "w3"), vec![ids[1]]);
}

#[test]
fn a_new_term_drops_all_standing_capacity() {
    let mut h = H::default();
    h.apply(0, vec![stand("w1", &[], 2, 1000), stand("w2", &[], 1, 1000)]);
    let mut fx = ApplyEffects::default();
    h.s.new_term(&mut fx);
    assert_eq!(
        (fx.workers["w1"].standing, fx.workers["w2"].standing),
        (Some(0), Some(0))
    );
    h.s.check_invariants().unwrap();
    // Nothing stands: a submit waits for a lease, like before any pool stood.
    let (_, fx) = h.apply(
        1,
        vec![Command::Submit {
            tasks: vec![spec("a")].into(),
        }],
    );
    assert!(fx.workers.is_empty());
    assert_eq!(fx.became_pending, 1);
    // And a pool stands again by leasing.
    h.apply(2, vec![stand("w1", &[], 2, 1000)]);
    assert_eq!(h.s.task(1).unwrap().state, TaskState::Leased);
    assert_eq!(h.s.standing_capacity("w1"), 1);
}
