//! Finding tasks (`state/listing.rs`): newest first, filters, the cursor and the scan budget.

use super::*;
use crate::queue::state::TaskFilter;
use crate::queue::state::TaskPage;

fn ids(page: &TaskPage) -> Vec<TaskId> {
    page.tasks.iter().map(|t| t.id).collect()
}

/// Tasks 1..=10 at times 0, 10, ..., 90; even ones on queue `even`, ids 3 and 6 dead.
fn ten() -> H {
    let mut h = H::default();
    for i in 1..=10u64 {
        let s = if i % 2 == 0 {
            in_queue(spec("even"), "even")
        } else {
            spec("odd")
        };
        h.submit((i - 1) * 10, vec![s]);
    }
    for id in [3, 6] {
        let queue = if id % 2 == 0 { "even" } else { "default" };
        let g = h.lease_from(100, &[queue], 10, 1_000);
        let l = g.iter().find(|g| g.lease.task == id).unwrap().lease;
        h.complete(100, l, failure(false));
        let others: Vec<LeaseRef> = g.iter().map(|g| g.lease).filter(|l| l.task != id).collect();
        for l in others {
            h.release(100, l);
        }
    }
    h
}

#[test]
fn newest_first_in_pages_that_continue_where_they_stopped() {
    let h = ten();
    let all = TaskFilter::default();
    let p1 = h.s.list_tasks(&all, None, 4, 1_000);
    assert_eq!(ids(&p1), vec![10, 9, 8, 7]);
    assert_eq!(p1.next_below, Some(7));
    let p2 = h.s.list_tasks(&all, p1.next_below, 4, 1_000);
    assert_eq!(ids(&p2), vec![6, 5, 4, 3]);
    let p3 = h.s.list_tasks(&all, p2.next_below, 4, 1_000);
    assert_eq!(ids(&p3), vec![2, 1]);
    assert_eq!(p3.next_below, None);
    // A cursor past the newest task is the newest task.
    assert_eq!(ids(&h.s.list_tasks(&all, Some(u64::MAX), 2, 1_000)), vec![10, 9]);
}

#[test]
fn filters_narrow_the_listing() {
    let h = ten();
    let f = |f: TaskFilter| ids(&h.s.list_tasks(&f, None, 100, 1_000));
    let even = TaskFilter {
        queue: Some("even".into()),
        ..TaskFilter::default()
    };
    assert_eq!(f(even.clone()), vec![10, 8, 6, 4, 2]);
    let dead = TaskFilter {
        states: vec![TaskState::Dead],
        ..TaskFilter::default()
    };
    assert_eq!(f(dead.clone()), vec![6, 3]);
    assert_eq!(
        f(TaskFilter {
            states: vec![TaskState::Dead],
            ..even
        }),
        vec![6]
    );
    let odd = TaskFilter {
        name: Some("odd".into()),
        ..TaskFilter::default()
    };
    assert_eq!(f(odd), vec![9, 7, 5, 3, 1]);
    let default_queue = TaskFilter {
        queue: Some(String::new()),
        ..TaskFilter::default()
    };
    assert_eq!(f(default_queue), vec![9, 7, 5, 3, 1]);
    // Created in [20, 60): tasks 3..=6.
    let window = TaskFilter {
        created_from_ms: Some(20),
        created_before_ms: Some(60),
        ..TaskFilter::default()
    };
    assert_eq!(f(window), vec![6, 5, 4, 3]);
    for unknown in [
        TaskFilter {
            queue: Some("nope".into()),
            ..TaskFilter::default()
        },
        TaskFilter {
            name: Some("nope".into()),
            ..TaskFilter::default()
        },
    ] {
        let page = h.s.list_tasks(&unknown, None, 100, 1_000);
        assert_eq!((page.tasks.len(), page.next_below, page.scanned), (0, None, 0));
    }
}

#[test]
fn the_scan_budget_ends_a_page_early_with_a_cursor() {
    let h = ten();
    let dead = TaskFilter {
        states: vec![TaskState::Dead],
        ..TaskFilter::default()
    };
    // Examining 3 tasks a page: 10, 9, 8 (none dead), then 7, 6, 5 (one)...
    let p = h.s.list_tasks(&dead, None, 100, 3);
    assert_eq!((ids(&p), p.next_below, p.scanned), (vec![], Some(8), 3));
    let p = h.s.list_tasks(&dead, p.next_below, 100, 3);
    assert_eq!((ids(&p), p.next_below), (vec![6], Some(5)));
    let mut below = p.next_below;
    let mut found = Vec::new();
    while let Some(b) = below {
        let p = h.s.list_tasks(&dead, Some(b), 100, 3);
        found.extend(ids(&p));
        below = p.next_below;
    }
    assert_eq!(found, vec![3]);
}

#[test]
fn a_time_range_stops_the_walk_at_its_start() {
    let h = ten();
    let recent = TaskFilter {
        created_from_ms: Some(75),
        ..TaskFilter::default()
    };
    let p = h.s.list_tasks(&recent, None, 100, 1_000);
    assert_eq!((ids(&p), p.next_below, p.scanned), (vec![10, 9], None, 2));
}

#[test]
fn purged_tasks_and_stragglers_are_walked_in_id_order() {
    let mut h = H::default();
    let mut keep = spec("kept");
    keep.countdown_ms = Some(1_000_000);
    h.submit(0, vec![keep]);
    let mut short = spec("short");
    short.result_ttl_ms = 1;
    // Enough short-lived tasks that the long-lived first one moves to the table's side tree.
    for _ in 0..3_000 {
        let id = h.submit(1, vec![short.clone()])[0];
        let l = h.lease(1, 1, 1_000);
        assert_eq!(l[0].task, id);
        h.complete(1, l[0], ok(b"1"));
    }
    let last = h.submit(5, vec![spec("last")])[0];
    h.tick(10);
    let page = h.s.list_tasks(&TaskFilter::default(), None, 10, 10_000);
    assert_eq!(ids(&page), vec![last, 1]);
    assert_eq!(page.next_below, None);
}

#[test]
fn describe_shows_the_holder_and_what_the_task_carries() {
    let mut h = H::default();
    let mut s = spec("job");
    s.args = bytes::Bytes::from_static(br#"{"n":1}"#);
    s.idempotency_key = Some("k1".into());
    s.headers = [("traceparent".to_string(), "00-x".to_string())].into();
    s.priority = 7;
    let id = h.submit(0, vec![s])[0];
    let d = h.s.describe(id).unwrap();
    assert_eq!((d.holder.as_deref(), d.timer_ms), (None, None));
    assert_eq!(&d.args[..], br#"{"n":1}"#);
    assert_eq!(d.idempotency_key.as_deref(), Some("k1"));
    assert_eq!(d.headers["traceparent"], "00-x");
    assert_eq!(d.priority, 7);
    h.lease(5, 1, 1_000);
    let d = h.s.describe(id).unwrap();
    assert_eq!((d.holder.as_deref(), d.timer_ms), (Some("w1"), Some(1_005)));
    assert_eq!(d.view.state, TaskState::Leased);
    assert!(h.s.describe(id + 1).is_none());
}
