//! Attempt histories (`state/attempts.rs`): off until `RecordAttempts`, then every grant and
//! every way an attempt ends, the bound, the purge, and the snapshot format they need.

use super::*;

impl H {
    fn record_attempts(&mut self, now: UnixMs) -> bool {
        match self.apply(now, vec![Command::RecordAttempts]).0.remove(0) {
            Response::RecordingAttempts(on) => on,
            r => panic!("unexpected {r:?}"),
        }
    }

    fn history(&self, id: TaskId) -> Vec<Row> {
        self.s
            .describe(id)
            .unwrap()
            .attempts
            .into_iter()
            .map(|a| (a.attempt, a.holder, a.granted_ms, a.ended))
            .collect()
    }
}

/// One attempt as a test compares it: number, holder, granted at, (ended at, how).
type Row = (u32, String, UnixMs, Option<(UnixMs, AttemptEnd)>);

fn w1() -> String {
    "w1".into()
}

#[test]
fn nothing_is_recorded_before_the_switch() {
    let mut h = H::default();
    let id = h.submit(0, vec![spec("a")])[0];
    let l = h.lease(1, 1, 1_000);
    h.complete(2, l[0], ok(b"1"));
    assert!(h.history(id).is_empty());
    assert!(!h.s.records_attempts());
    // A cluster that never switched keeps writing the format before the table.
    assert!(h.s.snapshot_format() <= 10);
    assert!(h.record_attempts(3));
    assert!(!h.record_attempts(4), "a second switch changes nothing");
    // The attempt that ended before the switch stays unrecorded.
    assert!(h.history(id).is_empty());
    assert_eq!(h.s.snapshot_format(), 11);
}

#[test]
fn a_task_that_fails_once_then_succeeds_shows_both_attempts() {
    let mut h = H::default();
    h.record_attempts(0);
    let mut s = spec("flaky");
    s.max_retries = 1;
    let id = h.submit(0, vec![s])[0];
    let l = h.lease(10, 1, 1_000);
    h.complete(20, l[0], failure(true));
    let l = h.lease(30, 1, 1_000);
    assert_eq!(
        h.history(id),
        vec![
            (1, w1(), 10, Some((20, AttemptEnd::Failed { retryable: true }))),
            (2, w1(), 30, None),
        ]
    );
    h.complete(40, l[0], ok(b"1"));
    assert_eq!(h.history(id)[1].3, Some((40, AttemptEnd::Succeeded)));
}

#[test]
fn every_way_an_attempt_ends_is_recorded() {
    let mut h = H::default();
    h.record_attempts(0);
    let mut s = spec("t");
    s.max_retries = 5;
    let ids = h.submit(0, vec![s.clone(), s.clone(), s])[..].to_vec();
    // Lost: its lease runs out.
    h.lease(0, 1, 100);
    h.tick(100);
    assert_eq!(h.history(ids[0])[0].3, Some((100, AttemptEnd::LostLease)));
    // Released, then a fatal failure.
    let l2 = h.lease(200, 1, 1_000);
    assert_eq!(l2[0].task, ids[0]);
    h.release(210, l2[0]);
    let l3 = h.lease(220, 1, 1_000);
    h.complete(230, l3[0], failure(false));
    assert_eq!(
        h.history(ids[0]),
        vec![
            (1, w1(), 0, Some((100, AttemptEnd::LostLease))),
            (2, w1(), 200, Some((210, AttemptEnd::Released))),
            (3, w1(), 220, Some((230, AttemptEnd::Failed { retryable: false }))),
        ]
    );
    // Revoked while it runs.
    let l = h.lease(300, 1, 1_000);
    assert_eq!(l[0].task, ids[1]);
    h.apply(
        310,
        vec![Command::Revoke {
            ids: vec![ids[1]],
            reason: String::new(),
        }],
    );
    assert_eq!(
        h.history(ids[1]),
        vec![(1, w1(), 300, Some((310, AttemptEnd::Revoked)))]
    );
    // A pool that restarts releases what it held.
    let held = h.lease(400, 1, 1_000);
    assert_eq!(held[0].task, ids[2]);
    h.apply(410, vec![Command::ReleasePool { pool: w1() }]);
    assert_eq!(h.history(ids[2])[0].3, Some((410, AttemptEnd::Released)));
    // A stale completion of an ended attempt changes nothing.
    let before = h.history(ids[0]);
    h.complete(500, l[0], ok(b"1"));
    assert_eq!(h.history(ids[0]), before);
}

#[test]
fn holders_are_named_and_an_attempt_running_at_the_switch_is_not_recorded() {
    let mut h = H::default();
    let id = h.submit(0, vec![spec("a")])[0];
    let running = h.lease(0, 1, 1_000);
    h.record_attempts(1);
    h.release(2, running[0]);
    assert!(
        h.history(id).is_empty(),
        "the attempt that started unrecorded stays so"
    );
    let cmd = Command::Lease {
        pool: "remote-worker-7".into(),
        queues: vec![],
        max: 1,
        lease_ms: 1_000,
        standing_ticket: None,
    };
    h.apply(3, vec![cmd]);
    assert_eq!(h.history(id), vec![(2, "remote-worker-7".into(), 3, None)]);
}

#[test]
fn the_history_keeps_the_last_16_and_goes_with_the_task() {
    let mut h = H::default();
    h.record_attempts(0);
    let mut s = spec("t");
    s.max_retries = 100;
    s.result_ttl_ms = 50;
    let id = h.submit(0, vec![s])[0];
    for i in 0..20u64 {
        let l = h.lease(i * 10, 1, 1_000);
        h.complete(i * 10 + 1, l[0], failure(true));
    }
    let history = h.history(id);
    assert_eq!(history.len(), MAX_ATTEMPT_HISTORY);
    assert_eq!(history[0].0, 5);
    assert_eq!(history[15].0, 20);
    let l = h.lease(1_000, 1, 1_000);
    h.complete(1_001, l[0], ok(b"1"));
    assert_eq!(h.s.attempts.len(), 1);
    // Purged at the end of its result TTL: the history goes, and its holder's name.
    h.tick(1_051);
    assert!(h.s.task(id).is_none());
    assert!(h.s.attempts.is_empty());
    assert_eq!(h.s.attempts.history(id), vec![]);
}

#[test]
fn a_pending_task_has_no_history_and_the_table_survives_a_snapshot() {
    let mut h = H::default();
    h.record_attempts(0);
    let ids = h.submit(0, vec![spec("a"), spec("b")]);
    let l = h.lease(1, 1, 1_000);
    h.complete(2, l[0], ok(b"1"));
    h.lease(3, 1, 1_000);
    let pending = h.submit(4, vec![spec("c")])[0];
    assert!(h.history(pending).is_empty());
    assert_eq!(h.s.attempts.len(), 2);
    let cfg = bincode::config::standard();
    let bytes = bincode::serde::encode_to_vec(InFormat(&h.s, 11), cfg).unwrap();
    let (back, _): (ReadFormat<11>, usize) = bincode::serde::decode_from_slice(&bytes, cfg).unwrap();
    assert_eq!(back.0, h.s);
    assert_eq!(back.0.describe(ids[1]).unwrap().attempts.len(), 1);
    back.0.check_invariants().unwrap();
    // Format 10 would lose the table: refused.
    assert!(bincode::serde::encode_to_vec(InFormat(&h.s, 10), cfg).is_err());
}

/// A snapshot's frozen view shares the histories of the tasks that ran (3,000 finished tasks,
/// ids 1 to 3,000, in chunks 0 to 2 of 1,024 ids): the applies after the freeze copy only the
/// chunks they write to, and the view still encodes the state as it was when frozen.
#[test]
fn a_frozen_view_shares_the_attempt_histories_and_keeps_its_state() {
    let mut h = H::default();
    h.record_attempts(0);
    h.submit(1, (0..3000).map(|_| spec("t")).collect());
    for now in 0..3 {
        for l in h.lease(2 + now, 1000, 60_000) {
            h.complete(2 + now, l, ok(b"1"));
        }
    }
    let more = h.submit(10, vec![spec("t")])[0];
    assert_eq!(h.s.attempts.len(), 3000);
    let cfg = bincode::config::standard();
    let bytes = bincode::serde::encode_to_vec(&h.s, cfg).unwrap();
    let mut frozen = h.s.freeze();
    assert_eq!(h.s.attempts.shared_chunks(frozen.attempts()), 3);
    // A stale completion of task 5's first attempt changes nothing and copies nothing.
    h.complete(11, LeaseRef { task: 5, attempt: 1 }, ok(b"2"));
    assert_eq!(h.s.attempts.shared_chunks(frozen.attempts()), 3);
    let l = h.lease(12, 1, 60_000);
    assert_eq!(l[0].task, more);
    assert_eq!(
        h.s.attempts.shared_chunks(frozen.attempts()),
        2,
        "granting task 3,001 (chunk 2) copies that chunk only"
    );
    h.complete(13, l[0], ok(b"1"));
    assert_eq!(h.s.attempts.shared_chunks(frozen.attempts()), 2);
    assert_eq!(h.history(more).len(), 1);
    let state = frozen.for_encoding().unwrap();
    assert_eq!(bincode::serde::encode_to_vec(state, cfg).unwrap(), bytes);
    assert_eq!(state.describe(more).unwrap().attempts.len(), 0);
    h.s.check_invariants().unwrap();
}

/// A measurement, not a test: the freeze's cost with `n` finished tasks held, each with one
/// recorded attempt, against a deep copy of the same histories as the `BTreeMap` they were
/// before they were shared by chunks (what the freeze copied then). Best of 15 each, release:
/// `cargo test --release -p flotilla-node --lib freeze_cost -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement; run by hand in release"]
fn freeze_cost_with_many_finished_tasks_held() {
    use std::time::Instant;
    // The copy only: what it made is dropped after the clock stops. A measurement of real
    // time outside any simulation, hence the wall clock.
    #[allow(clippy::disallowed_methods)]
    fn best<T>(f: impl Fn() -> T) -> f64 {
        (0..15)
            .map(|_| {
                let t = Instant::now();
                let made = f();
                let ms = t.elapsed().as_secs_f64() * 1e3;
                drop(made);
                ms
            })
            .fold(f64::MAX, f64::min)
    }
    for n in [100_000u64, 400_000] {
        let mut s = QueueState::new();
        let mut now = 0;
        let mut step = |s: &mut QueueState, commands: Vec<Command>| {
            now += 1;
            s.apply(
                &Request {
                    now_ms: now,
                    commands,
                },
                &mut ApplyEffects::default(),
            )
        };
        step(&mut s, vec![Command::RecordAttempts]);
        for _ in 0..n / 1000 {
            let tasks: Vec<TaskSpec> = (0..1000).map(|_| spec("t")).collect();
            step(&mut s, vec![Command::Submit { tasks: tasks.into() }]);
            let lease = Command::Lease {
                pool: "w1".into(),
                queues: Vec::new(),
                max: 1000,
                lease_ms: 60_000,
                standing_ticket: None,
            };
            let Response::Leased(grants) = step(&mut s, vec![lease]).remove(0) else {
                panic!("no grants")
            };
            let completions = grants
                .into_iter()
                .map(|g| Completion {
                    lease: g.lease,
                    outcome: ok(b"1"),
                })
                .collect();
            step(
                &mut s,
                vec![Command::Complete {
                    pool: "w1".into(),
                    completions,
                }],
            );
        }
        assert_eq!(s.attempts.len() as u64, n);
        let freeze_ms = best(|| s.freeze());
        let histories = s.attempts.as_btree();
        let copy_ms = best(|| histories.clone());
        println!(
            "{n} finished tasks held: freeze {freeze_ms:.3} ms; a deep copy of their histories \
             (what the freeze also copied before) {copy_ms:.3} ms"
        );
    }
}
