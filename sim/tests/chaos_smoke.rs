//! CI smoke of `sim chaos`: the `sim` binary itself, against the debug `node` binary, for 30 s
//! of faults on 3 nodes. The history must be clean: nothing acknowledged lost, no result
//! changed, no violation, and the run really did something (tasks acknowledged, a node killed).
//!
//! Its own test binary, so it never overlaps another cluster of this crate's tests (cargo runs
//! test binaries one after another).

mod common;

use std::time::Duration;

/// The chaos run's bound: well under CI's patience, far above a healthy run (about 40 s).
const RUN_LIMIT: Duration = Duration::from_secs(110);

#[test]
fn thirty_seconds_of_chaos_lose_nothing() {
    let run = common::run_chaos(&["--nodes", "3", "--duration-s", "30"], RUN_LIMIT);
    run.assert_clean();
    let context = &run.context;
    assert!(run.n("kills") >= 1, "{context}");
    assert_eq!(run.n("nodes"), 3);
    assert_eq!(run.report["duration_s"].as_f64(), Some(30.0));
    let unavailable = run.report["max_unavailable_s"]
        .as_f64()
        .expect("max_unavailable_s");
    assert!((0.0..=30.0).contains(&unavailable), "{context}");
    assert!(run.report["net"].is_null(), "{context}");
}
