//! CI smoke of `sim chaos --net`: 3 nodes in 3 zones 30-80 ms apart, each in its own network
//! namespace, for 25 s of partitions, one-way cuts, loss and delay on real sockets. The history
//! must be clean (nothing lost, duplicated or wrong), every fault kind asked for must have been
//! made and must have hit frames, and the run's namespaces must be gone afterwards.
//!
//! Skipped, saying so, only where network namespaces cannot be made (not root, no `ip`); CI
//! runs as root and runs it. Its own test binary, so no other cluster runs beside it.

mod common;

use std::process::Command;
use std::time::Duration;

use flotilla_sim::chaos::net::{netns, topology};

/// The run's bound: well under CI's patience, far above a healthy run (about 40 s in debug).
const RUN_LIMIT: Duration = Duration::from_secs(100);

#[test]
fn partitions_loss_and_delay_between_three_zones_lose_nothing() {
    if let Err(e) = netns::available() {
        eprintln!("skipped: sim chaos --net cannot make network namespaces here: {e:#}");
        return;
    }
    let run = common::run_chaos(
        &[
            "--net",
            "--nodes",
            "3",
            "--zones",
            "3",
            "--wan-rtt-ms",
            "30..80",
            "--duration-s",
            "25",
            "--faults",
            "partition,loss,delay,one-way",
        ],
        RUN_LIMIT,
    );
    run.assert_clean();
    let context = &run.context;
    let by_kind = &run.report["faults_by_kind"];
    for kind in ["partition", "loss", "delay", "one_way"] {
        assert!(by_kind[kind].as_u64() >= Some(1), "no {kind} fault: {context}");
    }
    // The faults hit real frames, and the WAN delayed them.
    let frames = &run.report["net"]["frames"];
    for fate in ["delayed", "cut", "lost"] {
        assert!(frames[fate].as_u64() > Some(0), "no frame {fate}: {context}");
    }
    assert_eq!(
        run.report["net"]["topology"]["zone_of"],
        serde_json::json!([0, 1, 2])
    );
    assert!(
        run.report["node_args"]
            .to_string()
            .contains("--heartbeat-interval-ms"),
        "WAN timeouts not applied: {context}"
    );
    // Every namespace of the run is gone.
    let listed = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let ours = format!("{}{}-", topology::PREFIX, run.pid);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(!listed.contains(&ours), "namespaces left behind: {listed}");
}
