//! What a task carries beyond its args, end to end over the worker stream: submit headers
//! reach the worker with every grant (and oversized ones are refused at submit); progress is
//! kept and read back; a retry delay replaces the backoff.

use anyhow::Result;
use anyhow::ensure;
use flotilla_client::ClientError;

use crate::remote::Worker;
use crate::remote::hello;
use crate::remote::success;
use crate::t10_session::node;

#[tokio::test]
async fn headers_reach_the_worker_and_oversized_ones_are_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (node, client) = node(&dir).await?;
    let id = client
        .submit(
            client
                .task("noop")
                .header("traceparent", "00-4bf92f3577b34da6-00f067aa0ba902b7-01")
                .header("x-tenant", "acme"),
        )
        .await?;
    let mut w = Worker::open(&node.addr, hello("h", 1)).await?;
    let (mut acks, mut tasks) = (Vec::new(), Vec::new());
    let t = w.tasks(&mut acks).await?.remove(0);
    ensure!(t.task_id == id.0);
    ensure!(t.headers.len() == 2, "{:?}", t.headers);
    ensure!(t.headers["x-tenant"] == "acme");
    ensure!(t.headers["traceparent"].starts_with("00-4bf9"));
    w.results(vec![success(&t, b"1")]).await?;
    w.acks(1, &mut tasks).await?;

    let mut many = client.task("noop");
    for i in 0..65 {
        many = many.header(format!("h{i}"), "v");
    }
    let err = client.submit(many).await.unwrap_err();
    ensure!(
        matches!(&err, ClientError::InvalidArgument(m) if m.contains("65 headers is over the limit of 64")),
        "{err}"
    );
    let big = client.task("noop").header("big", "x".repeat(17 * 1024));
    let err = client.submit(big).await.unwrap_err();
    ensure!(
        matches!(&err, ClientError::InvalidArgument(m) if m.contains("over the limit of 16384 bytes")),
        "{err}"
    );
    Ok(())
}

/// A worker's progress is kept on the task (the latest, written at most once a second per
/// session) and read with `GetTask`; a retry delay replaces the backoff; oversized progress
/// ends the stream.
#[tokio::test]
async fn progress_is_readable_and_a_retry_delay_replaces_the_backoff() -> Result<()> {
    use std::time::Duration;

    use flotilla_client::TaskState;
    use flotilla_proto::v1 as pb;
    use flotilla_proto::v1::queue_service_client::QueueServiceClient;
    use flotilla_proto::v1::worker_message::Msg as In;

    let dir = tempfile::tempdir()?;
    let (node, client) = node(&dir).await?;
    let id = client
        .submit(
            client
                .task("noop")
                .max_retries(1)
                .retry_backoff(Duration::from_millis(1)),
        )
        .await?;
    let mut w = Worker::open(&node.addr, hello("p", 1)).await?;
    let (mut acks, mut tasks) = (Vec::new(), Vec::new());
    let t = w.tasks(&mut acks).await?.remove(0);
    for i in 0..50 {
        let progress = bytes::Bytes::from(format!(r#"{{"done":{i}}}"#));
        w.send(In::Progress(pb::Progress {
            task_id: t.task_id,
            attempt: t.attempt,
            progress,
        }))
        .await?;
    }
    let raw = QueueServiceClient::connect(format!("http://{}", node.addr)).await?;
    let get = |mut raw: QueueServiceClient<tonic::transport::Channel>| async move {
        let r = raw
            .get_task(pb::GetTaskRequest {
                id: id.0,
                stale_ok: false,
            })
            .await?;
        anyhow::Ok(r.into_inner().task.unwrap_or_default())
    };
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen = get(raw.clone()).await?.progress.to_vec();
        if seen == br#"{"done":49}"# {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(seen == br#"{"done":49}"#, "{}", String::from_utf8_lossy(&seen));
    let info = get(raw.clone()).await?;
    ensure!(info.progress_attempt == t.attempt && info.progress_unix_ms > 0);

    // Failed retryably with a delay of 60 s: still retrying well after the 1 ms backoff.
    w.results(vec![pb::TaskResult {
        task_id: t.task_id,
        attempt: t.attempt,
        outcome: Some(pb::task_result::Outcome::Failure(pb::Failure {
            message: "rate limited".into(),
            retryable: true,
            retry_delay_ms: 60_000,
            kind: String::new(),
        })),
    }])
    .await?;
    w.acks(1, &mut tasks).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let info = client.get(id).await?;
    ensure!(info.state == TaskState::Retrying, "{info:?}");
    ensure!(tasks.is_empty(), "nothing granted during the delay");

    // Oversized progress: a protocol error.
    let id2 = client.submit(client.task("noop")).await?;
    let t2 = w.tasks(&mut acks).await?.remove(0);
    ensure!(t2.task_id == id2.0);
    w.send(In::Progress(pb::Progress {
        task_id: t2.task_id,
        attempt: t2.attempt,
        progress: vec![b'x'; 5_000].into(),
    }))
    .await?;
    let status = loop {
        match w.next_status().await {
            Ok(_) => continue,
            Err(status) => break status,
        }
    };
    ensure!(
        status.message().contains("over the limit of 4096 bytes"),
        "{status:?}"
    );
    Ok(())
}
