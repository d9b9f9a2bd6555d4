//! Flow control (`limits.rs`, `lanes.rs`): concurrency and rate limits per queue, name and key,
//! fair turns between keys, waking held tasks, and what `limits()` shows.

use super::*;

fn set(scope: &str, rate: Option<&str>, concurrency: Option<u32>) -> Command {
    Command::SetLimit {
        scope: scope.parse().unwrap(),
        rule: LimitRule {
            rate: rate.map(|r| r.parse().unwrap()),
            concurrency,
        },
    }
}

fn keyed(name: &str, key: &str) -> TaskSpec {
    TaskSpec {
        concurrency_key: Some(key.into()),
        ..spec(name)
    }
}

fn names(h: &H, leases: &[LeaseRef]) -> Vec<String> {
    leases.iter().map(|l| h.s.task(l.task).unwrap().name).collect()
}

fn held(h: &H, scope: &str) -> (u64, u64) {
    let scope: LimitScope = scope.parse().unwrap();
    h.s.limits()
        .into_iter()
        .find(|l| l.scope == scope)
        .map_or((0, 0), |l| (l.running, l.held))
}

impl H {
    fn limit(&mut self, now: UnixMs, cmd: Command) -> Response {
        self.apply(now, vec![cmd]).0.remove(0)
    }
}

#[test]
fn a_task_concurrency_holds_its_name_back_and_lets_others_pass() {
    let mut h = H::default();
    assert_eq!(
        h.limit(0, set("task:a", None, Some(1))),
        Response::LimitSet(Ok(()))
    );
    h.submit(0, vec![spec("a"), spec("a"), spec("b"), spec("a")]);
    let got = h.lease(1, 10, 1_000);
    // The name's lane and the plain tasks take turns: both go, in either order.
    let mut got_names = names(&h, &got);
    got_names.sort();
    assert_eq!(got_names, ["a", "b"]);
    let got: Vec<LeaseRef> = got
        .into_iter()
        .filter(|l| h.s.task(l.task).unwrap().name == "a")
        .collect();
    assert_eq!(held(&h, "task:a"), (1, 2));
    assert!(h.lease(2, 10, 1_000).is_empty());
    // Completing the running one lets exactly one more go.
    let fx = h
        .apply(
            3,
            vec![Command::Complete {
                pool: "w1".into(),
                completions: vec![Completion {
                    lease: got[0],
                    outcome: ok(b"1"),
                }],
            }],
        )
        .1;
    assert!(fx.became_pending > 0, "a freed limit wakes idle pools");
    let next = h.lease(4, 10, 1_000);
    assert_eq!((names(&h, &next), next[0].task), (vec!["a".to_string()], 2));
    assert_eq!(held(&h, "task:a"), (1, 1));
}

#[test]
fn concurrency_holds_through_expiry_release_and_retry() {
    let mut h = H::default();
    h.limit(0, set("task:a", None, Some(2)));
    h.submit(
        0,
        vec![
            TaskSpec {
                max_retries: 3,
                ..spec("a")
            };
            5
        ],
    );
    let got = h.lease(0, 10, 100);
    assert_eq!(got.len(), 2);
    // A release frees a slot; the released task goes back and one (it, by id) is granted again.
    assert!(h.release(1, got[0]).0);
    assert_eq!(h.lease(1, 10, 100).len(), 1);
    assert!(h.lease(1, 10, 100).is_empty());
    // A retryable failure frees a slot.
    assert_eq!(h.complete(2, got[1], failure(true)), CompletionResult::Accepted);
    assert_eq!(h.lease(2, 10, 100).len(), 1);
    // Leases expire: both slots free, both taken again, never more than two.
    h.tick(500);
    assert_eq!(held(&h, "task:a").0, 0);
    assert_eq!(h.lease(500, 10, 100).len(), 2);
    assert_eq!(held(&h, "task:a"), (2, 3));
}

#[test]
fn a_queue_concurrency_skips_the_queue() {
    let mut h = H::default();
    h.limit(0, set("queue:slow", None, Some(1)));
    h.submit(
        0,
        vec![
            in_queue(spec("a"), "slow"),
            in_queue(spec("b"), "slow"),
            spec("c"),
        ],
    );
    let got = h.lease(0, 10, 1_000);
    assert_eq!(names(&h, &got), ["c", "a"]);
    assert_eq!(held(&h, "queue:slow"), (1, 1));
    assert_eq!(h.s.leasable(&[]), 0);
}

#[test]
fn a_rate_grants_its_burst_then_wakes_held_tasks_on_the_log_clock() {
    let mut h = H::default();
    h.limit(0, set("queue:default", Some("2/s"), None));
    h.submit(0, vec![spec("a"); 5]);
    assert_eq!(h.lease(0, 10, 60_000).len(), 2);
    assert!(h.lease(1, 10, 60_000).is_empty());
    // The next token comes at 500 ms: the leader's tick is due then, with no new submit.
    assert_eq!(h.s.next_deadline_ms(), Some(500));
    assert_eq!(h.tick(499).became_pending, 0);
    assert!(h.tick(500).became_pending > 0);
    assert_eq!(h.lease(500, 10, 60_000).len(), 1);
    assert!(h.lease(999, 10, 60_000).is_empty());
    assert_eq!(h.lease(1000, 10, 60_000).len(), 1);
}

#[test]
fn held_tasks_go_to_standing_capacity_when_tokens_return() {
    let mut h = H::default();
    h.limit(0, set("task:a", Some("1/s"), None));
    h.submit(0, vec![spec("a"), spec("a")]);
    assert_eq!(h.lease(0, 10, 60_000).len(), 1);
    let stand = Command::Lease {
        pool: "w2".into(),
        queues: vec![],
        max: 5,
        lease_ms: 60_000,
        standing_ticket: Some(1),
    };
    let (r, _) = h.apply(10, vec![stand]);
    assert_eq!(r, vec![Response::Leased(vec![])]);
    let fx = h.tick(1000);
    assert_eq!(
        fx.pools["w2"]
            .grants
            .iter()
            .map(|g| g.lease.task)
            .collect::<Vec<_>>(),
        vec![2]
    );
}

#[test]
fn a_burst_of_one_key_delays_another_key_by_one_turn_at_most() {
    let mut h = H::default();
    h.submit(0, (0..10_000).map(|_| keyed("t", "big")).collect());
    let first = h.lease(1, 1, 60_000);
    assert_eq!(first.len(), 1);
    let [small] = h.submit(2, vec![keyed("t", "small")])[..] else {
        panic!()
    };
    // A new key joins the ring behind the keys there: after at most one more grant of the
    // big key (its turn), the small key's task goes.
    let next: Vec<TaskId> = (0..2).map(|i| h.lease(3 + i, 1, 60_000)[0].task).collect();
    assert!(next.contains(&small), "{next:?}");
    // Turns alternate between keys with pending tasks; plain tasks are one more lane.
    let ids = h.submit(4, vec![keyed("t", "small"), spec("plain"), keyed("t", "small")]);
    let got: Vec<TaskId> = (0..6).map(|i| h.lease(5 + i, 1, 60_000)[0].task).collect();
    let smalls: Vec<usize> = got
        .iter()
        .enumerate()
        .filter(|(_, id)| ids.contains(id))
        .map(|(i, _)| i)
        .collect();
    assert!(
        smalls.len() == 3 && smalls.windows(2).all(|w| w[1] - w[0] <= 3),
        "{got:?} {ids:?}"
    );
}

#[test]
fn a_key_concurrency_holds_each_key_apart() {
    let mut h = H::default();
    h.limit(0, set("key:*", None, Some(1)));
    h.limit(0, set("key:vip", None, Some(3)));
    let mut tasks: Vec<TaskSpec> = (0..4).map(|_| keyed("t", "a")).collect();
    tasks.extend((0..4).map(|_| keyed("t", "vip")));
    tasks.push(spec("plain"));
    h.submit(0, tasks);
    let got = h.lease(1, 100, 60_000);
    assert_eq!(got.len(), 1 + 3 + 1);
    assert_eq!(held(&h, "key:*"), (1, 3));
    assert_eq!(held(&h, "key:vip"), (3, 1));
    // key:* takes a concurrency only.
    assert!(matches!(
        h.limit(2, set("key:*", Some("1/s"), None)),
        Response::LimitSet(Err(_))
    ));
    // Removing the default lets the rest of key a go.
    assert_eq!(
        h.limit(
            3,
            Command::RemoveLimit {
                scope: LimitScope::AnyKey
            }
        ),
        Response::LimitRemoved(true)
    );
    assert_eq!(h.lease(4, 100, 60_000).len(), 3);
}

#[test]
fn setting_a_limit_later_covers_running_and_pending_tasks() {
    let mut h = H::default();
    h.submit(0, vec![spec("a"); 4]);
    assert_eq!(h.lease(0, 2, 60_000).len(), 2);
    h.limit(1, set("task:a", None, Some(2)));
    assert_eq!(held(&h, "task:a"), (2, 0));
    assert!(h.lease(2, 10, 60_000).is_empty());
    assert_eq!(held(&h, "task:a"), (2, 2));
    // Removing it moves the tasks back to plain and wakes them.
    let fx = h
        .apply(
            3,
            vec![Command::RemoveLimit {
                scope: "task:a".parse().unwrap(),
            }],
        )
        .1;
    assert!(fx.became_pending > 0);
    assert_eq!(h.lease(4, 10, 60_000).len(), 2);
}

#[test]
fn purge_and_cancel_reach_laned_tasks_and_keys_go_with_their_tasks() {
    let mut h = H::default();
    h.limit(0, set("task:a", None, Some(0)));
    h.submit(
        0,
        vec![
            in_queue(spec("a"), "q"),
            in_queue(keyed("b", "k"), "q"),
            in_queue(spec("c"), "q"),
        ],
    );
    let purged = h.apply(1, vec![Command::PurgeQueue { queue: "q".into() }]).0;
    assert_eq!(purged[0], Response::Purged(3));
    h.tick(10_000);
    assert_eq!(h.s.task_count(), 0);
    assert!(h.s.idx.flow.lanes.is_empty());
}

#[test]
fn a_rule_out_of_bounds_is_refused() {
    let mut h = H::default();
    let empty = Command::SetLimit {
        scope: LimitScope::Queue("q".into()),
        rule: LimitRule::default(),
    };
    assert_eq!(h.limit(0, empty), Response::LimitSet(Err(LimitError::Empty)));
    let bad_rate = Command::SetLimit {
        scope: LimitScope::Queue("q".into()),
        rule: LimitRule {
            rate: Some(Rate { tokens: 5, per_ms: 0 }),
            concurrency: None,
        },
    };
    assert!(matches!(
        h.limit(0, bad_rate),
        Response::LimitSet(Err(LimitError::BadRate(_)))
    ));
    assert_eq!(
        h.limit(
            0,
            Command::RemoveLimit {
                scope: LimitScope::AnyKey
            }
        ),
        Response::LimitRemoved(false)
    );
    assert!(h.s.limits().is_empty());
}

#[test]
fn a_queue_rate_wakes_standing_capacity_without_a_lease() {
    let mut h = H::default();
    h.limit(0, set("queue:default", Some("2/s"), None));
    let stand = Command::Lease {
        pool: "w2".into(),
        queues: vec![],
        max: 10,
        lease_ms: 60_000,
        standing_ticket: Some(1),
    };
    h.apply(0, vec![stand]);
    let fx = h
        .apply(
            1,
            vec![Command::Submit {
                tasks: vec![spec("a"); 5].into(),
            }],
        )
        .1;
    assert_eq!(fx.pools["w2"].grants.len(), 2, "the burst");
    // Nothing but the log's clock: the tick at the next token grants one more.
    assert_eq!(h.s.next_deadline_ms(), Some(501));
    assert_eq!(h.tick(501).pools["w2"].grants.len(), 1);
}
