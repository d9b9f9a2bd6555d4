//! Schedules on a real node through the `flotilla` CLI: a schedule fires every second on the
//! node's time, and a SIGKILL and restart (re-applying the log over the snapshot) neither
//! doubles a slot nor loses one (the outage is shorter than the grace).

use std::process::Command;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use anyhow::Result;
use anyhow::ensure;
use flotilla_client::TaskId;
use flotilla_client::TaskState;
use flotilla_tests::NodeProcess;
use flotilla_tests::binary;
use flotilla_tests::connect;
use flotilla_tests::ready;
use serde_json::Value;

/// Run the CLI against `node` to completion; its stdout (it must exit 0).
fn cli(node: &NodeProcess, args: &[&str]) -> Result<String> {
    let out = Command::new(binary("flotilla")?)
        .arg("--nodes")
        .arg(&node.addr)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running flotilla")?;
    ensure!(
        out.status.success(),
        "flotilla {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// The schedule `name` as `schedule list --json` shows it.
fn listed(node: &NodeProcess, name: &str) -> Result<Value> {
    let list: Value = serde_json::from_str(&cli(node, &["schedule", "list", "--json"])?)?;
    list["schedules"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .cloned()
        .with_context(|| format!("no schedule {name} in {list}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_fires_every_second_and_a_sigkill_doubles_no_slot() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut node = NodeProcess::start(&dir.path().join("n1"), &[])?;
    let client = connect(&node).await?;
    ready(&client, &node).await?;

    let added = cli(
        &node,
        &[
            "schedule", "add", "tick", "echo", "--every", "1s", "--args", "\"tick\"",
        ],
    )?;
    ensure!(added.contains("schedule tick added"), "{added}");
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let before = listed(&node, "tick")?["fired"].as_u64().unwrap_or(0);
    ensure!(before >= 2, "fired {before} times in 3.5 s");

    node.kill9()?;
    node.restart()?;
    let client = connect(&node).await?;
    ready(&client, &node).await?;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    cli(&node, &["schedule", "pause", "tick"])?;

    // Every slot from the first to the last one handled enqueued exactly one task, in order,
    // none before its time; the node holds no other task.
    let info = listed(&node, "tick")?;
    let created = info["created_unix_ms"].as_u64().context("created")?;
    let fired = info["fired"].as_u64().context("fired")?;
    let last_slot = info["last_slot_unix_ms"].as_u64().context("last slot")?;
    let slots = (last_slot - created) / 1_000;
    ensure!(
        fired == slots && fired >= before + 2,
        "fired {fired} tasks for {slots} slots ({before} before the kill): {info}"
    );
    ensure!(
        info["last_task"].as_u64() == Some(fired),
        "the last task is not the {fired}th: {info}"
    );
    let mut tasks = client
        .wait_all((1..=fired).map(TaskId), Duration::from_secs(30))
        .await?;
    tasks.sort_by_key(|t| t.id);
    for (k, t) in (1..=fired).zip(&tasks) {
        let slot = created + 1_000 * k;
        ensure!(
            t.state == TaskState::Succeeded && t.result_json::<String>()? == "tick",
            "task {k}: {t:?}"
        );
        ensure!(
            t.created_unix_ms >= slot,
            "task {k} enqueued early for slot {slot}: {t:?}"
        );
    }
    ensure!(
        client.get(TaskId(fired + 1)).await.is_err(),
        "a task beyond the slots exists"
    );
    Ok(())
}
