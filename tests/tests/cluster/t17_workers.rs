//! `flotilla workers` on a real 3-node cluster (issue 13): asked through one node, it lists
//! every node's own pool and a remote worker connected to another node, with the task that
//! worker holds leased; with a member killed, it names that member as unreachable within a
//! bounded time instead of hanging. Also pause, resume, tasks declare, limit set and remove
//! print one JSON object each with `--json`.

use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use anyhow::Result;
use anyhow::bail;
use anyhow::ensure;
use flotilla_proto::v1 as pb;
use flotilla_tests::binary;
use serde_json::Value;
use serde_json::json;
use tokio::time::Instant;

use crate::connect;
use crate::start_cluster;
use crate::wait_status;

#[allow(
    dead_code,
    reason = "the shared protocol-level worker; this test uses part of it"
)]
#[path = "../worker/remote.rs"]
mod remote;

/// Runs `flotilla ARGS --nodes NODE` to its end: its stdout, or its stderr as the error.
fn cli(node: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(binary("flotilla")?)
        .args(args)
        .args(["--nodes", node])
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

fn cli_json(node: &str, args: &[&str]) -> Result<Value> {
    let text = cli(node, args)?;
    serde_json::from_str(text.trim()).with_context(|| format!("not one JSON object: {text}"))
}

/// Polls `flotilla workers --json` through `node` until `ok` holds (bounded: 30 s).
async fn workers_until(node: &str, ok: impl Fn(&Value) -> bool) -> Result<Value> {
    let mut last = Value::Null;
    for _ in 0..60 {
        let w = cli_json(node, &["workers", "--json"])?;
        if ok(&w) {
            return Ok(w);
        }
        last = w;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!("flotilla workers never showed what was expected: {last}")
}

fn find<'a>(w: &'a Value, name: &str) -> Option<&'a Value> {
    w["workers"].as_array()?.iter().find(|x| x["name"] == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_lists_every_pool_and_a_remote_worker_and_names_a_dead_member() -> Result<()> {
    let _serial = crate::SERIAL.lock().await;
    let dir = tempfile::tempdir()?;
    let mut nodes = start_cluster(dir.path(), 3, &["--workers", "1"]).await?;
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    let mut ids = Vec::new();
    for n in &nodes {
        ids.push(wait_status(n, |_| true).await?.node_id);
    }

    // A remote worker on the third node, on a queue of its own; it answers pings, never tasks.
    let mut hello = remote::hello("js-1", 4);
    hello.queues = vec!["js".into()];
    hello.tasks = vec![pb::TaskDecl {
        name: "hook.call".into(),
        queue: "js".into(),
    }];
    let mut worker = remote::Worker::open(&addrs[2], hello).await?;
    let client = connect(&addrs, Duration::from_secs(60)).await?;
    let id = client.submit(client.task("hook.call").queue("js")).await?;
    let mut acks = Vec::new();
    let got = worker.tasks(&mut acks).await?;
    ensure!(got.iter().any(|t| t.task_id == id.0), "{got:?}");
    // Keep answering pings while the CLI asks.
    let pinger = tokio::spawn(async move { while worker.next().await.is_ok() {} });

    let w = workers_until(&addrs[0], |w| {
        find(w, "js-1").is_some_and(|x| x["leased"] == 1 && x["busy"] == 1)
    })
    .await?;
    let js = find(&w, "js-1").context("js-1")?;
    ensure!(
        (&js["node_id"], &js["kind"], &js["queues"], &js["concurrency"])
            == (&json!(ids[2]), &json!("remote"), &json!(["js"]), &json!(4)),
        "{js}"
    );
    for id in &ids {
        let pool = find(&w, &format!("node-{id}")).with_context(|| format!("node-{id}'s pool: {w}"))?;
        ensure!(
            (&pool["node_id"], &pool["kind"], &pool["concurrency"])
                == (&json!(id), &json!("pool"), &json!(1)),
            "{pool}"
        );
    }
    ensure!(w["unreachable_nodes"] == json!([]), "{w}");
    let table = cli(&addrs[0], &["workers"])?;
    ensure!(table.contains("js-1") && table.contains("remote"), "{table}");

    // Changing commands print one JSON object each with --json.
    let n0 = addrs[0].as_str();
    ensure!(cli_json(n0, &["pause", "js", "--json"])? == json!({"queue": "js", "paused": true}));
    ensure!(cli_json(n0, &["resume", "js", "--json"])? == json!({"queue": "js", "paused": false}));
    ensure!(cli_json(n0, &["tasks", "declare", "report.build", "--json"])? == json!({"recorded": 1}));
    ensure!(
        cli_json(n0, &["limit", "set", "queue:js", "--concurrency", "2", "--json"])?
            == json!({"scope": "queue:js", "rate": null, "concurrency": 2})
    );
    ensure!(
        cli_json(n0, &["limit", "remove", "queue:js", "--json"])?
            == json!({"scope": "queue:js", "removed": true})
    );

    // The second node dies: named, not waited for (each member has 2 s to answer).
    nodes[1].kill9()?;
    let started = Instant::now();
    let w = cli_json(&addrs[0], &["workers", "--json"])?;
    ensure!(
        started.elapsed() < Duration::from_secs(15),
        "workers took {:?} with a member down",
        started.elapsed()
    );
    ensure!(w["unreachable_nodes"] == json!([ids[1]]), "{w}");
    ensure!(
        find(&w, "js-1").is_some(),
        "the third node's worker is still listed: {w}"
    );
    let table = cli(&addrs[0], &["workers"])?;
    ensure!(
        table.contains(&format!("node {} did not answer", ids[1])),
        "{table}"
    );
    pinger.abort();
    Ok(())
}
