//! `check_invariants` finds every kind of corruption it is there for.

use super::*;

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
    bad.idx.pools.slots[0].refs += 1;
    assert!(bad.check_invariants().is_err());
    let mut bad = h.s.clone();
    bad.next_id = 2;
    assert!(bad.check_invariants().is_err());
    let mut bad = h.s.clone();
    bad.task_names.free.push(0);
    assert!(bad.check_invariants().is_err());
    // A heartbeat that adds the new deadline and leaves the old one behind (the bug switch
    // `heartbeat-keeps-old-timer` does so, for `sim dst` to catch).
    let mut bad = h.s.clone();
    let (_, _, deadline) = bad.current_lease(1).unwrap();
    bad.idx.timers.insert((deadline + 50, 1));
    assert!(bad.check_invariants().unwrap_err().contains("timers"));
}
