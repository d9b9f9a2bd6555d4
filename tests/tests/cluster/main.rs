//! Integration tests of real 3-node clusters on loopback: failover under load, the task
//! catalogue, catch-up from a snapshot, joining and removing members, a lost node's standing
//! capacity, the events stream. Files by priority: t10 basic, t50 environment, t90 regressions.
//! capacity, operating tasks (list, get, cancel --terminate, retry, pause). Files by priority: t10 basic, t50 environment, t90 regressions.

mod t10_failover;
mod t15_catalog;
mod t16_connected_workers;
mod t17_workers;
mod t20_snapshot;
mod t30_membership;
mod t40_standing;
mod t50_membership_faults;
mod t60_health;
mod t70_attempts;
mod t70_events;
mod t70_ops;
mod t70_workflows;

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use anyhow::bail;
use flotilla_client::Client;
use flotilla_client::ClusterStatus;
use flotilla_client::RetryPolicy;
use flotilla_tests::NodeProcess;

/// A client over `addrs` that retries long enough to ride out elections and restarts.
pub async fn connect(addrs: &[String], patience: Duration) -> Result<Client> {
    let policy = RetryPolicy {
        max_elapsed: patience,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(500),
    };
    Ok(Client::builder(addrs.to_vec())
        .retry_policy(policy)
        .build()
        .await?)
}

/// Each test runs 3+ node processes; on a 2-core machine several clusters at once starve each
/// other of CPU long enough to churn elections. The tests take turns.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Raft timing for test clusters: tolerant of a loaded CI machine (the defaults are tuned for
/// failover speed, which `sim failover` measures; these tests assert behaviour, not speed).
pub const TOLERANT_TIMING: [&str; 6] = [
    "--heartbeat-interval-ms",
    "100",
    "--election-timeout-ms-min",
    "500",
    "--election-timeout-ms-max",
    "1000",
];

/// Start node 1, then `n - 1` nodes joining through it, each with `extra` flags (and
/// [`TOLERANT_TIMING`]); returns once every node sees all `n` members as voters under one
/// leader. (A joiner is a learner until it is promoted: a test that kills a voter while the
/// last joiner is still a learner leaves no quorum, and the cluster rightly stops.)
pub async fn start_cluster(dir: &Path, n: usize, extra: &[&str]) -> Result<Vec<NodeProcess>> {
    let extra: Vec<&str> = extra.iter().copied().chain(TOLERANT_TIMING).collect();
    let extra = extra.as_slice();
    let mut nodes = vec![NodeProcess::start(&dir.join("n1"), extra)?];
    let first = nodes[0].addr.clone();
    for i in 2..=n {
        let mut args = vec!["--join", first.as_str()];
        args.extend_from_slice(extra);
        nodes.push(NodeProcess::start(&dir.join(format!("n{i}")), &args)?);
    }
    for node in &nodes {
        wait_status(node, |s| {
            s.members.len() == n && s.members.iter().all(|m| m.role != "learner") && s.leader_id.is_some()
        })
        .await?;
    }
    Ok(nodes)
}

/// Poll `node`'s status until `ok` holds (bounded: 60 s).
pub async fn wait_status(node: &NodeProcess, ok: impl Fn(&ClusterStatus) -> bool) -> Result<ClusterStatus> {
    let client = connect(std::slice::from_ref(&node.addr), Duration::from_secs(2)).await?;
    flotilla_tests::wait_for_status(node, &client, ok).await
}

/// Index in `nodes` of the current leader, as `nodes[0..]` agree.
pub async fn leader(nodes: &[NodeProcess]) -> Result<usize> {
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    let client = connect(&addrs, Duration::from_secs(30)).await?;
    for _ in 0..300 {
        let s = client.status().await?;
        if let Some(id) = s.leader_id
            && let Some(m) = s.members.iter().find(|m| m.id == id)
            && let Some(i) = nodes.iter().position(|n| n.addr == m.addr)
        {
            return Ok(i);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("no leader")
}
