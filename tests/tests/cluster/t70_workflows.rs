//! A chord on a 3-node cluster with the leader SIGKILLed midway (issue 12): the members run
//! (`sleep`), the leader dies while they do and comes back later; the callback still becomes
//! pending exactly once, after every member succeeded, and the workflow reads as one object
//! from any node.

use std::time::Duration;

use anyhow::Result;
use anyhow::ensure;
use flotilla_client::TaskState;
use flotilla_client::WorkflowState;
use flotilla_client::workflow::chord;
use flotilla_client::workflow::group;
use serde_json::json;

use crate::connect;
use crate::leader;
use crate::start_cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chord_survives_its_leader_being_killed_midway() -> Result<()> {
    let _serial = crate::SERIAL.lock().await;
    let dir = tempfile::tempdir()?;
    let mut nodes = start_cluster(dir.path(), 3, &["--workers", "4", "--lease-ms", "3000"]).await?;
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    let client = connect(&addrs, Duration::from_secs(60)).await?;
    let sleep = |ms: u64| client.task("sleep").args(&json!({"ms": ms})).unwrap();
    let members: Vec<_> = (0..6).map(|i| sleep(400 + 100 * i)).collect();
    let body = client.task("echo").args(&json!("done"))?;
    let w = client.submit_workflow(chord(group(members), body), None).await?;
    let callback = *w.task_ids.last().unwrap();

    // Midway: some members finished or running, the callback still waiting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mid = client.workflow(w.id).await?;
    ensure!(
        mid.tasks.last().unwrap().waiting,
        "the callback ran before its members: {mid:?}"
    );
    let victim = leader(&nodes).await?;
    nodes[victim].kill9()?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    nodes[victim].restart()?;

    let done = client.wait_workflow(w.id, Duration::from_secs(120)).await?;
    ensure!(done.state == WorkflowState::Succeeded, "{done:?}");
    ensure!(done.result_json::<String>()? == "done", "{done:?}");
    let cb = done.tasks.last().unwrap().task.clone().unwrap();
    ensure!(cb.id == callback && cb.state == TaskState::Succeeded, "{cb:?}");
    let last_member = done.tasks[..6]
        .iter()
        .map(|t| t.task.as_ref().unwrap().updated_unix_ms)
        .max()
        .unwrap();
    // It became pending (created → leased → succeeded) after the last member succeeded.
    ensure!(
        cb.updated_unix_ms >= last_member,
        "callback {cb:?} before member at {last_member}"
    );
    // Every node reads it the same.
    for n in &nodes {
        let c = connect(std::slice::from_ref(&n.addr), Duration::from_secs(30)).await?;
        let mut seen = None;
        for _ in 0..100 {
            let v = c.workflow(w.id).await?;
            if v.state == WorkflowState::Succeeded {
                seen = Some(v);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        ensure!(seen.is_some(), "node {} never saw the workflow succeed", n.addr);
    }
    Ok(())
}
