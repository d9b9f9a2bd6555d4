//! Attempt histories on a 3-node cluster (issue 13 item 1): the leader switches recording on
//! once every member reads entry format 10, and a task whose node is killed while it runs shows
//! a lost lease held by that node's pool, then an attempt on another node.

use std::time::Duration;

use anyhow::Context;
use anyhow::Result;
use anyhow::bail;
use anyhow::ensure;
use flotilla_client::AttemptEnd;
use flotilla_client::Client;
use flotilla_client::TaskId;
use flotilla_client::TaskState;
use serde_json::json;

use crate::connect;
use crate::start_cluster;

/// Runs noop tasks until one shows its attempt: the cluster records attempts from then on.
async fn wait_recording(client: &Client) -> Result<()> {
    for _ in 0..100 {
        let id = client.submit(client.task("noop")).await?;
        let done = client.wait(id, Duration::from_secs(30)).await?;
        ensure!(done.state == TaskState::Succeeded, "{done:?}");
        let d = client.describe_task(id).await?;
        if let [a] = d.attempts.as_slice() {
            ensure!(a.end == Some(AttemptEnd::Succeeded), "{a:?}");
            ensure!(a.holder.starts_with("node-") && a.ended_unix_ms >= Some(a.granted_unix_ms));
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("attempts were never recorded")
}

async fn wait_attempt(client: &Client, id: TaskId, attempt: u32) -> Result<()> {
    for _ in 0..600 {
        let t = client.get(id).await?;
        if t.state == TaskState::Leased && t.attempt >= attempt {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "task {id} never ran attempt {attempt}: {:?}",
        client.get(id).await?
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_whose_node_is_killed_shows_a_lost_lease() -> Result<()> {
    let _serial = crate::SERIAL.lock().await;
    let dir = tempfile::tempdir()?;
    let mut nodes = start_cluster(dir.path(), 3, &["--workers", "1", "--lease-ms", "3000"]).await?;
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    let client = connect(&addrs, Duration::from_secs(60)).await?;
    wait_recording(&client).await?;

    let long = client
        .submit(client.task("sleep").args(&json!({"ms": 600_000}))?)
        .await?;
    wait_attempt(&client, long, 1).await?;
    let first = client.describe_task(long).await?;
    let holder = first.holder.clone().context("a leased task has a holder")?;
    let [running] = first.attempts.as_slice() else {
        bail!("one attempt: {first:?}")
    };
    ensure!(running.holder == holder && running.end.is_none(), "{running:?}");
    // Kill the node whose pool runs it (its name is `node-<id>`).
    let status = client.status().await?;
    let victim_addr = status
        .members
        .iter()
        .find(|m| format!("node-{}", m.id) == holder)
        .map(|m| m.addr.clone())
        .context("the holder is a member's pool")?;
    let victim = nodes
        .iter()
        .position(|n| n.addr == victim_addr)
        .context("victim")?;
    nodes[victim].kill9()?;

    // Its lease runs out; another node's pool runs attempt 2.
    let others: Vec<String> = addrs.iter().filter(|a| **a != victim_addr).cloned().collect();
    let client = connect(&others, Duration::from_secs(60)).await?;
    wait_attempt(&client, long, 2).await?;
    let d = client.describe_task(long).await?;
    let [lost, second] = d.attempts.as_slice() else {
        bail!("two attempts: {:?}", d.attempts)
    };
    ensure!(lost.attempt == 1 && lost.holder == holder, "{lost:?}");
    ensure!(lost.end == Some(AttemptEnd::LostLease), "{lost:?}");
    ensure!(
        second.attempt == 2 && second.holder != holder && second.end.is_none(),
        "{second:?}"
    );
    ensure!(d.lost_leases == 1, "{d:?}");

    // Cancelled while it runs: the second attempt ends revoked.
    client.revoke([long], true, "").await?;
    let d = client.describe_task(long).await?;
    ensure!(d.attempts[1].end == Some(AttemptEnd::Revoked), "{:?}", d.attempts);
    Ok(())
}
