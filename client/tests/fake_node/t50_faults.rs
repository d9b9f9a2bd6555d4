use std::collections::BTreeSet;
use std::time::Duration;

use flotilla_client::{Client, ClientError, RetryPolicy, TaskId, TaskState};

use crate::client_of;
use crate::fake::{Fake, frozen_addr, refused_addr};

#[tokio::test]
async fn unavailable_is_retried_until_the_node_serves() -> anyhow::Result<()> {
    let fake = Fake::default();
    let client = client_of(&[fake.serve().await]).await;
    fake.fail_next_calls(3);
    let id = client.submit(client.task("echo")).await?;
    assert_eq!(fake.calls(), 4);
    assert_eq!(fake.task_count(), 1);
    fake.fail_next_calls(2);
    assert_eq!(client.get(id).await?.state, TaskState::Succeeded);
    assert_eq!(fake.calls(), 7);
    Ok(())
}

#[tokio::test]
async fn retries_give_up_after_the_policy_time() -> anyhow::Result<()> {
    let fake = Fake::default();
    let addr = fake.serve().await;
    let policy = RetryPolicy {
        max_elapsed: Duration::from_millis(300),
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
    };
    let client = Client::builder([addr.to_string()])
        .retry_policy(policy)
        .build()
        .await?;
    fake.fail_next_calls(u32::MAX);
    let started = tokio::time::Instant::now();
    match client.status().await {
        Err(ClientError::Unavailable { attempts, last }) => {
            assert!(attempts >= 3, "{attempts}");
            assert_eq!(attempts as usize, fake.calls());
            assert!(last.contains("no leader is ready"), "{last}");
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(2),
        "{took:?}"
    );
    let once = Client::builder([addr.to_string()])
        .retry_policy(RetryPolicy::never())
        .build()
        .await?;
    let before = fake.calls();
    assert!(matches!(
        once.stats().await,
        Err(ClientError::Unavailable { attempts: 1, .. })
    ));
    assert_eq!(fake.calls(), before + 1);
    Ok(())
}

#[tokio::test]
async fn a_refused_address_fails_over_to_the_next_node() -> anyhow::Result<()> {
    let fake = Fake::default();
    let client = client_of(&[refused_addr().await, fake.serve().await]).await;
    let ids = client
        .submit_batch((0..10).map(|_| client.task("echo")).collect())
        .await?;
    assert_eq!(ids.len(), 10);
    assert_eq!(fake.task_count(), 10);
    // The client now prefers the live node: no more failed attempts.
    let started = tokio::time::Instant::now();
    for _ in 0..5 {
        client.status().await?;
    }
    assert!(started.elapsed() < Duration::from_millis(500));
    let info = client.wait(ids[0].id, Duration::from_secs(5)).await?;
    assert_eq!(info.state, TaskState::Succeeded);
    // With no live node at all, the error says where it last failed.
    let dead = refused_addr().await;
    let policy = RetryPolicy {
        max_elapsed: Duration::from_millis(100),
        ..RetryPolicy::default()
    };
    let nobody = Client::builder([dead.to_string()])
        .retry_policy(policy)
        .build()
        .await?;
    match nobody.get(TaskId(1)).await {
        Err(ClientError::Unavailable { last, .. }) => assert!(last.contains(&dead.to_string()), "{last}"),
        other => panic!("expected unavailable, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn a_lost_submit_reply_never_makes_a_second_task() -> anyhow::Result<()> {
    let fake = Fake::default();
    let client = client_of(&[fake.serve().await]).await;
    fake.lose_next_submit_replies(1);
    let submitted = client
        .submit_batch((0..20).map(|_| client.task("noop")).collect())
        .await?;
    assert_eq!(fake.task_count(), 20);
    assert_eq!(fake.submit_sizes(), [20, 20]);
    assert!(
        submitted.iter().all(|s| s.duplicate),
        "the retry found the committed tasks"
    );
    let ids: BTreeSet<TaskId> = submitted.iter().map(|s| s.id).collect();
    assert_eq!(ids.len(), 20);
    Ok(())
}

#[tokio::test]
async fn a_broken_wait_stream_resumes_with_only_unreported_ids() -> anyhow::Result<()> {
    let fake = Fake::default();
    let client = client_of(&[fake.serve().await]).await;
    let ids: Vec<TaskId> = client
        .submit_batch((0..10).map(|_| client.task("echo")).collect())
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect();
    fake.break_next_streams(2, 3);
    let infos = client.wait_all(ids.clone(), Duration::from_secs(10)).await?;
    let got: BTreeSet<TaskId> = infos.iter().map(|i| i.id).collect();
    assert_eq!((infos.len(), got), (10, ids.iter().copied().collect()));
    let sizes: Vec<usize> = fake.wait_requests().iter().map(Vec::len).collect();
    assert_eq!(sizes, [10, 7, 4]);
    // A stream that cannot even be opened is retried as well.
    fake.fail_next_calls(2);
    assert_eq!(
        client
            .wait_all(ids[..2].to_vec(), Duration::from_secs(10))
            .await?
            .len(),
        2
    );
    Ok(())
}

/// Issue 14, item 15: a call to a node that stopped answering (a SIGSTOPped process) moves to
/// the next node within about a second (HTTP/2 keepalive; a first-response deadline for wait
/// streams), not after its 10 s request timeout.
#[tokio::test]
async fn a_node_that_stopped_answering_is_left_within_a_second() -> anyhow::Result<()> {
    let (_frozen, frozen) = frozen_addr().await;
    let fake = Fake::default();
    let live = fake.serve().await;
    let builder = || {
        Client::builder([frozen.to_string(), live.to_string()])
            .request_timeout(Duration::from_secs(10))
            .retry_policy(RetryPolicy {
                max_elapsed: Duration::from_secs(20),
                initial_backoff: Duration::from_millis(5),
                max_backoff: Duration::from_millis(50),
            })
    };
    let within = Duration::from_millis(1_500);

    // A single attempt: it is the keepalive that ends it, long before the request timeout.
    let once = builder().retry_policy(RetryPolicy::never()).build().await?;
    let started = tokio::time::Instant::now();
    let err = once.status().await.unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(err, ClientError::Unavailable { attempts: 1, .. }),
        "{err}"
    );
    assert!(took < within, "{took:?}: {err}");

    let client = builder().build().await?;
    let started = tokio::time::Instant::now();
    let id = client.submit(client.task("echo")).await?;
    assert!(started.elapsed() < within, "{:?}", started.elapsed());
    assert_eq!(fake.task_count(), 1);

    // A wait stream opened on the frozen node, with keepalive off: the first-response
    // deadline alone moves it on.
    let client = builder().keepalive(None).build().await?;
    let started = tokio::time::Instant::now();
    let info = client.wait(id, Duration::from_secs(10)).await?;
    assert_eq!(info.state, TaskState::Succeeded);
    assert!(started.elapsed() < within, "{:?}", started.elapsed());

    // Without either, the frozen node holds a call for its whole request timeout.
    let slow = builder()
        .keepalive(None)
        .request_timeout(Duration::from_secs(2))
        .retry_policy(RetryPolicy::never())
        .build()
        .await?;
    let started = tokio::time::Instant::now();
    let err = slow.status().await.unwrap_err();
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}: {err}",
        started.elapsed()
    );
    Ok(())
}
