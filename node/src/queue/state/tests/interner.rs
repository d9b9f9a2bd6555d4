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
