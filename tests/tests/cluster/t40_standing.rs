//! A node is lost while its pool stands idle: the leader drops that pool's standing capacity,
//! so tasks submitted afterwards are not granted to the dead node, where they would wait out a
//! whole lease (ten minutes here).

use std::time::Duration;

use anyhow::Result;
use anyhow::bail;
use anyhow::ensure;
use flotilla_client::TaskState;

use crate::connect;
use crate::leader;
use crate::start_cluster;

const LOST: &str = "dropping its pool's standing capacity";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_are_not_granted_to_a_lost_nodes_pool() -> Result<()> {
    let _serial = crate::SERIAL.lock().await;
    let dir = tempfile::tempdir()?;
    let mut nodes = start_cluster(dir.path(), 3, &["--workers", "2", "--lease-ms", "600000"]).await?;
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    let client = connect(&addrs, Duration::from_secs(60)).await?;

    // Every pool runs tasks, then stands idle with its free workers as standing capacity.
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(client.submit(client.task("noop").args(&i)?).await?);
    }
    let done = client.wait_all(ids, Duration::from_secs(60)).await?;
    ensure!(done.iter().all(|t| t.state == TaskState::Succeeded));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let lead = leader(&nodes).await?;
    let victim = (lead + 1) % 3;
    nodes[victim].kill9()?;
    // The leader notices the silence (a few election timeouts) and drops the standing capacity.
    let mut dropped = false;
    for _ in 0..300 {
        if nodes[lead].log().contains(LOST) {
            dropped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !dropped {
        bail!(
            "the leader never dropped the lost node's standing capacity; log:\n{}",
            nodes[lead].log()
        );
    }

    // Tasks submitted now all run on the live nodes, long before any lease could expire.
    let up: Vec<String> = addrs
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .map(|(_, a)| a.clone())
        .collect();
    let client = connect(&up, Duration::from_secs(60)).await?;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(client.submit(client.task("noop").args(&i)?).await?);
    }
    let done = client.wait_all(ids, Duration::from_secs(60)).await?;
    ensure!(done.len() == 20 && done.iter().all(|t| t.state == TaskState::Succeeded));
    Ok(())
}
