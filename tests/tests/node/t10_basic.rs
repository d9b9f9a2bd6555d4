//! One node: the acknowledged-task guarantee across SIGKILL, bad flags, bad input.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Result;
use anyhow::ensure;
use flotilla_client::ClientError;
use flotilla_client::TaskState;
use flotilla_tests::NodeProcess;
use flotilla_tests::connect;
use flotilla_tests::ready;
use flotilla_tests::run_node;
use flotilla_tests::submit_noops;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_task_survives_sigkill_and_restart() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut node = NodeProcess::start(&dir.path().join("n1"), &[])?;
    let client = connect(&node).await?;
    ready(&client, &node).await?;

    // 10,000 tasks, all run to completion.
    let first = submit_noops(&client, 10_000).await?;
    ensure!(
        first.iter().collect::<BTreeSet<_>>().len() == 10_000,
        "ids are not unique"
    );
    let done = client.wait_all(first.clone(), Duration::from_secs(120)).await?;
    ensure!(done.len() == 10_000, "waited for {} of 10000", done.len());
    ensure!(
        done.iter().all(|t| t.state == TaskState::Succeeded),
        "a task did not succeed"
    );

    // More, acknowledged but not waited for; then SIGKILL before they can all run.
    let second = submit_noops(&client, 5_000).await?;
    node.kill9()?;
    node.restart()?;
    let client = connect(&node).await?;
    ready(&client, &node).await?;

    // Every acknowledged task of the second batch runs after the restart ...
    let done = client.wait_all(second.clone(), Duration::from_secs(120)).await?;
    ensure!(
        done.len() == 5_000,
        "after restart: waited for {} of 5000",
        done.len()
    );
    let failed: Vec<_> = done.iter().filter(|t| t.state != TaskState::Succeeded).collect();
    ensure!(
        failed.is_empty(),
        "after restart, tasks did not succeed: {:?}",
        &failed[..failed.len().min(3)]
    );
    // ... and every result of the first is intact.
    for id in first.iter().step_by(97) {
        let t = client.get(*id).await?;
        ensure!(
            t.state == TaskState::Succeeded && t.attempt == 1,
            "task {id:?} after restart: {t:?}"
        );
        ensure!(
            &t.result[..] == b"null",
            "noop result of {id:?} is {:?}",
            t.result
        );
    }
    Ok(())
}

#[test]
fn bad_flags_exit_with_status_2_and_a_message() -> Result<()> {
    for (args, needle) in [
        (&["--workers", "many"][..], "--workers"),
        (&["--listen", "not-an-address"][..], "--listen"),
        (&["--advertise", "no-port"][..], "--advertise"),
        (&["--no-such-flag"][..], "--no-such-flag"),
    ] {
        let (code, stderr) = run_node(args)?;
        ensure!(code == Some(2), "{args:?}: exit {code:?}, stderr: {stderr}");
        ensure!(
            stderr.contains(needle),
            "{args:?}: stderr does not name {needle}: {stderr}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_or_fails_the_task_and_loses_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let node = NodeProcess::start(&dir.path().join("n1"), &["--max-payload-bytes", "1024"])?;
    let client = connect(&node).await?;
    ready(&client, &node).await?;

    // Over the payload limit: refused, naming the limit; nothing stored.
    let big = client.task("echo").args(&"x".repeat(2000))?;
    match client.submit(big).await {
        Err(ClientError::InvalidArgument(msg)) => {
            ensure!(msg.contains("1024"), "message lacks the limit: {msg}")
        }
        other => anyhow::bail!("oversized payload: {other:?}"),
    }
    // Unknown task name: refused, naming it.
    match client.submit(client.task("no.such.task")).await {
        Err(ClientError::InvalidArgument(msg)) => ensure!(msg.contains("no.such.task"), "{msg}"),
        other => anyhow::bail!("unknown task: {other:?}"),
    }
    ensure!(
        client
            .stats()
            .await?
            .iter()
            .all(|q| q.pending + q.succeeded + q.dead == 0),
        "something was stored"
    );

    // Arguments that do not decode: the task fails (dead, not retried) with the decode error.
    let bad = client
        .submit(
            client
                .task("sleep")
                .args(&serde_json::json!({"ms": "soon"}))?
                .max_retries(3),
        )
        .await?;
    let t = client.wait(bad, Duration::from_secs(30)).await?;
    ensure!(t.state == TaskState::Dead && t.attempt == 1, "bad args: {t:?}");
    ensure!(
        t.error.as_deref().unwrap_or("").contains("invalid arguments"),
        "bad args error: {t:?}"
    );

    // A good task still runs, and echo returns its args.
    let ok = client
        .submit(client.task("echo").args(&serde_json::json!({"hello": "world"}))?)
        .await?;
    let t = client.wait(ok, Duration::from_secs(30)).await?;
    ensure!(t.state == TaskState::Succeeded, "echo: {t:?}");
    ensure!(
        t.result_json::<serde_json::Value>()? == serde_json::json!({"hello": "world"}),
        "echo result: {t:?}"
    );

    // A failing task is retried, then dead, with its message.
    let fail = client
        .task("fail")
        .args(&serde_json::json!({"message": "boom"}))?;
    let id = client
        .submit(fail.max_retries(1).retry_backoff(Duration::from_millis(10)))
        .await?;
    let t = client.wait(id, Duration::from_secs(30)).await?;
    ensure!(t.state == TaskState::Dead && t.attempt == 2, "fail: {t:?}");
    ensure!(t.error.as_deref() == Some("boom"), "fail error: {t:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_cleanly() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut node = NodeProcess::start(&dir.path().join("n1"), &["--drain-grace-ms", "200"])?;
    let client = connect(&node).await?;
    ready(&client, &node).await?;
    // A task that outlives the grace period is released, not lost: it runs after a restart.
    let id = client
        .submit(client.task("sleep").args(&serde_json::json!({"ms": 3000}))?)
        .await?;
    for _ in 0..100 {
        if client.get(id).await?.state == TaskState::Leased {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let code = node.terminate()?;
    ensure!(code == Some(0), "exit status {code:?}; log:\n{}", node.log());
    node.restart()?;
    let client = connect(&node).await?;
    ready(&client, &node).await?;
    let t = client.wait(id, Duration::from_secs(60)).await?;
    ensure!(
        t.state == TaskState::Succeeded,
        "released task after restart: {t:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_compacted_by_size() -> Result<()> {
    let dir = tempfile::tempdir()?;
    // A 20 kB budget and an entry count that is never reached: only size can trigger it.
    let args = [
        "--workers",
        "0",
        "--snapshot-log-bytes",
        "20000",
        "--snapshot-every-entries",
        "1000000",
    ];
    let node = NodeProcess::start(&dir.path().join("n1"), &args)?;
    let client = connect(&node).await?;
    ready(&client, &node).await?;
    let snapshot = node.data_dir.join("snapshot").join("current.snap");
    ensure!(!snapshot.exists(), "a snapshot before any load");
    let payload = "x".repeat(1000);
    for _ in 0..5 {
        let tasks = (0..10)
            .map(|_| client.task("echo").args(&payload))
            .collect::<Result<Vec<_>, _>>()?;
        client.submit_batch(tasks).await?;
    }
    for _ in 0..100 {
        if snapshot.exists() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("no snapshot after 50 kB of log; log:\n{}", node.log())
}
