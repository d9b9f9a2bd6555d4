//! `flotilla events` against one real node: JSON lines in order, filters, a bad kind refused
//! by the CLI, a position the node never recorded told clearly.

use std::process::Command;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Result;
use anyhow::bail;
use anyhow::ensure;
use flotilla_tests::NodeProcess;
use flotilla_tests::binary;
use flotilla_tests::connect;
use flotilla_tests::ready;
use flotilla_tests::spawn_cli;
use serde_json::Value;

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_follows_events_as_json_lines_and_stops_after_count() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let node = NodeProcess::start(&dir.path().join("n1"), &["--workers", "2"])?;
    let client = connect(&node).await?;
    ready(&client, &node).await?;

    let out = dir.path().join("events.jsonl");
    let nodes = format!("--nodes={}", node.addr);
    let mut cli = spawn_cli(
        &[&nodes, "events", "--json", "--task", "echo", "--count", "9"],
        &out,
    )?;
    // Echo tasks until the CLI shows one (it is then watching), then two more.
    let mut shown = false;
    for i in 0..100 {
        let id = client.submit(client.task("echo").args(&i)?).await?;
        client.wait(id, Duration::from_secs(10)).await?;
        if !lines(&out).is_empty() {
            shown = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(shown, "the CLI never printed an event");
    // A noop is not an echo: filtered out.
    client.submit(client.task("noop")).await?;
    for i in 0..3 {
        let id = client.submit(client.task("echo").args(&i)?).await?;
        client.wait(id, Duration::from_secs(10)).await?;
    }
    let mut exited = None;
    for _ in 0..200 {
        if let Some(status) = cli.try_wait()? {
            exited = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let Some(status) = exited else {
        let _ = cli.kill();
        bail!("the CLI did not stop after --count events: {:?}", lines(&out));
    };
    ensure!(status.success(), "{status:?}");
    let events = lines(&out);
    ensure!(events.len() == 9, "{events:?}");
    let mut last = (0, 0);
    for e in &events {
        ensure!(e["task_name"] == "echo", "{e}");
        let pos = (
            e["index"].as_u64().unwrap_or(0),
            e["ordinal"].as_u64().unwrap_or(0),
        );
        ensure!(pos > last, "positions increase: {events:?}");
        last = pos;
    }
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    ensure!(
        kinds.contains(&"succeeded") && kinds.contains(&"started"),
        "{kinds:?}"
    );
    let started = events
        .iter()
        .find(|e| e["kind"] == "started")
        .unwrap_or(&Value::Null);
    ensure!(
        started["pool"].as_str().is_some_and(|p| !p.is_empty()),
        "{started}"
    );

    // A bad kind is the CLI's usage error; a position never recorded is told, exit 1.
    let flotilla = binary("flotilla")?;
    let bad = Command::new(&flotilla)
        .args([&nodes, "events", "--kind", "exploded"])
        .stdin(Stdio::null())
        .output()?;
    ensure!(bad.status.code() == Some(2), "{bad:?}");
    ensure!(String::from_utf8_lossy(&bad.stderr).contains("not an event kind"));
    let lost = Command::new(&flotilla)
        .args([&nodes, "events", "--from", "1"])
        .stdin(Stdio::null())
        .output()?;
    let stderr = String::from_utf8_lossy(&lost.stderr);
    ensure!(lost.status.code() == Some(1), "{lost:?}");
    ensure!(
        stderr.contains("no longer held") && stderr.contains("oldest"),
        "{stderr}"
    );
    Ok(())
}
