//! The built-in `http` task on a real node, against an HTTP server on loopback: a listed host
//! is called and its answer is the result; a 4xx is dead; a host off `--http-allow` is refused
//! at submit with a message that says so.

use std::time::Duration;

use anyhow::Result;
use anyhow::ensure;
use flotilla_client::ClientError;
use flotilla_client::TaskState;
use flotilla_tests::NodeProcess;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use flotilla_tests::connect;
use flotilla_tests::ready;

/// Answers `GET /ok` with 200 and a JSON body, anything else with 404.
async fn server() -> Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).into_owned();
                let (status, body) = if head.starts_with("GET /ok ") {
                    ("200 OK", r#"{"pong":1}"#)
                } else {
                    ("404 Not Found", "nope")
                };
                let reply = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(reply.as_bytes()).await;
            });
        }
    });
    Ok(addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_task_calls_listed_hosts_only() -> Result<()> {
    let addr = server().await?;
    let dir = tempfile::tempdir()?;
    let allow = addr.to_string();
    let node = NodeProcess::start(&dir.path().join("n1"), &["--http-allow", &allow])?;
    let client = connect(&node).await?;
    ready(&client, &node).await?;
    let http = |url: String| {
        client
            .task("http")
            .args(&serde_json::json!({ "url": url, "timeout_ms": 5_000 }))
    };

    let ok = client.submit(http(format!("http://{addr}/ok"))?).await?;
    let missing = client
        .submit(http(format!("http://{addr}/missing"))?.max_retries(3))
        .await?;
    let mut done = Vec::new();
    for _ in 0..300 {
        done = vec![client.get(ok).await?, client.get(missing).await?];
        if done.iter().all(|t| t.state.is_final()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(done[0].state == TaskState::Succeeded, "{:?}", done[0]);
    let result: serde_json::Value = serde_json::from_slice(&done[0].result)?;
    ensure!(
        result["status"] == 200 && result["body"] == r#"{"pong":1}"#,
        "{result}"
    );
    ensure!(
        done[1].state == TaskState::Dead && done[1].attempt == 1,
        "4xx is not retried: {:?}",
        done[1]
    );

    // Another port of the same address, and another host: refused at submit.
    for url in [
        format!("http://127.0.0.1:{}/ok", addr.port().wrapping_add(1)),
        "http://169.254.169.254/latest/meta-data".to_string(),
    ] {
        let err = client.submit(http(url.clone())?).await.unwrap_err();
        ensure!(
            matches!(&err, ClientError::InvalidArgument(m) if m.contains("not allowed by --http-allow")),
            "{url}: {err}"
        );
    }
    Ok(())
}
