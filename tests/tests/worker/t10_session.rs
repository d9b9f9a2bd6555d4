//! One node with no workers of its own, Rust remote workers over the stream: tasks run, a
//! killed stream hands its tasks over at once, fencing, limits, protocol errors.

use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

use anyhow::Result;
use anyhow::ensure;
use flotilla_client::Client;
use flotilla_client::TaskState;
use flotilla_proto::v1 as pb;
use flotilla_proto::v1::node_message::Msg as Out;
use flotilla_proto::v1::result_ack::Status as Ack;
use flotilla_proto::v1::worker_message::Msg as In;
use flotilla_tests::NodeProcess;
use flotilla_tests::connect;
use flotilla_tests::ready;
use flotilla_tests::submit_noops;

use crate::remote::Worker;
use crate::remote::client as worker_client;
use crate::remote::hello;
use crate::remote::success;

/// Far longer than any test: a task run again quickly was released, not expired.
const LEASE_MS: &str = "120000";

pub(crate) async fn node(dir: &tempfile::TempDir) -> Result<(NodeProcess, Client)> {
    let args = [
        "--workers",
        "0",
        "--lease-ms",
        LEASE_MS,
        "--max-result-bytes",
        "16",
    ];
    let node = NodeProcess::start(&dir.path().join("n1"), &args)?;
    let client = connect(&node).await?;
    ready(&client, &node).await?;
    Ok((node, client))
}

fn statuses(acks: &[pb::ResultAck]) -> Vec<Ack> {
    acks.iter().map(|a| a.status()).collect()
}

#[tokio::test]
async fn a_thousand_tasks_run_and_a_killed_stream_hands_its_tasks_over_at_once() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (node, client) = node(&dir).await?;
    let ids = submit_noops(&client, 1000).await?;
    let mut a = Worker::open(&node.addr, hello("a", 50)).await?;
    // A answers 300 tasks, then holds what it has and its stream is killed.
    let (mut answered, mut acks) = (0, Vec::new());
    let held = loop {
        let tasks = a.tasks(&mut acks).await?;
        if answered >= 300 {
            break tasks;
        }
        answered += tasks.len();
        a.results(tasks.iter().map(|t| success(t, b"null")).collect())
            .await?;
    };
    ensure!(!held.is_empty());
    drop(a);
    let killed = Instant::now();
    // B runs everything left, the tasks A held among them (attempt 2).
    let mut b = Worker::open(&node.addr, hello("b", 50)).await?;
    let mut attempts: BTreeMap<u64, u32> = BTreeMap::new();
    let mut acks = Vec::new();
    let waited = tokio::spawn({
        let client = client.clone();
        async move { client.wait_all(ids, Duration::from_secs(60)).await }
    });
    while !waited.is_finished() {
        let tasks = tokio::select! {
            t = b.tasks(&mut acks) => t?,
            () = tokio::time::sleep(Duration::from_millis(200)) => continue,
        };
        for t in &tasks {
            attempts.insert(t.task_id, t.attempt);
        }
        b.results(tasks.iter().map(|t| success(t, b"null")).collect())
            .await?;
    }
    let infos = waited.await??;
    let elapsed = killed.elapsed();
    ensure!(infos.len() == 1000 && infos.iter().all(|i| i.state == TaskState::Succeeded));
    for t in &held {
        ensure!(
            attempts.get(&t.task_id) == Some(&2),
            "task {} was not run again by b",
            t.task_id
        );
    }
    ensure!(
        elapsed < Duration::from_secs(30),
        "took {elapsed:?}: the leases expired instead"
    );
    ensure!(acks.iter().all(|a| a.status() == Ack::Accepted));
    Ok(())
}

#[tokio::test]
async fn stale_results_are_refused_repeats_accepted_and_large_results_fail() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (node, client) = node(&dir).await?;
    let id = submit_noops(&client, 1).await?[0];
    let mut a = Worker::open(&node.addr, hello("a", 1)).await?;
    let (mut acks, mut tasks) = (Vec::new(), Vec::new());
    let first = a.tasks(&mut acks).await?.remove(0);
    drop(a);
    let mut b = Worker::open(&node.addr, hello("b", 1)).await?;
    let second = b.tasks(&mut acks).await?.remove(0);
    ensure!(second.task_id == first.task_id && second.attempt == first.attempt + 1);
    // The lost lease's result, from outside a session: stale.
    let mut unary = worker_client(&node.addr).await?;
    let stale = unary
        .complete(pb::CompleteRequest {
            results: vec![success(&first, b"1")],
        })
        .await?
        .into_inner();
    ensure!(statuses(&stale.acks) == vec![Ack::Stale]);
    b.results(vec![success(&second, b"2")]).await?;
    ensure!(statuses(&b.acks(1, &mut tasks).await?) == vec![Ack::Accepted]);
    // Repeated on the stream and through `Complete`: accepted again, nothing changes.
    b.results(vec![success(&second, b"2")]).await?;
    ensure!(statuses(&b.acks(1, &mut tasks).await?) == vec![Ack::Accepted]);
    let again = unary
        .complete(pb::CompleteRequest {
            results: vec![success(&second, b"2")],
        })
        .await?
        .into_inner();
    ensure!(statuses(&again.acks) == vec![Ack::Accepted]);
    let info = client.get(id).await?;
    ensure!(info.state == TaskState::Succeeded && &info.result[..] == b"2");

    // Over --max-result-bytes (16): the task fails for good, the worker is told.
    let big = submit_noops(&client, 1).await?[0];
    let t = if tasks.is_empty() {
        b.tasks(&mut acks).await?.remove(0)
    } else {
        tasks.remove(0)
    };
    ensure!(t.task_id == big.0);
    b.results(vec![success(&t, b"a result of 25 bytes ...")]).await?;
    ensure!(statuses(&b.acks(1, &mut tasks).await?) == vec![Ack::TooLarge]);
    let info = client.get(big).await?;
    ensure!(info.state == TaskState::Dead, "{info:?}");
    let error = info.error.unwrap_or_default();
    ensure!(error.contains("over the limit of 16 bytes"), "{error}");
    Ok(())
}

#[tokio::test]
async fn garbage_ends_only_its_own_stream_and_a_live_name_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (node, client) = node(&dir).await?;
    let mut good = Worker::open(&node.addr, hello("good", 1)).await?;
    let mut bad = Worker::open(&node.addr, hello("bad", 1)).await?;
    // A second session under a live name.
    let mut twin = Worker::connect(&node.addr).await?;
    twin.send(In::Hello(hello("good", 1))).await?;
    ensure!(matches!(twin.next_status().await, Ok(Out::Error(_))));
    ensure!(twin.next_status().await.unwrap_err().code() == tonic::Code::AlreadyExists);
    // A result for a task never sent: an error, then the stream ends.
    let never = pb::Task {
        task_id: 999_999,
        attempt: 1,
        ..Default::default()
    };
    bad.results(vec![success(&never, b"1")]).await?;
    match bad.next_status().await {
        Ok(Out::Error(e)) => ensure!(e.message.contains("never sent"), "{}", e.message),
        other => anyhow::bail!("expected a WorkerError, got {other:?}"),
    }
    ensure!(bad.next_status().await.unwrap_err().code() == tonic::Code::InvalidArgument);
    // The good worker still runs tasks.
    let id = submit_noops(&client, 1).await?[0];
    let mut acks = Vec::new();
    let t = good.tasks(&mut acks).await?.remove(0);
    ensure!(t.task_id == id.0);
    good.results(vec![success(&t, b"7")]).await?;
    let info = client.wait(id, Duration::from_secs(20)).await?;
    ensure!(info.state == TaskState::Succeeded);
    // A first message that is not a Hello.
    let mut rude = Worker::connect(&node.addr).await?;
    rude.results(vec![]).await?;
    ensure!(matches!(rude.next_status().await, Ok(Out::Error(_))));
    ensure!(rude.next_status().await.unwrap_err().code() == tonic::Code::InvalidArgument);
    Ok(())
}
