//! The leader is SIGKILLed in the middle of `flotilla submit noop --count 20000 --wait --json`
//! and restarted later: every task succeeds and is reported exactly once.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Result;
use anyhow::ensure;
use flotilla_tests::spawn_cli;

use crate::leader;
use crate::start_cluster;

const TASKS: usize = 20_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_under_load_loses_and_duplicates_nothing() -> Result<()> {
    let _serial = crate::SERIAL.lock().await;
    let dir = tempfile::tempdir()?;
    let mut nodes = start_cluster(dir.path(), 3, &["--workers", "8"]).await?;
    let addrs = nodes.iter().map(|n| n.addr.clone()).collect::<Vec<_>>().join(",");
    let out = dir.path().join("cli.jsonl");
    let count = TASKS.to_string();
    let mut cli = spawn_cli(
        &[
            "--nodes",
            &addrs,
            "--retry-s",
            "120",
            "submit",
            "noop",
            "--count",
            &count,
            "--wait",
            "--json",
            "--timeout-s",
            "600",
        ],
        &out,
    )?;

    // Let the run get going (some results reported), then kill the leader.
    for _ in 0..600 {
        if std::fs::read_to_string(&out).unwrap_or_default().lines().count() >= 500 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let victim = leader(&nodes).await?;
    nodes[victim].kill9()?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    nodes[victim].restart()?;

    // The CLI ends by itself (bounded by its own --timeout-s); cap the wait anyway.
    let mut status = None;
    for _ in 0..6_000 {
        if let Some(s) = cli.try_wait()? {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let Some(status) = status else {
        cli.kill()?;
        anyhow::bail!("the CLI did not finish within 600 s");
    };
    let text = std::fs::read_to_string(&out)?;
    let mut ids = BTreeSet::new();
    let mut not_succeeded = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        let id = v["id"]
            .as_u64()
            .ok_or_else(|| anyhow::anyhow!("no id in {line}"))?;
        ensure!(ids.insert(id), "task {id} reported twice");
        if v["state"] != "succeeded" {
            not_succeeded.push(line.to_string());
        }
    }
    ensure!(ids.len() == TASKS, "{} of {TASKS} tasks reported", ids.len());
    ensure!(
        not_succeeded.is_empty(),
        "tasks did not succeed: {:?}",
        &not_succeeded[..not_succeeded.len().min(3)]
    );
    ensure!(status.success(), "the CLI exited with {status}");
    Ok(())
}
