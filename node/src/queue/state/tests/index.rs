//! The indexes: lease order (queues, priority, FIFO).

use super::*;

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
