//! The task table under apply: a long-lived task does not pin the ring.

use super::*;

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
        h.apply(
            now,
            vec![Command::Complete {
                pool: worker,
                completions,
            }],
        );
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

/// A snapshot's frozen view shares the task table: the applies after it copy only the chunks
/// they write to (ids 1 to 5,000 sit in 5 chunks), and the view still encodes the state as it
/// was when frozen.
#[test]
fn a_frozen_view_shares_the_task_table_and_keeps_its_state() {
    let mut h = H::default();
    for now in 1..=5 {
        h.submit(now, (0..1000).map(|_| spec("t")).collect());
    }
    let cfg = bincode::config::standard();
    let bytes = bincode::serde::encode_to_vec(&h.s, cfg).unwrap();
    let mut frozen = h.s.freeze();
    assert_eq!(frozen.task_count(), 5000);
    assert_eq!(h.s.tasks.shared_chunks(frozen.tasks()), 5);
    assert_eq!(h.lease(6, 10, 60_000).len(), 10);
    assert_eq!(
        h.s.tasks.shared_chunks(frozen.tasks()),
        4,
        "leasing tasks 1 to 10 copies their chunk only"
    );
    h.submit(7, vec![spec("t")]);
    assert_eq!(
        h.s.tasks.shared_chunks(frozen.tasks()),
        3,
        "task 5,001 is appended to a copy of the last chunk"
    );
    let state = frozen.for_encoding().unwrap();
    assert_eq!(bincode::serde::encode_to_vec(state, cfg).unwrap(), bytes);
    h.s.check_invariants().unwrap();
}
