//! CI smoke of `sim chaos`: the `sim` binary itself, against the debug `node` binary, for 30 s
//! of faults on 3 nodes. The history must be clean: nothing acknowledged lost, no result
//! changed, no violation, and the run really did something (tasks acknowledged, a node killed).
//!
//! Its own test binary, so it never overlaps another cluster of this crate's tests (cargo runs
//! test binaries one after another).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process};

/// The chaos run's bound: well under CI's patience, far above a healthy run (about 40 s).
const RUN_LIMIT: Duration = Duration::from_secs(110);

/// The `node` binary of this profile (built if needed), beside `sim`.
fn node_bin() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "-p", "flotilla-node", "--bin", "node"])
        .status()
        .expect("cannot run cargo");
    assert!(status.success(), "cargo build of node failed: {status}");
    let sim = Path::new(env!("CARGO_BIN_EXE_sim"));
    sim.with_file_name("node")
}

/// Waits for `child` up to `limit`; past it, SIGINT (so `sim` kills its nodes), then SIGKILL.
fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let step = Duration::from_millis(100);
    let mut waited = Duration::ZERO;
    while waited < limit {
        if let Some(status) = child.try_wait().expect("waiting for sim") {
            return Some(status);
        }
        std::thread::sleep(step);
        waited += step;
    }
    if let Some(pid) = i32::try_from(child.id()).ok().and_then(Pid::from_raw) {
        let _ = kill_process(pid, Signal::INT);
    }
    std::thread::sleep(Duration::from_secs(5));
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn thirty_seconds_of_chaos_lose_nothing() {
    let node = node_bin();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args([
            "chaos",
            "--nodes",
            "3",
            "--duration-s",
            "30",
            "--json",
            "--node-bin",
        ])
        .arg(&node)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning sim");
    // Read the pipes on threads so a chatty child cannot block on a full pipe.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).map(|_| s)
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).map(|_| s)
    });
    let status = wait_bounded(&mut child, RUN_LIMIT);
    let out = out.join().expect("stdout reader").expect("stdout");
    let err = err.join().expect("stderr reader").expect("stderr");
    let Some(status) = status else {
        panic!("sim chaos ran past {RUN_LIMIT:?}; stderr:\n{err}\nstdout:\n{out}");
    };
    let report: serde_json::Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("no JSON report ({e}); exit {status}; stderr:\n{err}\nstdout:\n{out}"));
    let n = |key: &str| {
        report[key]
            .as_u64()
            .unwrap_or_else(|| panic!("no number `{key}` in {report:#}"))
    };
    let context = format!("seed {}, rerun: {}\n{report:#}", report["seed"], report["rerun"]);
    assert_eq!(report["violations"], serde_json::json!([]), "{context}");
    assert!(
        status.success(),
        "exit {status} without a violation? {context}\nstderr:\n{err}"
    );
    assert_eq!(n("lost"), 0, "{context}");
    assert_eq!(n("duplicate_results"), 0, "{context}");
    assert_eq!(n("not_final"), 0, "{context}");
    assert!(n("acknowledged") > 0, "{context}");
    assert_eq!(
        n("acknowledged"),
        n("succeeded") + n("dead") + n("cancelled"),
        "{context}"
    );
    assert!(n("kills") >= 1, "{context}");
    assert_eq!(n("nodes"), 3);
    assert_eq!(report["duration_s"].as_f64(), Some(30.0));
    let unavailable = report["max_unavailable_s"].as_f64().expect("max_unavailable_s");
    assert!((0.0..=30.0).contains(&unavailable), "{context}");
    assert!(report["rerun"].as_str().unwrap().contains("--seed"), "{context}");
}
