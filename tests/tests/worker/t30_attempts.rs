//! Attempt histories (issue 13 item 1) with a remote worker: a task that fails once, then
//! succeeds, shows both attempts, held by the worker's name, with how each ended.

use std::time::Duration;

use anyhow::Result;
use anyhow::bail;
use anyhow::ensure;
use flotilla_client::AttemptEnd;
use flotilla_client::TaskState;
use flotilla_proto::v1 as pb;

use crate::remote::Worker;
use crate::remote::hello;
use crate::remote::success;
use crate::t10_session::node;

#[tokio::test]
async fn a_task_that_fails_once_then_succeeds_shows_two_attempts() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (node, client) = node(&dir).await?;
    // A one-member cluster: its leader switches recording on at its first tick as leader.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let id = client
        .submit(
            client
                .task("noop")
                .max_retries(1)
                .retry_backoff(Duration::from_millis(1)),
        )
        .await?;
    let mut w = Worker::open(&node.addr, hello("flaky-worker", 1)).await?;
    let (mut acks, mut tasks) = (Vec::new(), Vec::new());
    let t = w.tasks(&mut acks).await?.remove(0);
    ensure!(t.task_id == id.0 && t.attempt == 1);
    w.results(vec![pb::TaskResult {
        task_id: t.task_id,
        attempt: t.attempt,
        outcome: Some(pb::task_result::Outcome::Failure(pb::Failure {
            message: "first time unlucky".into(),
            retryable: true,
            retry_delay_ms: 0,
            kind: String::new(),
        })),
    }])
    .await?;
    let t = loop {
        if let Some(t) = tasks.pop() {
            break t;
        }
        match w.tasks(&mut acks).await?.pop() {
            Some(t) => break t,
            None => continue,
        }
    };
    ensure!(t.task_id == id.0 && t.attempt == 2, "{t:?}");
    w.results(vec![success(&t, b"1")]).await?;
    let done = client.wait(id, Duration::from_secs(30)).await?;
    ensure!(done.state == TaskState::Succeeded, "{done:?}");

    let d = client.describe_task(id).await?;
    let [first, second] = d.attempts.as_slice() else {
        bail!("two attempts: {:?}", d.attempts)
    };
    ensure!(first.attempt == 1 && second.attempt == 2);
    ensure!(
        first.holder == "flaky-worker" && second.holder == "flaky-worker",
        "{d:?}"
    );
    ensure!(first.end == Some(AttemptEnd::Failed), "{first:?}");
    ensure!(second.end == Some(AttemptEnd::Succeeded), "{second:?}");
    ensure!(first.ended_unix_ms <= Some(second.granted_unix_ms), "{d:?}");
    ensure!(
        second.granted_unix_ms <= second.ended_unix_ms.unwrap_or(0),
        "{d:?}"
    );
    Ok(())
}
