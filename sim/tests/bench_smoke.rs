//! CI smoke of `sim bench`: the library runs each scenario small against the debug `node`
//! binary, and the reports must be sane. Behaviour only: no speed is asserted.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use flotilla_sim::bench::{self, BenchOptions, cluster::locate_node_bin};

/// The `node` binary of this profile, built once per test process.
fn node_bin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "--quiet", "-p", "flotilla-node", "--bin", "node"])
                .status()
                .expect("cannot run cargo");
            assert!(status.success(), "cargo build of node failed: {status}");
            // The test executable is target/<profile>/deps/<name>; binaries sit one level up.
            let exe = std::env::current_exe().expect("current exe");
            let dir = exe.parent().and_then(Path::parent).expect("target dir");
            locate_node_bin(Some(&dir.join("node"))).expect("node binary")
        })
        .clone()
}

fn small(tasks: usize) -> BenchOptions {
    let mut opts = BenchOptions::new(node_bin());
    opts.tasks = tasks;
    opts.batch = 200;
    opts.latency_rate = 100.0;
    opts.latency_s = 1.0;
    opts.workers = 2;
    opts.phase_timeout = Duration::from_secs(120);
    opts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_report_is_sane() {
    let r = bench::run_throughput(&small(2000)).await.unwrap();
    assert_eq!(r.failed, 0, "{:?}", r.first_problem);
    assert_eq!(r.e2e_outcomes.succeeded, 2000);
    assert!(r.submit_tasks_per_s > 0.0 && r.e2e_tasks_per_s > 0.0, "{r:?}");
    assert_eq!((r.latency.sent, r.latency.succeeded), (100, 100));
    let p = r.latency_ms.expect("latency percentiles");
    assert!(
        p.p50 > 0.0 && p.p50 <= p.p90 && p.p90 <= p.p99 && p.p99 <= p.max,
        "{p:?}"
    );
    assert_eq!(r.nodes.len(), 1);
    assert!(
        r.nodes[0].cpu_s > 0.0 && r.nodes[0].peak_rss_bytes > 0,
        "{:?}",
        r.nodes
    );
    assert!(r.phases.e2e.nodes[0].cpu_s > 0.0, "{:?}", r.phases.e2e);
    assert!(r.phases.e2e.nodes[0].cpu_s <= r.nodes[0].cpu_s);

    // The JSON carries the keys other tools read.
    let json = serde_json::to_value(&r).unwrap();
    for key in [
        "e2e_tasks_per_s",
        "submit_tasks_per_s",
        "tasks",
        "clients",
        "batch",
        "failed",
        "machine",
        "git_commit",
    ] {
        assert!(json.get(key).is_some(), "no `{key}` in {json}");
    }
    for key in ["p50", "p90", "p99", "max"] {
        assert!(json["latency_ms"][key].as_f64().is_some(), "latency_ms.{key}");
    }
    assert!(json["nodes"][0]["cpu_s"].as_f64().is_some());
    assert!(json["nodes"][0]["peak_rss_bytes"].as_u64().is_some());
    assert!(json["machine"]["cores"].as_u64().unwrap() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_survives_sigkill_and_is_counted_after_restart() {
    let r = bench::run_backlog(&small(3000)).await.unwrap();
    assert_eq!(r.pending_after_restart, 3000);
    assert!(r.rss_before_bytes > 0 && r.rss_after_bytes > 0);
    assert!(r.bytes_per_pending_task.is_finite());
    assert!(r.restart_to_serving_ms > 0.0, "{r:?}");
    assert!(r.restart_to_serving_ms <= r.restart_to_all_pending_ms, "{r:?}");
    let json = serde_json::to_value(&r).unwrap();
    for key in ["bytes_per_pending_task", "restart_to_serving_ms"] {
        assert!(json[key].as_f64().is_some(), "no `{key}` in {json}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster_runs_the_benchmark() {
    let mut opts = small(1000);
    opts.nodes = 3;
    let r = bench::run_throughput(&opts).await.unwrap();
    assert_eq!(r.failed, 0, "{:?}", r.first_problem);
    assert_eq!(r.e2e_outcomes.succeeded, 1000);
    assert_eq!(r.nodes.len(), 3);
    assert!(r.nodes.iter().all(|n| n.cpu_s > 0.0), "{:?}", r.nodes);
}

#[test]
fn a_missing_node_binary_says_how_to_build_it() {
    let err = locate_node_bin(Some(Path::new("/nonexistent/node")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("cargo build --release --bin node"), "{err}");
}
