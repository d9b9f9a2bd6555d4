//! `flotilla tasks` shows the remote workers connected anywhere in the cluster: a worker
//! connected to one node is listed by another (each node asks every member for its
//! sessions), and a member that cannot be asked is named instead of guessed at.

use std::time::Duration;

use anyhow::Context;
use anyhow::Result;
use anyhow::bail;
use anyhow::ensure;
use flotilla_client::Client;
use flotilla_client::TaskCatalogue;
use flotilla_proto::v1 as pb;
use flotilla_proto::v1::node_message::Msg as Out;
use flotilla_proto::v1::worker_message::Msg as In;

use crate::wait_status;
use flotilla_proto::v1::worker_service_client::WorkerServiceClient;
use tokio_stream::StreamExt;

use crate::connect;
use crate::start_cluster;

/// Poll the catalogue through `client` until `ok` holds (bounded: 30 s).
async fn wait(client: &Client, ok: impl Fn(&TaskCatalogue) -> bool) -> Result<TaskCatalogue> {
    let mut last = TaskCatalogue::default();
    for _ in 0..300 {
        if let Ok(c) = client.task_catalogue().await {
            if ok(&c) {
                return Ok(c);
            }
            last = c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the catalogue never showed what was expected: {last:?}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_on_one_node_is_listed_by_another_and_a_silent_member_is_named() -> Result<()> {
    let _serial = crate::SERIAL.lock().await;
    let dir = tempfile::tempdir()?;
    let mut nodes = start_cluster(dir.path(), 3, &["--workers", "0"]).await?;
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    // The joiners start together, so which gets which id is a race: ask each.
    let id_of = |i: usize| wait_status(&nodes[i], |_| true);
    let (second, third) = (id_of(1).await?.node_id, id_of(2).await?.node_id);

    // A worker session on the third node.
    let mut worker = WorkerServiceClient::connect(format!("http://{}", addrs[2])).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tx.send(pb::WorkerMessage {
        msg: Some(In::Hello(pb::Hello {
            name: "js-1".into(),
            queues: vec!["default".into()],
            tasks: vec![pb::TaskDecl {
                name: "hook.call".into(),
                queue: String::new(),
            }],
            concurrency: 4,
            resume: vec![],
            protocol_version: 1,
            agent: "flotilla-tests".into(),
            prefetch: None,
            queue_ahead: 0,
        })),
    })
    .await?;
    let mut inbound = worker
        .session(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(30), inbound.next())
        .await?
        .context("stream ended")??;
    ensure!(matches!(first.msg, Some(Out::Welcome(_))), "{first:?}");

    // Asked through the first node only.
    let client = connect(std::slice::from_ref(&addrs[0]), Duration::from_secs(60)).await?;
    let listed = |c: &TaskCatalogue| {
        c.names
            .iter()
            .find(|t| t.name == "hook.call")
            .is_some_and(|t| t.workers.len() == 1)
    };
    let catalogue = wait(&client, listed).await?;
    let hook = catalogue.names.iter().find(|t| t.name == "hook.call").unwrap();
    let w = &hook.workers[0];
    ensure!(
        (w.name.as_str(), w.node_id, w.concurrency) == ("js-1", third, 4),
        "{w:?}"
    );
    ensure!(catalogue.unreachable_nodes.is_empty());
    let noop = catalogue.names.iter().find(|t| t.name == "noop").unwrap();
    ensure!(noop.workers.is_empty(), "js-1 did not declare noop");

    // The second node stops: still listed as a member, it cannot answer.
    nodes[1].kill9()?;
    let catalogue = wait(&client, |c| c.unreachable_nodes == [second]).await?;
    ensure!(listed(&catalogue), "the third node's worker is still listed");

    // The worker's stream closes: no longer listed.
    drop(tx);
    drop(inbound);
    wait(&client, |c| {
        c.names
            .iter()
            .find(|t| t.name == "hook.call")
            .is_some_and(|t| t.workers.is_empty())
    })
    .await?;
    Ok(())
}
