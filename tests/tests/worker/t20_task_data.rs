//! What a task carries beyond its args, end to end over the worker stream: submit headers
//! reach the worker with every grant (and oversized ones are refused at submit).

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
