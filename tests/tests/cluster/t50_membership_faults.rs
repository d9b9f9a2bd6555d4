//! Membership changes while a node is down (issue 14, item 10): a change that could not finish
//! is refused up front, and a change whose caller left is finished by the cluster instead of
//! staying half done (a joint configuration) for good.

use std::time::Duration;

use anyhow::Result;
use anyhow::ensure;
use flotilla_client::Client;
use flotilla_client::ClientError;
use flotilla_client::RetryPolicy;

use crate::connect;
use crate::leader;
use crate::start_cluster;
use crate::wait_status;

/// The node ids of `nodes`, in order.
async fn ids(nodes: &[flotilla_tests::NodeProcess]) -> Result<Vec<u64>> {
    let mut ids = Vec::new();
    for node in nodes {
        ids.push(wait_status(node, |_| true).await?.node_id);
    }
    Ok(ids)
}

/// A 3-node cluster without workers: its nodes and their ids, the leader's position, the
/// node a test takes down and the one left beside the leader.
struct Three {
    nodes: Vec<flotilla_tests::NodeProcess>,
    ids: Vec<u64>,
    lead: usize,
    down: usize,
    other: usize,
}

async fn three(dir: &tempfile::TempDir) -> Result<Three> {
    let nodes = start_cluster(dir.path(), 3, &["--workers", "0"]).await?;
    let ids = ids(&nodes).await?;
    let lead = leader(&nodes).await?;
    Ok(Three {
        nodes,
        ids,
        lead,
        down: (lead + 1) % 3,
        other: (lead + 2) % 3,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_node_while_another_is_down_is_refused_not_left_half_done() -> Result<()> {
    let _serial = crate::SERIAL.lock().await;
    let dir = tempfile::tempdir()?;
    let Three {
        mut nodes,
        ids,
        lead,
        down,
        other,
    } = three(&dir).await?;
    nodes[down].kill9()?;
    // The leader counts a node as down once it missed heartbeats for 4 election timeouts
    // (4 s with these tests' timing).
    tokio::time::sleep(Duration::from_secs(6)).await;

    let admin = connect(std::slice::from_ref(&nodes[lead].addr), Duration::from_secs(30)).await?;
    let refused = tokio::time::timeout(Duration::from_secs(30), admin.remove_node(ids[other])).await;
    match refused {
        Ok(Err(ClientError::Server { message, .. })) => {
            ensure!(message.contains("no majority"), "unclear refusal: {message}")
        }
        outcome => anyhow::bail!("removing node {} was not refused: {outcome:?}", ids[other]),
    }
    let status = admin.status().await?;
    ensure!(!status.is_joint() && status.members.len() == 3, "{status:?}");

    // Removing the node that is down leaves a majority up: allowed, and finished.
    let members = admin.remove_node(ids[down]).await?;
    ensure!(members.len() == 2 && !members.contains(&ids[down]), "{members:?}");
    let status = admin.status().await?;
    ensure!(
        status.voter_sets == vec![vec![ids[lead].min(ids[other]), ids[lead].max(ids[other])]],
        "{status:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_whose_caller_left_is_finished_once_its_voters_are_back() -> Result<()> {
    let _serial = crate::SERIAL.lock().await;
    let dir = tempfile::tempdir()?;
    let Three {
        mut nodes,
        ids,
        lead,
        down,
        other,
    } = three(&dir).await?;
    // Down for less than the leader needs to notice: the change starts, and cannot commit.
    nodes[down].kill9()?;
    let impatient = Client::builder([nodes[lead].addr.clone()])
        .request_timeout(Duration::from_secs(1))
        .retry_policy(RetryPolicy::never())
        .build()
        .await?;
    let gave_up = impatient.remove_node(ids[other]).await;
    ensure!(
        gave_up.is_err(),
        "the change finished with a voter down: {gave_up:?}"
    );

    nodes[down].restart()?;
    let status = wait_status(&nodes[lead], |s| {
        !s.is_joint() && s.members.len() == 2 && s.members.iter().all(|m| m.id != ids[other])
    })
    .await?;
    let mut expected = vec![ids[lead], ids[down]];
    expected.sort();
    ensure!(status.voter_sets == vec![expected], "{status:?}");
    Ok(())
}
