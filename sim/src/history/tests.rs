//! The history checker against hand-made histories: each anomaly it names, and none on a clean run.

use super::*;

fn info(id: u64, state: TaskState, result: &'static [u8]) -> TaskInfo {
    TaskInfo {
        id: TaskId(id),
        name: "echo".into(),
        queue: "default".into(),
        state,
        attempt: 1,
        max_retries: 3,
        result: Bytes::from_static(result),
        error: None,
        created_unix_ms: 1,
        updated_unix_ms: 2,
    }
}

fn not_found(id: u64) -> TaskInfo {
    TaskInfo {
        name: String::new(),
        queue: String::new(),
        attempt: 0,
        ..info(id, TaskState::NotFound, b"")
    }
}

/// Three tasks acknowledged and seen through to a final state, with repeats; no event is
/// an anomaly.
fn clean() -> History {
    let mut h = History::new();
    let events = [
        h.acknowledged(TaskId(1), "k1"),
        h.acknowledged(TaskId(2), "k2"),
        h.acknowledged(TaskId(3), "k3"),
        // A retried submit answered as a duplicate: same key, same id.
        h.acknowledged(TaskId(2), "k2"),
        h.expect_result(TaskId(2), &b"[2]"[..]),
        h.observed(&info(1, TaskState::Pending, b"")),
        h.observed(&info(1, TaskState::Leased, b"")),
        h.observed(&info(1, TaskState::Succeeded, b"null")),
        h.observed(&info(2, TaskState::Succeeded, b"[2]")),
        h.observed(&info(3, TaskState::Dead, b"")),
        // The healed phase reads everything again.
        h.observed(&info(1, TaskState::Succeeded, b"null")),
        h.observed(&info(2, TaskState::Succeeded, b"[2]")),
        h.observed(&info(3, TaskState::Dead, b"")),
    ];
    assert_eq!(events.iter().flatten().count(), 0, "{events:?}");
    h
}

#[test]
fn a_clean_history_has_no_violation() {
    let v = clean().verdict();
    assert_eq!(v.violations(), Vec::<String>::new());
    assert!(v.is_clean());
    assert_eq!((v.acknowledged, v.succeeded, v.dead, v.cancelled), (3, 2, 1, 0));
    assert_eq!(v.lost, Problem::default());
    assert!(clean().unfinished().is_empty());
    assert!(clean().is_final(TaskId(3)));
}

#[test]
fn a_task_reported_not_found_is_lost_even_if_seen_again() {
    let mut h = clean();
    assert_eq!(h.acknowledged(TaskId(4), "k4"), None);
    let anomaly = h.observed(&not_found(4)).expect("an anomaly");
    assert_eq!(anomaly.id, TaskId(4));
    assert_eq!(
        anomaly.what,
        "task 4 (key k4) was acknowledged but reported not found"
    );
    // Reported once, not at every repeat.
    assert_eq!(h.observed(&not_found(4)), None);
    let v = h.verdict();
    assert_eq!(v.lost.count, 1);
    assert_eq!(v.lost.examples, [TaskId(4)]);
    assert_eq!(v.lost.details, ["task 4 (key k4) reported not found"]);
    assert!(!h.is_final(TaskId(4)));
    // Known again later: still an acknowledged task the cluster once did not know.
    h.observed(&info(4, TaskState::Succeeded, b"null"));
    let v = h.verdict();
    assert_eq!(v.lost.examples, [TaskId(4)]);
    assert_eq!(v.violations().len(), 1, "{:?}", v.violations());
    assert!(
        v.violations()[0].starts_with("1 acknowledged tasks lost"),
        "{:?}",
        v.violations()
    );
}

#[test]
fn a_get_answering_not_found_loses_a_finished_task() {
    let mut h = clean();
    assert!(h.observed_not_found(TaskId(1)).is_some());
    let v = h.verdict();
    assert_eq!(v.lost.examples, [TaskId(1)]);
    assert_eq!(v.succeeded, 1, "its last observation is not a success any more");
    assert!(
        h.unfinished().is_empty(),
        "not found is final: nothing to wait for"
    );
}

#[test]
fn an_acknowledged_task_never_observed_is_lost() {
    let mut h = clean();
    h.acknowledged(TaskId(9), "k9");
    assert_eq!(h.unfinished(), [TaskId(9)]);
    assert_eq!(h.verdict().lost.examples, [TaskId(9)]);
    // Observations of ids nobody acknowledged are not judged.
    let mut h = clean();
    assert_eq!(h.observed(&not_found(77)), None);
    assert!(h.verdict().is_clean());
    assert_eq!(h.verdict().acknowledged, 3);
}

#[test]
fn a_result_that_changes_is_a_duplicate_result() {
    let mut h = clean();
    let anomaly = h.observed(&info(1, TaskState::Succeeded, br#"{"run":2}"#));
    assert_eq!(
        anomaly.map(|a| a.what).as_deref(),
        Some(r#"task 1 (key k1) was seen succeeded null, then succeeded {"run":2}"#)
    );
    let v = h.verdict();
    assert_eq!(v.duplicate_results.examples, [TaskId(1)]);
    assert_eq!(
        v.duplicate_results.details,
        [r#"task 1: succeeded null, then succeeded {"run":2}"#]
    );
    assert_eq!(v.violations().len(), 1);
}

#[test]
fn a_final_task_going_back_to_pending_is_a_duplicate_result() {
    let mut h = clean();
    assert!(h.observed(&info(3, TaskState::Pending, b"")).is_some());
    let v = h.verdict();
    assert_eq!(v.duplicate_results.examples, [TaskId(3)]);
    assert_eq!(
        v.duplicate_results.details,
        ["task 3: dead (no result), then pending (no result)"]
    );
    // Its last observation is not final either: a liveness failure on top.
    assert_eq!(v.not_final.examples, [TaskId(3)]);
    // Even if it ends up in the same final state again.
    h.observed(&info(3, TaskState::Dead, b""));
    assert_eq!(h.verdict().duplicate_results.count, 1);
    assert_eq!(h.verdict().not_final.count, 0);
}

#[test]
fn one_key_under_two_ids_is_a_conflict() {
    let mut h = clean();
    let anomaly = h.acknowledged(TaskId(5), "k1").expect("an anomaly");
    assert_eq!(
        anomaly.what,
        "key k1 acknowledged as task 5, but earlier as task 1"
    );
    h.observed(&info(5, TaskState::Succeeded, b"null"));
    let v = h.verdict();
    assert_eq!(v.key_conflicts.count, 2);
    assert_eq!(v.key_conflicts.examples, [TaskId(1), TaskId(5)]);
    assert_eq!(v.key_conflicts.details[0], "key k1 under tasks 1, 5");
    assert_eq!(v.violations().len(), 1, "{:?}", v.violations());
}

#[test]
fn one_id_under_two_keys_is_a_conflict() {
    let mut h = clean();
    let anomaly = h.acknowledged(TaskId(1), "another").expect("an anomaly");
    assert_eq!(
        anomaly.what,
        "task 1 acknowledged under key another, but earlier under key k1"
    );
    let v = h.verdict();
    assert_eq!(v.key_conflicts.details, ["task 1 under keys another, k1"]);
    assert_eq!(v.key_conflicts.examples, [TaskId(1)]);
    assert_eq!(v.key_conflicts.count, 1);
}

#[test]
fn an_unexpected_result_is_wrong_whichever_comes_first() {
    let mut h = clean();
    h.acknowledged(TaskId(6), "k6");
    h.expect_result(TaskId(6), &b"[6]"[..]);
    let anomaly = h
        .observed(&info(6, TaskState::Succeeded, b"[7]"))
        .expect("an anomaly");
    assert_eq!(anomaly.what, "task 6 (key k6) succeeded with [7], expected [6]");
    assert_eq!(h.verdict().wrong_results.examples, [TaskId(6)]);
    assert_eq!(
        h.verdict().wrong_results.details,
        ["task 6: got [7], expected [6]"]
    );
    // The expectation may also be recorded after the observation.
    let mut h = clean();
    h.acknowledged(TaskId(6), "k6");
    assert_eq!(h.observed(&info(6, TaskState::Succeeded, b"[7]")), None);
    assert!(h.expect_result(TaskId(6), &b"[6]"[..]).is_some());
    assert_eq!(h.verdict().wrong_results.examples, [TaskId(6)]);
}

#[test]
fn a_task_still_pending_after_healing_is_not_final() {
    let mut h = clean();
    h.acknowledged(TaskId(8), "k8");
    h.observed(&info(8, TaskState::Leased, b""));
    assert_eq!(h.unfinished(), [TaskId(8)]);
    let v = h.verdict();
    assert_eq!(v.not_final.examples, [TaskId(8)]);
    assert_eq!(v.not_final.details, ["task 8 last seen leased"]);
    assert_eq!(v.lost.count, 0);
    assert!(!v.is_clean());
}

#[test]
fn examples_are_capped_and_the_verdict_serializes() {
    let mut h = History::new();
    for id in 1..=20 {
        h.acknowledged(TaskId(id), &format!("k{id}"));
    }
    let v = h.verdict();
    assert_eq!(v.lost.count, 20);
    assert_eq!(v.lost.examples.len(), EXAMPLES);
    assert_eq!(v.lost.details.len(), EXAMPLES);
    assert_eq!(v.lost.details[0], "task 1 (key k1) never seen");
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["lost"]["count"], 20);
    assert_eq!(json["lost"]["examples"][0], 1);
}

#[test]
fn long_results_are_cut_short_in_messages() {
    let long = Bytes::from("x".repeat(200));
    assert_eq!(Shown(&long).to_string(), format!("{}…", "x".repeat(80)));
    assert_eq!(Shown(&Bytes::new()).to_string(), "(no result)");
}

#[test]
fn availability_is_the_longest_gap_including_the_edges() {
    let t0 = Instant::now();
    let s = Duration::from_secs;
    let mut a = Availability::new(t0);
    assert_eq!(a.longest_until(t0 + s(4)), s(4));
    a.progress(t0 + s(1));
    a.progress(t0 + s(4));
    a.progress(t0 + s(5));
    // A mark from a slower client, earlier than the last one, changes nothing.
    a.progress(t0 + s(2));
    assert_eq!(a.longest_until(t0 + s(6)), s(3));
    assert_eq!(a.longest_until(t0 + s(10)), s(5));
}
