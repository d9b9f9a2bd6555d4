//! What the `sim chaos` smoke tests share: the `node` binary, and one bounded run of the `sim`
//! binary with its JSON report.

// Each test binary that includes this module uses a part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process};

/// The `node` binary of this profile (built if needed), beside `sim`.
pub fn node_bin() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "-p", "flotilla-node", "--bin", "node"])
        .status()
        .expect("cannot run cargo");
    assert!(status.success(), "cargo build of node failed: {status}");
    let sim = Path::new(env!("CARGO_BIN_EXE_sim"));
    sim.with_file_name("node")
}

/// Waits for `child` up to `limit`; past it, SIGINT (so `sim` kills its nodes and removes its
/// namespaces), then SIGKILL.
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

/// A finished `sim chaos --json` run.
pub struct Run {
    /// The pid `sim` ran as (its namespaces are named after it).
    pub pid: u32,
    pub status: ExitStatus,
    pub stderr: String,
    pub report: serde_json::Value,
    /// The report, seed and rerun line, for assertion messages.
    pub context: String,
}

impl Run {
    /// The number `key` of the report.
    pub fn n(&self, key: &str) -> u64 {
        self.report[key]
            .as_u64()
            .unwrap_or_else(|| panic!("no number `{key}` in {:#}", self.report))
    }

    /// What every chaos run must show: no violation, nothing lost, duplicated or wrong,
    /// every acknowledged task final, and some work done.
    pub fn assert_clean(&self) {
        let context = &self.context;
        assert_eq!(self.report["violations"], serde_json::json!([]), "{context}");
        assert!(
            self.status.success(),
            "exit {} without a violation? {context}\nstderr:\n{}",
            self.status,
            self.stderr
        );
        assert_eq!(self.n("lost"), 0, "{context}");
        assert_eq!(self.n("duplicate_results"), 0, "{context}");
        assert_eq!(self.n("wrong_results"), 0, "{context}");
        assert_eq!(self.n("not_final"), 0, "{context}");
        assert!(self.n("acknowledged") > 0, "{context}");
        assert_eq!(
            self.n("acknowledged"),
            self.n("succeeded") + self.n("dead") + self.n("cancelled"),
            "{context}"
        );
        assert!(
            self.report["rerun"].as_str().unwrap().contains("--seed"),
            "{context}"
        );
    }
}

/// Runs `sim chaos <args> --json --node-bin <node>` for at most `limit`.
pub fn run_chaos(args: &[&str], limit: Duration) -> Run {
    let node = node_bin();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sim"))
        .arg("chaos")
        .args(args)
        .args(["--json", "--node-bin"])
        .arg(&node)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning sim");
    let pid = child.id();
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
    let status = wait_bounded(&mut child, limit);
    let out = out.join().expect("stdout reader").expect("stdout");
    let stderr = err.join().expect("stderr reader").expect("stderr");
    let Some(status) = status else {
        panic!("sim chaos ran past {limit:?}; stderr:\n{stderr}\nstdout:\n{out}");
    };
    let report: serde_json::Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("no JSON report ({e}); exit {status}; stderr:\n{stderr}\nstdout:\n{out}"));
    let context = format!("seed {}, rerun: {}\n{report:#}", report["seed"], report["rerun"]);
    Run {
        pid,
        status,
        stderr,
        report,
        context,
    }
}
