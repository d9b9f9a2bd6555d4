//! Joining fails clearly (unreachable peer, another cluster's data directory) and leaves no
//! member behind; a removed node cannot write; a replacement can join.

use std::time::Duration;

use anyhow::Result;
use anyhow::ensure;
use flotilla_tests::NodeProcess;
use flotilla_tests::free_port;
use flotilla_tests::run_node;

use crate::connect;
use crate::start_cluster;
use crate::wait_status;

#[test]
fn joining_through_an_unreachable_peer_fails_clearly_and_stores_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("n");
    let listen = format!("127.0.0.1:{}", free_port()?);
    let nobody = format!("127.0.0.1:{}", free_port()?);
    let data_arg = data.to_string_lossy().to_string();
    let (code, stderr) = run_node(&["--listen", &listen, "--data-dir", &data_arg, "--join", &nobody])?;
    ensure!(code == Some(1), "exit {code:?}: {stderr}");
    ensure!(
        stderr.contains("cannot join") && stderr.contains(&nobody),
        "stderr: {stderr}"
    );
    ensure!(
        !data.join("node.json").exists(),
        "an identity was stored for a failed join"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_of_another_cluster_is_refused() -> Result<()> {
    let _serial = crate::SERIAL.lock().await;
    let dir = tempfile::tempdir()?;
    let a = NodeProcess::start(&dir.path().join("a"), &["--workers", "0"])?;
    let mut b = NodeProcess::start(&dir.path().join("b"), &["--workers", "0"])?;
    wait_status(&a, |s| s.leader_id.is_some()).await?;
    wait_status(&b, |s| s.leader_id.is_some()).await?;
    b.kill9()?;
    let data_arg = b.data_dir.to_string_lossy().to_string();
    let (code, stderr) = run_node(&["--listen", &b.addr, "--data-dir", &data_arg, "--join", &a.addr])?;
    ensure!(code == Some(1), "exit {code:?}: {stderr}");
    ensure!(stderr.contains("belongs to cluster"), "stderr: {stderr}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_node_cannot_write_and_a_replacement_can_join() -> Result<()> {
    let _serial = crate::SERIAL.lock().await;
    let dir = tempfile::tempdir()?;
    let nodes = start_cluster(dir.path(), 3, &["--workers", "0"]).await?;
    let admin = connect(std::slice::from_ref(&nodes[0].addr), Duration::from_secs(30)).await?;
    let removed_id = wait_status(&nodes[2], |_| true).await?.node_id;
    let members = admin.remove_node(removed_id).await?;
    ensure!(
        !members.contains(&removed_id) && members.len() == 2,
        "members after removal: {members:?}"
    );

    // The removed node still runs, but its writes are refused by the cluster.
    let removed = connect(std::slice::from_ref(&nodes[2].addr), Duration::from_secs(8)).await?;
    let attempt = removed.submit(removed.task("noop")).await;
    match &attempt {
        Err(e) => ensure!(e.to_string().contains("not a member"), "unclear refusal: {e}"),
        Ok(_) => anyhow::bail!("a removed node accepted a write: {attempt:?}"),
    }
    ensure!(
        nodes[2].log().contains("this node was removed from the cluster"),
        "the removed node did not say so; log:\n{}",
        nodes[2].log()
    );
    let pending: u64 = admin.stats().await?.iter().map(|q| q.pending).sum();
    ensure!(pending == 0, "a task from the removed node reached the cluster");

    // A replacement joins and the cluster works with it.
    let first = nodes[0].addr.clone();
    let mut args = vec!["--workers", "0", "--join", &first];
    args.extend(crate::TOLERANT_TIMING);
    let replacement = NodeProcess::start(&dir.path().join("n4"), &args)?;
    let status = wait_status(&replacement, |s| s.members.len() == 3 && s.leader_id.is_some()).await?;
    ensure!(
        status.node_id > removed_id,
        "the replacement reused an id: {status:?}"
    );
    let client = connect(std::slice::from_ref(&replacement.addr), Duration::from_secs(30)).await?;
    let id = client.submit(client.task("noop")).await?;
    ensure!(
        client.get(id).await?.name == "noop",
        "write through the replacement"
    );
    Ok(())
}
