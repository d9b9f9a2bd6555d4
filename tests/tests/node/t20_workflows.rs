//! Workflows on one real node (docs/WORKFLOWS.md): a chain, a chord and a failing chain with
//! an error callback through the Rust client, read back as one object by the client and the
//! CLI (`flotilla workflow get`); a 100,000-task group accepted in one entry and one more task
//! refused clearly, as is a group whose request is over the node's size limit.

use std::time::Duration;

use anyhow::Result;
use anyhow::ensure;
use flotilla_client::ClientError;
use flotilla_client::TaskState;
use flotilla_client::WorkflowState;
use flotilla_client::workflow::Canvas;
use flotilla_client::workflow::chain;
use flotilla_client::workflow::chord;
use flotilla_client::workflow::group;
use flotilla_tests::NodeProcess;
use flotilla_tests::binary;
use flotilla_tests::connect;
use flotilla_tests::ready;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_chord_and_a_failing_chain_with_an_error_callback() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let node = NodeProcess::start(&dir.path().join("n1"), &["--workers", "4"])?;
    let client = connect(&node).await?;
    ready(&client, &node).await?;
    let echo = |v: serde_json::Value| client.task("echo").args(&v).unwrap();
    let wait = Duration::from_secs(30);

    // A chain: each link waits for the one before; the result is the last link's.
    let w = client
        .submit_workflow(
            chain([
                echo(json!(1)).into(),
                echo(json!(2)).into(),
                echo(json!(3)).into(),
            ]),
            None,
        )
        .await?;
    let done = client.wait_workflow(w.id, wait).await?;
    ensure!(done.state == WorkflowState::Succeeded, "{done:?}");
    ensure!(done.result_json::<i64>()? == 3, "{done:?}");
    let [a, b, c] = &done.tasks[..] else {
        anyhow::bail!("{done:?}")
    };
    ensure!(b.parents == vec![a.id] && c.parents == vec![b.id], "{done:?}");
    // Each link started after the one before it finished.
    let end = |t: &flotilla_client::workflow::WorkflowTask| t.task.as_ref().unwrap().updated_unix_ms;
    ensure!(end(a) <= end(b) && end(b) <= end(c));

    // A chord: the body waits for every member; a group reads as the list of results.
    let body = echo(json!("body"));
    let w = client
        .submit_workflow(chord(group([echo(json!("x")), echo(json!("y"))]), body), None)
        .await?;
    let done = client.wait_workflow(w.id, wait).await?;
    ensure!(done.state == WorkflowState::Succeeded, "{done:?}");
    ensure!(done.result_json::<String>()? == "body");
    let w = client
        .submit_workflow(group([echo(json!("x")), echo(json!("y"))]), None)
        .await?;
    let done = client.wait_workflow(w.id, wait).await?;
    ensure!(done.result_json::<Vec<String>>()? == ["x", "y"], "{done:?}");

    // A dead link cancels what follows, with the reason; the error callback runs once.
    let fail = client.task("fail").args(&json!({"message": "boom"}))?;
    let w = client
        .submit_workflow(
            chain([echo(json!(1)).into(), fail.into(), echo(json!(3)).into()]),
            Some(echo(json!("on error"))),
        )
        .await?;
    let done = client.wait_workflow(w.id, wait).await?;
    ensure!(done.state == WorkflowState::Failed, "{done:?}");
    ensure!(
        done.error.as_deref().is_some_and(|e| e.contains("boom")),
        "{done:?}"
    );
    let info = |i: usize| done.tasks[i].task.clone().unwrap();
    ensure!(info(2).state == TaskState::Cancelled, "{done:?}");
    let reason = info(2).error.unwrap_or_default();
    ensure!(
        reason.starts_with(&format!("parent task {} dead", done.tasks[1].id)),
        "{reason}"
    );
    ensure!(
        done.tasks[3].errback && info(3).state == TaskState::Succeeded,
        "{done:?}"
    );

    // The CLI reads it as one object, by the workflow or by one of its tasks.
    let out = std::process::Command::new(binary("flotilla")?)
        .args([
            "--nodes",
            &node.addr,
            "workflow",
            "get",
            &done.tasks[2].id.0.to_string(),
            "--task",
            "--json",
        ])
        .output()?;
    ensure!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    ensure!(v["id"] == w.id && v["state"] == "failed", "{v}");
    ensure!(
        v["tasks"][2]["state"] == "cancelled" && v["tasks"][3]["errback"] == true,
        "{v}"
    );

    // An unknown parent refuses the whole workflow.
    let refused = client
        .submit_workflow(
            Canvas::after(echo(json!(0)), [flotilla_client::TaskId(999_999)]),
            None,
        )
        .await;
    ensure!(
        matches!(&refused, Err(ClientError::InvalidArgument(m)) if m.contains("does not exist")),
        "{refused:?}"
    );
    Ok(())
}

/// Issue 12: a 100,000-task group stays within the entry size limit; one more is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_100_000_tasks_is_one_entry_and_one_more_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let node = NodeProcess::start(&dir.path().join("n1"), &["--workers", "0"])?;
    let client = connect(&node).await?;
    ready(&client, &node).await?;
    let noops = |n: usize| group((0..n).map(|_| client.task("noop")));
    let w = client.submit_workflow(noops(100_000), None).await?;
    ensure!(w.task_ids.len() == 100_000);
    let stats = client.stats().await?;
    ensure!(
        stats.iter().map(|s| s.pending).sum::<u64>() == 100_000,
        "{stats:?}"
    );
    let refused = client.submit_workflow(noops(100_001), None).await;
    ensure!(
        matches!(&refused, Err(ClientError::InvalidArgument(m))
            if m.contains("more than 100000 tasks is over the limit")),
        "{refused:?}"
    );
    // A group within the task count whose request is over the node's request size limit
    // (100,000 tasks of 700-byte arguments: ~72 MB, the cap is 64 MiB) is refused by the
    // client before it is sent, naming the sizes (sent, the node cut it off mid-stream and the
    // client retried that as a transport failure for minutes); the node holds the first group.
    let big = serde_json::json!("x".repeat(700));
    let heavy = group((0..100_000).map(|_| client.task("noop").args(&big).unwrap()));
    let refused = client.submit_workflow(heavy, None).await;
    ensure!(
        matches!(&refused, Err(ClientError::InvalidArgument(m))
            if m.contains("over the limit of 67108864 bytes a node reads")),
        "{refused:?}"
    );
    let stats = client.stats().await?;
    ensure!(
        stats.iter().map(|s| s.pending).sum::<u64>() == 100_000,
        "{stats:?}"
    );
    Ok(())
}

/// A workflow task waiting for its parents reads as WAITING on the wire, through the client and
/// the CLI (`flotilla list --state waiting`, `flotilla get`), and a listing of scheduled tasks
/// leaves it out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_waiting_for_its_parents_reads_as_waiting() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let node = NodeProcess::start(&dir.path().join("n1"), &["--workers", "0"])?;
    let client = connect(&node).await?;
    ready(&client, &node).await?;
    let w = client
        .submit_workflow(
            chain([client.task("noop").into(), client.task("noop").into()]),
            None,
        )
        .await?;
    let [first, second] = w.task_ids[..] else {
        anyhow::bail!("{w:?}")
    };
    let detail = client.describe_task(second).await?;
    ensure!(detail.task.state == TaskState::Waiting, "{detail:?}");
    ensure!(detail.timer_unix_ms.is_none(), "{detail:?}");
    ensure!(client.describe_task(first).await?.task.state == TaskState::Pending);
    let ids = |f: flotilla_client::TaskFilter| {
        let client = &client;
        async move {
            let page = client.list_tasks(&f, 100, None).await?;
            anyhow::Ok(page.tasks.iter().map(|t| t.id).collect::<Vec<_>>())
        }
    };
    let by = |s: TaskState| flotilla_client::TaskFilter::default().state(s);
    ensure!(ids(by(TaskState::Waiting)).await? == [second]);
    ensure!(ids(by(TaskState::Scheduled)).await?.is_empty());
    ensure!(ids(flotilla_client::TaskFilter::default()).await? == [second, first]);

    let cli = |args: &[&str]| -> Result<serde_json::Value> {
        let out = std::process::Command::new(binary("flotilla")?)
            .args(["--nodes", &node.addr])
            .args(args)
            .output()?;
        ensure!(out.status.success(), "{out:?}");
        Ok(serde_json::from_slice(&out.stdout)?)
    };
    let listed = cli(&["list", "--state", "waiting", "--json"])?;
    ensure!(
        listed["tasks"].as_array().map(Vec::len) == Some(1) && listed["tasks"][0]["id"] == second.0,
        "{listed}"
    );
    ensure!(listed["tasks"][0]["state"] == "waiting", "{listed}");
    let got = cli(&["get", &second.0.to_string(), "--json"])?;
    ensure!(
        got["state"] == "waiting" && got["timer_unix_ms"].is_null(),
        "{got}"
    );
    Ok(())
}
