//! The interner: slots are reference-counted and recycled.

use super::*;

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
fn references_free_a_slot_at_zero_and_freed_slots_are_reused_last_in_first_out() {
    let mut i: Interner<Box<str>> = Interner::default();
    let (a, b, c) = (i.acquire("a"), i.acquire("b"), i.acquire("c"));
    assert_eq!((a, b, c), (0, 1, 2));
    assert_eq!(i.acquire("a"), a, "the same name, the same slot");
    let refs = |pairs: &[(u32, u64)]| pairs.iter().copied().collect::<BTreeMap<u32, u64>>();
    i.check("name", &refs(&[(0, 2), (1, 1), (2, 1)])).unwrap();
    assert!(!i.release(a), "one reference left");
    assert!(i.release(a));
    assert!(i.release(c));
    assert!(!i.release(c), "a freed slot has no reference to drop");
    assert_eq!((i.name(a), i.get("a")), ("", None));
    i.check("name", &refs(&[(1, 1)])).unwrap();
    assert!(i.check("name", &refs(&[(1, 2)])).is_err(), "counts must match");
    assert!(
        i.check("name", &refs(&[(0, 1), (1, 1)])).is_err(),
        "a freed slot is not live"
    );
    // Freed slots come back last in, first out: the same on every replica.
    assert_eq!(i.acquire("d"), c);
    assert_eq!(i.acquire("e"), a);
    assert_eq!(i.acquire("f"), 3);
    assert_eq!((i.name(c), i.name(a)), ("d", "e"));
    i.check("name", &refs(&[(0, 1), (1, 1), (2, 1), (3, 1)])).unwrap();
}
