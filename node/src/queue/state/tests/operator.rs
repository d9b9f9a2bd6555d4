//! An operator's `Retry` and `Revoke` (`state/operator.rs`): through lease expiry, release and
//! stale completions, and what the apply tells the pool that held a revoked lease.

use super::*;
use crate::queue::state::REVOKED_ERROR;

impl H {
    fn retry(&mut self, now: UnixMs, ids: Vec<TaskId>) -> (Vec<bool>, ApplyEffects) {
        let (mut r, fx) = self.apply(now, vec![Command::Retry { ids }]);
        match r.remove(0) {
            Response::Retried(b) => (b, fx),
            r => panic!("unexpected {r:?}"),
        }
    }

    fn revoke(&mut self, now: UnixMs, ids: Vec<TaskId>, reason: &str) -> (Vec<Revoked>, ApplyEffects) {
        let cmd = Command::Revoke {
            ids,
            reason: reason.into(),
        };
        let (mut r, fx) = self.apply(now, vec![cmd]);
        match r.remove(0) {
            Response::Revoked(o) => (o, fx),
            r => panic!("unexpected {r:?}"),
        }
    }
}

/// A task that failed for good: dead after its one attempt.
fn dead_task(h: &mut H, now: UnixMs) -> TaskId {
    let id = h.submit(now, vec![spec("fails")])[0];
    let l = h.lease(now, 1, 1_000);
    assert_eq!(h.complete(now, l[0], failure(false)), CompletionResult::Accepted);
    assert_eq!(h.state(id), Some(TaskState::Dead));
    id
}

#[test]
fn retry_requeues_dead_and_cancelled_tasks_with_a_fresh_budget() {
    let mut h = H::default();
    let mut s = spec("flaky");
    s.max_retries = 1;
    let id = h.submit(0, vec![s])[0];
    for attempt in 1..=2 {
        let l = h.lease(0, 1, 1_000);
        assert_eq!(l, vec![lr(id, attempt)]);
        h.complete(0, l[0], failure(true));
    }
    assert_eq!(h.state(id), Some(TaskState::Dead));
    let cancelled = h.submit(0, vec![spec("c")])[0];
    assert_eq!(h.cancel(0, vec![cancelled]), vec![true]);

    let (flags, fx) = h.retry(10, vec![id, cancelled, 99]);
    assert_eq!(flags, vec![true, true, false]);
    assert_eq!(fx.became_pending, 2);
    let v = h.s.task(id).unwrap();
    assert_eq!((v.state, v.attempt, v.updated_ms), (TaskState::Pending, 2, 10));
    assert_eq!(
        v.error.as_deref(),
        Some("boom"),
        "the last error stays until an attempt ends"
    );
    // A fresh budget: it may fail once more and be retried, as when it was new.
    let l = h.lease(10, 2, 1_000);
    assert_eq!(l, vec![lr(id, 3), lr(cancelled, 1)]);
    h.complete(10, l[0], failure(true));
    assert_eq!(h.state(id), Some(TaskState::Pending));
    assert_eq!(h.s.describe(id).unwrap().failures, 1);
}

#[test]
fn retry_leaves_live_and_succeeded_tasks_alone() {
    let mut h = H::default();
    let ids = h.submit(0, vec![spec("a"), spec("b"), spec("c")]);
    let l = h.lease(0, 2, 1_000);
    h.complete(0, l[0], ok(b"1"));
    // Succeeded, leased, pending.
    let (flags, fx) = h.retry(1, ids.clone());
    assert_eq!(flags, vec![false, false, false]);
    assert_eq!(fx.became_pending, 0);
    assert_eq!(
        ids.iter().map(|id| h.state(*id).unwrap()).collect::<Vec<_>>(),
        vec![TaskState::Succeeded, TaskState::Leased, TaskState::Pending]
    );
}

#[test]
fn an_old_attempt_never_completes_a_retried_task() {
    let mut h = H::default();
    let id = dead_task(&mut h, 0);
    h.retry(1, vec![id]);
    assert_eq!(h.complete(2, lr(id, 1), ok(b"late")), CompletionResult::Stale);
    assert!(!h.heartbeat(2, lr(id, 1), 1_000));
    assert_eq!(h.state(id), Some(TaskState::Pending));
    assert_eq!(h.lease(3, 1, 1_000), vec![lr(id, 2)]);
}

#[test]
fn a_retry_resets_lost_leases_too() {
    let mut h = H::default();
    let id = h.submit(0, vec![spec("killer")])[0];
    let mut now = 0;
    for _ in 0..MAX_LOST_LEASES {
        h.lease(now, 1, 10);
        now += 10;
        h.tick(now);
    }
    assert_eq!(h.state(id), Some(TaskState::Dead));
    assert_eq!(h.s.describe(id).unwrap().lost_leases, MAX_LOST_LEASES);
    h.retry(now, vec![id]);
    assert_eq!(h.s.describe(id).unwrap().lost_leases, 0);
    // It may lose its lease again without dying at once.
    h.lease(now, 1, 10);
    h.tick(now + 10);
    assert_eq!(h.state(id), Some(TaskState::Pending));
}

#[test]
fn revoke_cancels_waiting_tasks_and_terminates_running_ones() {
    let mut h = H::default();
    let done = h.submit(0, vec![spec("done")])[0];
    let l = h.lease(0, 1, 5_000);
    h.complete(0, l[0], ok(b"1"));
    let mut later = spec("later");
    later.countdown_ms = Some(1_000);
    let ids = h.submit(0, vec![spec("run"), spec("wait"), later]);
    let l = h.lease(0, 1, 5_000);
    assert_eq!(l, vec![lr(ids[0], 1)]);

    let (outcomes, fx) = h.revoke(10, vec![ids[0], ids[1], ids[2], done, 99], "stuck");
    assert_eq!(
        outcomes,
        vec![
            Revoked::Terminated,
            Revoked::Cancelled,
            Revoked::Cancelled,
            Revoked::Unchanged,
            Revoked::Unchanged
        ]
    );
    assert_eq!(fx.finished, vec![ids[0], ids[1], ids[2]]);
    // The holder hears of the lease it lost, and nobody else of anything.
    assert_eq!(fx.pools.len(), 1);
    assert_eq!(fx.pools["w1"].revoked, vec![lr(ids[0], 1)]);
    for id in &ids {
        let v = h.s.task(*id).unwrap();
        assert_eq!(
            (v.state, v.error.as_deref()),
            (TaskState::Cancelled, Some("stuck"))
        );
    }
    assert_eq!(h.state(done), Some(TaskState::Succeeded));
    assert!(h.s.describe(ids[0]).unwrap().holder.is_none());
}

#[test]
fn a_revoked_lease_is_fenced() {
    let mut h = H::default();
    let mut s = spec("a");
    s.result_ttl_ms = 100_000;
    let id = h.submit(0, vec![s])[0];
    let l = h.lease(0, 1, 5_000)[0];
    let (outcomes, _) = h.revoke(1, vec![id], "");
    assert_eq!(outcomes, vec![Revoked::Terminated]);
    assert_eq!(h.s.task(id).unwrap().error.as_deref(), Some(REVOKED_ERROR));
    // Every later word of that attempt is stale, and the lease never expires into a rerun.
    assert_eq!(h.complete(2, l, ok(b"late")), CompletionResult::Stale);
    assert!(!h.heartbeat(2, l, 5_000));
    assert!(!h.release(2, l).0);
    h.tick(10_000);
    assert_eq!(h.state(id), Some(TaskState::Cancelled));
    assert!(h.lease(10_000, 1, 5_000).is_empty());
    // Revoking again changes nothing; a retry brings it back with a new attempt.
    assert_eq!(h.revoke(10_001, vec![id], "").0, vec![Revoked::Unchanged]);
    assert_eq!(h.retry(10_002, vec![id]).0, vec![true]);
    assert_eq!(h.lease(10_003, 1, 5_000), vec![lr(id, 2)]);
    assert_eq!(h.complete(10_004, l, ok(b"late")), CompletionResult::Stale);
}

#[test]
fn a_task_released_or_expired_before_the_revoke_is_just_cancelled() {
    let mut h = H::default();
    let ids = h.submit(0, vec![spec("a"), spec("b")]);
    let l = h.lease(0, 2, 100);
    h.release(1, l[0]);
    h.tick(200);
    assert_eq!(h.state(ids[1]), Some(TaskState::Pending), "its lease expired");
    let (outcomes, fx) = h.revoke(201, ids.clone(), "");
    assert_eq!(outcomes, vec![Revoked::Cancelled, Revoked::Cancelled]);
    assert!(fx.pools.is_empty(), "no pool holds them");
}
