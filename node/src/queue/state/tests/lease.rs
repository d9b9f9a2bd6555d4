//! The lease rules: grants, the attempt fence (stale completions, heartbeats, releases),
//! the retry rules, lease expiry and `ReleasePool`.

use super::*;
use crate::queue::state::lease::backoff_delay;

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
            pool: "w1".into(),
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
        pool: "w".into(),
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
        pool: "w".into(),
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
            pool: "old".into(),
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
        pool: "w".into(),
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
fn release_pool_frees_only_that_pools_leases() {
    let mut h = H::default();
    h.submit(0, vec![spec("a"), spec("b"), spec("c")]);
    let mine = h.s.apply(
        &Request {
            now_ms: 1,
            commands: vec![Command::Lease {
                pool: "node-1".into(),
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
                pool: "node-2".into(),
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
            commands: vec![Command::ReleasePool {
                pool: "node-1".into(),
            }],
        },
        &mut fx,
    );
    assert_eq!(r, vec![Response::ReleasedPool(2)]);
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
            commands: vec![Command::ReleasePool { pool: "ghost".into() }],
        },
        &mut ApplyEffects::default(),
    );
    assert_eq!(r, vec![Response::ReleasedPool(0)]);
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
fn lease_with_max_zero_or_nothing_pending_interns_no_worker() {
    let mut h = H::default();
    h.submit(0, vec![spec("a")]);
    assert!(h.lease(0, 0, 100).is_empty());
    assert!(h.lease_from(0, &["empty"], 5, 100).is_empty());
    assert!(h.s.idx.pools.slots.is_empty());
    h.lease(0, 1, 100);
    assert_eq!(h.s.idx.pools.slots.len(), 1);
    h.tick(100);
    // The expired lease released the worker name.
    assert!(h.s.idx.pools.ids.is_empty());
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
            pool: "w".into(),
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

/// Complete, heartbeat, release and the pool's `holds` read honour exactly the leases the one
/// lease check (`Table::held`) honours: the current `(task, attempt)` of a leased task, whoever
/// names it (the worker is not part of the fence; `holds` asks about a worker besides).
#[test]
fn every_command_and_read_that_names_a_lease_honours_exactly_the_current_one() {
    let mut h = H::default();
    let mut s = spec("a");
    s.max_retries = 3;
    h.submit(0, vec![s.clone(), s.clone(), s]);
    // Task 1: leased at attempt 2 (attempt 1 expired). Task 2: pending after a release at
    // attempt 1. Task 3: succeeded at attempt 1.
    let first = h.lease_from(0, &[], 1, 100);
    assert_eq!(first[0].lease, lr(1, 1));
    h.tick(100);
    let l = h.lease(100, 3, 1_000);
    assert_eq!(l, vec![lr(1, 2), lr(2, 1), lr(3, 1)]);
    assert!(h.release(101, lr(2, 1)).0);
    assert_eq!(h.complete(102, lr(3, 1), ok(b"")), CompletionResult::Accepted);
    let names = [
        lr(1, 2),
        lr(1, 1),
        lr(1, 3),
        lr(1, 0),
        lr(2, 1),
        lr(2, 2),
        lr(3, 1),
        lr(99, 1),
        lr(0, 0),
    ];
    for lease in names {
        let current = lease == lr(1, 2);
        assert_eq!(h.s.tasks.held(lease).is_some(), current, "{lease:?}");
        assert_eq!(h.s.holds("w1", lease), current, "{lease:?}");
        assert!(!h.s.holds("w2", lease), "{lease:?} is not w2's");
        let before = h.s.clone();
        for cmd in [
            Command::Heartbeat {
                pool: "w2".into(),
                leases: vec![lease],
                lease_ms: 5_000,
            },
            Command::Release {
                pool: "w2".into(),
                leases: vec![lease],
            },
            Command::Complete {
                pool: "w2".into(),
                completions: vec![Completion {
                    lease,
                    outcome: ok(b""),
                }],
            },
        ] {
            let mut s = before.clone();
            let r = s.apply(
                &Request {
                    now_ms: 103,
                    commands: vec![cmd.clone()],
                },
                &mut ApplyEffects::default(),
            );
            let honoured = match &r[..] {
                [Response::Heartbeated(b)] | [Response::Released(b)] => b[0],
                [Response::Completed(c)] => c[0] == CompletionResult::Accepted,
                r => panic!("unexpected {r:?}"),
            };
            assert_eq!(honoured, current, "{cmd:?}");
            let mut unchanged = before.clone();
            unchanged.now_ms = 103;
            assert_eq!(s == unchanged, !current, "{cmd:?} changes the state iff honoured");
        }
        assert_eq!(h.s, before);
    }
    // ReleasePool releases the current leases of its worker only, through the same check.
    let (r, _) = h.apply(104, vec![Command::ReleasePool { pool: "w1".into() }]);
    assert_eq!(r, vec![Response::ReleasedPool(1)]);
    assert_eq!(h.s.tasks.held(lr(1, 2)).map(|t| t.state), None);
    assert_eq!(h.state(1), Some(TaskState::Pending));
}

/// A worker's retry delay replaces the backoff, capped at `MAX_BACKOFF_MS`; 0 retries at once;
/// retries left still count.
#[test]
fn a_retry_delay_replaces_the_backoff_and_is_capped() {
    let mut h = H::default();
    let mut s = spec("a");
    s.max_retries = 3;
    s.backoff_ms = 10;
    h.submit(0, vec![s]);
    let after = |delay_ms| Outcome::RetryAfter {
        error: "rate limited".into(),
        delay_ms,
    };
    let l = h.lease(1, 1, 1_000);
    assert_eq!(h.complete(2, l[0], after(5_000)), CompletionResult::Accepted);
    assert_eq!(h.state(1), Some(TaskState::Retrying));
    assert_eq!(
        h.s.next_deadline_ms(),
        Some(5_002),
        "the worker's delay, not 10 ms"
    );
    h.tick(5_001);
    assert_eq!(h.state(1), Some(TaskState::Retrying));
    h.tick(5_002);
    assert_eq!(h.state(1), Some(TaskState::Pending));
    let l = h.lease(5_003, 1, 1_000);
    h.complete(5_004, l[0], after(u64::MAX));
    assert_eq!(h.s.next_deadline_ms(), Some(5_004 + MAX_BACKOFF_MS), "capped");
    h.tick(5_004 + MAX_BACKOFF_MS);
    let l = h.lease(5_005 + MAX_BACKOFF_MS, 1, 1_000);
    h.complete(5_006 + MAX_BACKOFF_MS, l[0], after(0));
    assert_eq!(h.state(1), Some(TaskState::Pending), "0: at once");
    let l = h.lease(5_007 + MAX_BACKOFF_MS, 1, 1_000);
    h.complete(5_008 + MAX_BACKOFF_MS, l[0], after(1));
    assert_eq!(h.state(1), Some(TaskState::Dead), "no retries left");
    assert_eq!(h.s.task(1).unwrap().error.as_deref(), Some("rate limited"));
    h.s.check_invariants().unwrap();
}
