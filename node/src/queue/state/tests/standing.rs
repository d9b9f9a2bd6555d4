//! Standing capacity: granting in the submit's entry, renewal, expiry, rotation, clearing.

use super::*;

fn stand(worker: &str, queues: &[&str], max: u32, lease_ms: u64) -> Command {
    Command::Lease {
        pool: worker.into(),
        queues: queues.iter().map(|q| q.to_string()).collect(),
        max,
        lease_ms,
        standing_ticket: Some(7),
    }
}

fn granted(fx: &ApplyEffects, worker: &str) -> Vec<TaskId> {
    fx.pools
        .get(worker)
        .map(|w| w.grants.iter().map(|g| g.lease.task).collect())
        .unwrap_or_default()
}

#[test]
fn an_idle_lease_leaves_standing_capacity_that_a_submit_is_granted_to_in_the_same_apply() {
    let mut h = H::default();
    let (r, fx) = h.apply(10, vec![stand("w1", &[], 2, 100)]);
    assert_eq!(r, vec![Response::Leased(vec![])]);
    let w = &fx.pools["w1"];
    assert_eq!((w.leases.clone(), w.standing), (vec![(7, 0)], Some(2)));
    assert_eq!(h.s.standing_capacity("w1"), 2);

    let (_, fx) = h.apply(
        20,
        vec![Command::Submit {
            tasks: vec![spec("a")].into(),
        }],
    );
    assert_eq!(granted(&fx, "w1"), vec![1]);
    let g = &fx.pools["w1"].grants[0];
    assert_eq!(
        (g.lease.attempt, g.lease_deadline_ms, g.name.as_str()),
        (1, 120, "a")
    );
    assert_eq!(fx.pools["w1"].standing, Some(1));
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
    assert_eq!(fx.pools["w1"].standing, Some(0));
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
    assert_eq!(fx.pools["w1"].leases, vec![(7, 0)]);
    assert_eq!(fx.pools["w1"].standing, Some(3));
    // A lease of 0 only renews (expiry 120 + 100); it leaves nothing new, so its reply settles
    // it and the pool hears nothing.
    let (_, fx) = h.apply(120, vec![stand("w1", &[], 0, 100)]);
    assert!(fx.pools.is_empty());
    // Not renewed: gone at 220, before the submit of that entry.
    let fx = h.tick(219);
    assert!(fx.pools.is_empty());
    assert_eq!(h.s.standing_capacity("w1"), 3);
    let (_, fx) = h.apply(
        220,
        vec![Command::Submit {
            tasks: vec![spec("a")].into(),
        }],
    );
    assert_eq!(fx.pools["w1"].standing, Some(0));
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
        for (w, e) in &fx.pools {
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
fn paused_queues_wait_and_clear_and_release_pool_drop_standing_capacity() {
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

    let (r, fx) = h.apply(3, vec![Command::ClearStanding { pool: "w1".into() }]);
    assert_eq!(r, vec![Response::ClearedStanding(true)]);
    assert_eq!(fx.pools["w1"].standing, Some(0));
    let (r, _) = h.apply(3, vec![Command::ClearStanding { pool: "w1".into() }]);
    assert_eq!(r, vec![Response::ClearedStanding(false)]);

    // ReleasePool: w2's lease goes back, its standing capacity is gone first, so the task
    // goes to w3's standing capacity, not back to w2.
    h.apply(4, vec![stand("w2", &[], 1, 1000), stand("w3", &[], 1, 1000)]);
    let (r, fx) = h.apply(5, vec![Command::ReleasePool { pool: "w2".into() }]);
    assert_eq!(r, vec![Response::ReleasedPool(1)]);
    assert_eq!(fx.pools["w2"].standing, Some(0));
    assert_eq!(granted(&fx, "w3"), vec![ids[1]]);
}

#[test]
fn a_new_term_drops_all_standing_capacity() {
    let mut h = H::default();
    h.apply(0, vec![stand("w1", &[], 2, 1000), stand("w2", &[], 1, 1000)]);
    let mut fx = ApplyEffects::default();
    h.s.new_term(&mut fx);
    assert_eq!(
        (fx.pools["w1"].standing, fx.pools["w2"].standing),
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
    assert!(fx.pools.is_empty());
    assert_eq!(fx.became_pending, 1);
    // And a pool stands again by leasing.
    h.apply(2, vec![stand("w1", &[], 2, 1000)]);
    assert_eq!(h.s.task(1).unwrap().state, TaskState::Leased);
    assert_eq!(h.s.standing_capacity("w1"), 1);
}

#[test]
fn pool_holdings_show_each_pools_leases_and_standing_capacity() {
    let mut h = H::default();
    assert!(h.s.pool_holdings().is_empty());
    h.apply(10, vec![stand("w1", &[], 2, 100)]);
    h.submit(20, vec![spec("a")]);
    let holdings = h.s.pool_holdings();
    assert_eq!(
        holdings.get("w1"),
        Some(&PoolHolding {
            leased: 1,
            standing: 1
        })
    );
    assert_eq!(holdings.len(), 1);
    // Past lease_ms both are gone: the standing capacity expired, the lease ran out.
    h.submit(300, vec![]);
    assert_eq!(h.s.pool_holdings().get("w1"), None);
}
