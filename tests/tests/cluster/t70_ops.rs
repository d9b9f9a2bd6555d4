//! Operating tasks on a 3-node cluster through the `flotilla` CLI (issue 13): list and get a
//! running task, cancel it with `--terminate` (the pool holding it aborts it, it never
//! completes, and it stays cancelled across a restart of every node), retry a dead task by id
//! and by filter, pause and resume a queue.

use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use anyhow::Result;
use anyhow::bail;
use anyhow::ensure;
use flotilla_client::Client;
use flotilla_client::TaskId;
use flotilla_client::TaskState;
use flotilla_tests::NodeProcess;
use flotilla_tests::binary;
use serde_json::Value;
use serde_json::json;

use crate::connect;
use crate::start_cluster;

/// Runs `flotilla ARGS --nodes ...` to its end; its stdout, or its stderr as the error.
fn cli(nodes: &[NodeProcess], args: &[&str]) -> Result<String> {
    let addrs: Vec<&str> = nodes.iter().map(|n| n.addr.as_str()).collect();
    let out = Command::new(binary("flotilla")?)
        .args(args)
        .arg("--nodes")
        .arg(addrs.join(","))
        .env_remove("RUST_LOG")
        .output()
        .context("run flotilla")?;
    ensure!(
        out.status.success(),
        "flotilla {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

fn cli_json(nodes: &[NodeProcess], args: &[&str]) -> Result<Value> {
    let text = cli(nodes, args)?;
    serde_json::from_str(text.trim()).with_context(|| format!("not JSON: {text}"))
}

async fn wait_state(client: &Client, id: TaskId, state: TaskState) -> Result<()> {
    for _ in 0..300 {
        if client.get(id).await?.state == state {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("task {id} never became {state}: {:?}", client.get(id).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_get_cancel_terminate_retry_pause_resume() -> Result<()> {
    let _serial = crate::SERIAL.lock().await;
    let dir = tempfile::tempdir()?;
    let mut nodes = start_cluster(dir.path(), 3, &["--workers", "1", "--queues", "default,slow"]).await?;
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    let client = connect(&addrs, Duration::from_secs(60)).await?;

    // A task that would run for ten minutes, and one that fails for good.
    let long = client
        .submit(client.task("sleep").args(&json!({"ms": 600_000}))?)
        .await?;
    let fails = client
        .submit(client.task("fail").args(&json!({"message": "boom"}))?)
        .await?;
    wait_state(&client, long, TaskState::Leased).await?;
    wait_state(&client, fails, TaskState::Dead).await?;

    let listed = cli_json(&nodes, &["list", "--state", "leased", "--json"])?;
    let ids: Vec<u64> = listed["tasks"]
        .as_array()
        .context("tasks")?
        .iter()
        .filter_map(|t| t["id"].as_u64())
        .collect();
    ensure!(ids == [long.0], "leased tasks: {listed}");
    let all = cli_json(&nodes, &["list", "--limit", "1", "--json"])?;
    ensure!(all["tasks"][0]["id"] == fails.0, "newest first: {all}");
    ensure!(all["next_cursor"].is_string(), "one more page: {all}");
    let detail = cli_json(&nodes, &["get", &long.0.to_string(), "--json"])?;
    let holder = detail["holder"]
        .as_str()
        .context("a leased task has a holder")?
        .to_owned();
    ensure!(holder.starts_with("node-"), "{detail}");
    ensure!(detail["args"] == json!({"ms": 600_000}), "{detail}");

    // Cancel it while it runs: it is final at once, and its pool aborts the run.
    let cancelled = cli_json(
        &nodes,
        &[
            "cancel",
            "--terminate",
            "--reason",
            "stuck",
            &long.0.to_string(),
            "--json",
        ],
    )?;
    ensure!(cancelled["outcome"] == "terminated", "{cancelled}");
    let t = client.get(long).await?;
    ensure!(
        t.state == TaskState::Cancelled && t.error.as_deref() == Some("stuck"),
        "{t:?}"
    );
    // Every worker is free again: three runs at once on three one-worker pools, long before
    // the revoked sleep would have ended.
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            client
                .submit(client.task("sleep").args(&json!({"ms": 300}))?)
                .await?,
        );
    }
    let done = client.wait_all(ids, Duration::from_secs(30)).await?;
    ensure!(done.iter().all(|t| t.state == TaskState::Succeeded), "{done:?}");
    let aborted = nodes
        .iter()
        .any(|n| n.log().contains("task revoked; aborting it"));
    ensure!(aborted, "no pool aborted the revoked run (holder {holder})");

    // Retry the dead task by id, then (dead again) by filter.
    let retried = cli_json(&nodes, &["retry", &fails.0.to_string(), "--json"])?;
    ensure!(retried["retried"] == true, "{retried}");
    wait_state(&client, fails, TaskState::Dead).await?;
    ensure!(client.get(fails).await?.attempt == 2);
    let retried = cli_json(
        &nodes,
        &["retry", "--queue", "default", "--state", "dead", "--json"],
    )?;
    ensure!(retried["retried"] == json!([fails.0]), "{retried}");
    wait_state(&client, fails, TaskState::Dead).await?;
    ensure!(client.get(fails).await?.attempt == 3);

    // Pause: a task of the queue waits; resume: it runs.
    cli(&nodes, &["pause", "slow"])?;
    let waiting = client.submit(client.task("noop").queue("slow")).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    ensure!(client.get(waiting).await?.state == TaskState::Pending);
    let stats = cli_json(&nodes, &["stats", "--json"])?;
    ensure!(
        stats["queues"]
            .as_array()
            .is_some_and(|q| q.iter().any(|q| q["queue"] == "slow" && q["paused"] == true)),
        "{stats}"
    );
    cli(&nodes, &["resume", "slow"])?;
    wait_state(&client, waiting, TaskState::Succeeded).await?;

    // The revoke is in the log: every node restarted still holds the task cancelled.
    for node in &mut nodes {
        node.restart()?;
    }
    let client = connect(&addrs, Duration::from_secs(60)).await?;
    let t = client.get(long).await?;
    ensure!(t.state == TaskState::Cancelled && t.attempt == 1, "{t:?}");
    Ok(())
}
