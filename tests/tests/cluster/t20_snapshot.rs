//! A node that was down while the leader compacted its log past it catches up from a streamed
//! snapshot and converges.

use std::time::Duration;

use anyhow::Result;
use anyhow::ensure;

use crate::connect;
use crate::leader;
use crate::start_cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_down_past_the_purge_point_catches_up_from_a_snapshot() -> Result<()> {
    let _serial = crate::SERIAL.lock().await;
    let dir = tempfile::tempdir()?;
    // No workers, tiny snapshot interval: the log is compacted every 20 entries.
    let mut nodes = start_cluster(
        dir.path(),
        3,
        &["--workers", "0", "--snapshot-every-entries", "20"],
    )
    .await?;
    let lead = leader(&nodes).await?;
    let down = (lead + 1) % 3;
    let installed_before = nodes[down].log().matches("installed snapshot").count();
    let down_applied = crate::wait_status(&nodes[down], |_| true).await?.applied_index;
    nodes[down].kill9()?;

    let up: Vec<String> = nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != down)
        .map(|(_, n)| n.addr.clone())
        .collect();
    let client = connect(&up, Duration::from_secs(60)).await?;
    // One entry per submit: 200 entries, ten snapshots, the log purged well past the down node.
    for i in 0..200 {
        if let Err(e) = client.submit(client.task("noop").args(&i)?).await {
            let logs: Vec<String> = nodes
                .iter()
                .map(|n| format!("{}:\n{}", n.addr, n.log()))
                .collect();
            anyhow::bail!("submit {i} failed: {e}; logs:\n{}", logs.join("\n"));
        }
    }
    // Restart only once the leader has purged its log past where the down node stopped, so it
    // must catch up from a snapshot (under load, building and purging can lag behind).
    let leader_status = crate::wait_status(&nodes[lead], |s| s.purged_index > down_applied).await?;
    ensure!(leader_status.snapshot_index > down_applied, "{leader_status:?}");
    nodes[down].restart()?;

    let leader_client = connect(&up, Duration::from_secs(60)).await?;
    let lagging = connect(std::slice::from_ref(&nodes[down].addr), Duration::from_secs(60)).await?;
    let expected = leader_client.stats().await?;
    ensure!(
        expected.iter().map(|q| q.pending).sum::<u64>() == 200,
        "leader stats: {expected:?}"
    );
    let mut converged = false;
    for _ in 0..300 {
        // stats are served from the local replica: they show what the restarted node holds.
        if lagging.stats().await.ok().as_ref() == Some(&expected) {
            converged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(
        converged,
        "the restarted node did not converge; log:\n{}",
        nodes[down].log()
    );
    // It caught up from the leader's snapshot, not from the log (which was purged).
    let installed_after = nodes[down].log().matches("installed snapshot").count();
    ensure!(
        installed_after > installed_before,
        "no snapshot was installed; log:\n{}",
        nodes[down].log()
    );
    // And it serves linearizable reads of what it caught up on.
    let last = lagging.get(flotilla_client::TaskId(200)).await?;
    ensure!(last.name == "noop", "task 200 on the restarted node: {last:?}");
    Ok(())
}
