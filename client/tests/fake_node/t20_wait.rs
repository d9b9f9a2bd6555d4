use std::collections::BTreeSet;
use std::time::Duration;

use flotilla_client::{Client, ClientError, TaskId, TaskState};
use futures::StreamExt;

use crate::client_of;
use crate::fake::Fake;

#[tokio::test]
async fn wait_returns_when_the_task_completes() -> anyhow::Result<()> {
    let fake = Fake::default();
    let client = client_of(&[fake.serve().await]).await;
    let id = client.submit(client.task("noop")).await?;
    let completer = {
        let fake = fake.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            fake.complete(id.0, r#""done""#);
        })
    };
    let info = client.wait(id, Duration::from_secs(5)).await?;
    assert_eq!(
        (info.state, info.result_json::<String>()?.as_str()),
        (TaskState::Succeeded, "done")
    );
    completer.await?;
    assert!(matches!(
        client.wait(TaskId(12345), Duration::from_secs(5)).await,
        Err(ClientError::NotFound(_))
    ));
    Ok(())
}

#[tokio::test]
async fn wait_times_out_once_for_tasks_that_never_finish() -> anyhow::Result<()> {
    let fake = Fake::default();
    let client = Client::builder([fake.serve().await.to_string()])
        .wait_chunk_size(2)
        .build()
        .await?;
    let done = client.submit(client.task("echo")).await?;
    let stuck: Vec<TaskId> = client
        .submit_batch((0..5).map(|_| client.task("noop")).collect())
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect();
    let started = tokio::time::Instant::now();
    let items: Vec<_> = client
        .wait_many(stuck.iter().copied().chain([done]), Duration::from_millis(300))
        .collect()
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    let oks: Vec<TaskId> = items
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|i| i.id))
        .collect();
    assert_eq!(oks, [done]);
    let timeouts = items
        .iter()
        .filter(|r| matches!(r, Err(ClientError::Timeout)))
        .count();
    assert_eq!((items.len(), timeouts), (2, 1), "{items:?}");
    assert!(matches!(
        client.wait(stuck[0], Duration::from_millis(50)).await,
        Err(ClientError::Timeout)
    ));
    Ok(())
}

#[tokio::test]
async fn wait_many_splits_100k_ids_over_several_streams() -> anyhow::Result<()> {
    let fake = Fake::default();
    let client = client_of(&[fake.serve().await]).await;
    let n = 100_000;
    let ids: Vec<TaskId> = client
        .submit_batch((0..n).map(|_| client.task("echo")).collect())
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect();
    // Unknown ids and repeats are reported once too.
    let asked = ids.iter().copied().chain([TaskId(u64::MAX), ids[0]]);
    let mut seen = BTreeSet::new();
    let mut not_found = 0;
    let mut results = std::pin::pin!(client.wait_many(asked, Duration::from_secs(60)));
    while let Some(info) = results.next().await {
        let info = info?;
        assert!(seen.insert(info.id), "{} reported twice", info.id);
        match info.state {
            TaskState::Succeeded => {}
            TaskState::NotFound => not_found += 1,
            other => panic!("unexpected state {other}"),
        }
    }
    assert_eq!((seen.len(), not_found), (n + 1, 1));
    let requests = fake.wait_requests();
    assert_eq!(requests.len(), 11, "10,000 ids per stream");
    assert!(requests.iter().all(|r| r.len() <= 10_000));
    Ok(())
}
