//! The task catalogue in a real 3-node cluster: every node declares its built-in names at
//! start; a name declared once (as a worker's `Hello` does, here through `DeclareTaskNames`)
//! is accepted by every node and goes to its default queue; an unknown name is refused by
//! every node, naming it; the catalogue survives a restart of the whole cluster, and a node
//! whose registry did not change declares nothing new.

use std::time::Duration;

use anyhow::Result;
use anyhow::bail;
use anyhow::ensure;
use flotilla_client::Client;
use flotilla_client::ClientError;
use flotilla_client::TaskName;
use flotilla_tests::NodeProcess;

use crate::connect;
use crate::start_cluster;

const BUILT_INS: [&str; 4] = ["echo", "fail", "noop", "sleep"];

/// Poll the catalogue through `client` until `ok` holds (bounded: 30 s).
async fn wait_catalogue(client: &Client, ok: impl Fn(&[TaskName]) -> bool) -> Result<Vec<TaskName>> {
    let mut last = Vec::new();
    for _ in 0..300 {
        if let Ok(names) = client.task_names().await {
            if ok(&names) {
                return Ok(names);
            }
            last = names;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the catalogue never became as expected: {last:?}")
}

/// Every node's built-in names are declared by every node.
fn built_ins_declared(names: &[TaskName], nodes: usize) -> bool {
    BUILT_INS.iter().all(|b| {
        names
            .iter()
            .find(|t| t.name == *b)
            .is_some_and(|t| t.declarers.len() == nodes && t.default_queue == "default")
    })
}

/// Submits `name` (no queue) through each node alone: its queue, per node.
async fn submit_through_each(nodes: &[NodeProcess], name: &str) -> Result<Vec<Result<String, ClientError>>> {
    let mut out = Vec::new();
    for node in nodes {
        let client = connect(std::slice::from_ref(&node.addr), Duration::from_secs(20)).await?;
        let submitted = match client.submit(client.task(name)).await {
            Ok(id) => Ok(client.get(id).await?.queue),
            Err(e) => Err(e),
        };
        out.push(submitted);
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_names_are_accepted_everywhere_unknown_ones_refused_and_both_survive_restart() -> Result<()>
{
    let _serial = crate::SERIAL.lock().await;
    let dir = tempfile::tempdir()?;
    // No workers: a declared name nobody runs stays pending. Frequent snapshots: the
    // catalogue is read back from one on restart.
    let mut nodes = start_cluster(
        dir.path(),
        3,
        &["--workers", "0", "--snapshot-every-entries", "5"],
    )
    .await?;
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    let client = connect(&addrs, Duration::from_secs(60)).await?;
    wait_catalogue(&client, |n| built_ins_declared(n, 3)).await?;

    // A worker's declaration, through the last node.
    let worker = connect(std::slice::from_ref(&addrs[2]), Duration::from_secs(20)).await?;
    let names = ["tasks.add".to_string()];
    ensure!(
        worker
            .declare_task_names("py-worker@host", "math", &names)
            .await?
            == 1
    );
    ensure!(
        worker
            .declare_task_names("py-worker@host", "math", &names)
            .await?
            == 0,
        "declaring again records nothing"
    );
    for queue in submit_through_each(&nodes, "tasks.add").await? {
        ensure!(
            queue? == "math",
            "a submit naming no queue goes to the declared one"
        );
    }
    for refused in submit_through_each(&nodes, "tasks.nope").await? {
        match refused {
            Err(ClientError::InvalidArgument(msg)) => ensure!(msg.contains("tasks.nope"), "{msg}"),
            other => bail!("an unknown name was not refused: {other:?}"),
        }
    }
    let stats = client.stats().await?;
    let math = stats.iter().find(|q| q.queue == "math").map(|q| q.pending);
    ensure!(math == Some(3), "the three tasks wait, pending: {stats:?}");

    // The CLI shows it.
    let out = std::process::Command::new(flotilla_tests::binary("flotilla")?)
        .args(["--nodes", &addrs[0], "tasks"])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let row = text
        .lines()
        .find(|l| l.starts_with("tasks.add "))
        .unwrap_or_default();
    ensure!(
        row.contains("math") && row.contains("py-worker@host=math"),
        "{text}"
    );

    // The whole cluster restarts: the catalogue is still there, and no node declares anything.
    for node in &mut nodes {
        node.kill9()?;
    }
    for node in &mut nodes {
        node.restart()?;
    }
    let client = connect(&addrs, Duration::from_secs(60)).await?;
    let names = wait_catalogue(&client, |n| n.iter().any(|t| t.name == "tasks.add")).await?;
    let add = names.iter().find(|t| t.name == "tasks.add");
    ensure!(
        add.is_some_and(|t| t.default_queue == "math" && t.held == 3),
        "{names:?}"
    );
    ensure!(built_ins_declared(&names, 3), "{names:?}");
    for queue in submit_through_each(&nodes, "tasks.add").await? {
        ensure!(queue? == "math");
    }
    for node in &nodes {
        let mut unchanged = false;
        for _ in 0..300 {
            unchanged = node.log().contains("recorded=0");
            if unchanged {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        ensure!(
            unchanged,
            "a restarted node with the same registry proposes no declaration; log:\n{}",
            node.log()
        );
    }
    Ok(())
}
