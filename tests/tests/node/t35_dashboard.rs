//! The web dashboard of a real node, in a real browser: a webhook task dies (its server
//! answers 404), the page shows it dead, the server is healed, the retry button is clicked and
//! the page shows the task succeeded. Also the dashboard's JSON API refuses bad input and
//! unforgeable-action rules with clear 4xx, and the page without JavaScript lists the dead task.
//!
//! Screenshots: with `FLOTILLA_SCREENSHOTS=DIR` the test saves `dashboard-*.png` there (the
//! ones in docs/img were taken so).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use anyhow::Result;
use anyhow::ensure;
use flotilla_client::TaskState;
use flotilla_tests::NodeProcess;
use flotilla_tests::connect;
use flotilla_tests::free_port;
use flotilla_tests::http_get;
use flotilla_tests::ready;
use flotilla_tests::submit_noops;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::webdriver;

/// A webhook that answers 404 (the task is dead at once) until `healthy`, then 200.
async fn webhook(healthy: Arc<AtomicBool>) -> Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let healthy = healthy.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let (status, body) = if healthy.load(Ordering::SeqCst) {
                    ("200 OK", r#"{"sent":true}"#)
                } else {
                    ("404 Not Found", "no such hook yet")
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

/// One raw HTTP/1.1 request (`method path`, extra header lines) to the node's HTTP port:
/// `(status, body)`.
async fn request(addr: &str, method: &str, path: &str, headers: &str) -> Result<(u16, String)> {
    let exchange = async {
        let mut sock = tokio::net::TcpStream::connect(addr).await?;
        let host = if headers.to_ascii_lowercase().contains("host:") {
            String::new()
        } else {
            format!("host: {addr}\r\n")
        };
        let req = format!(
            "{method} {path} HTTP/1.1\r\n{host}{headers}content-length: 0\r\nconnection: close\r\n\r\n"
        );
        sock.write_all(req.as_bytes()).await?;
        let mut reply = Vec::new();
        sock.read_to_end(&mut reply).await?;
        anyhow::Ok(String::from_utf8_lossy(&reply).into_owned())
    };
    let reply = tokio::time::timeout(Duration::from_secs(10), exchange).await??;
    let (head, body) = reply.split_once("\r\n\r\n").context("no head")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status")?;
    Ok((status, body.to_string()))
}

fn save(name: &str, png: &[u8]) -> Result<()> {
    if let Ok(dir) = std::env::var("FLOTILLA_SCREENSHOTS") {
        std::fs::write(std::path::Path::new(&dir).join(name), png)?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_retries_a_dead_task_in_a_real_browser() -> Result<()> {
    webdriver::ensure_browser()?;
    let healthy = Arc::new(AtomicBool::new(false));
    let hook = webhook(healthy.clone()).await?;
    let dir = tempfile::tempdir()?;
    let http = format!("127.0.0.1:{}", free_port()?);
    let allow = hook.to_string();
    let node = NodeProcess::start(
        &dir.path().join("n1"),
        &[
            "--http-listen",
            &http,
            "--http-allow",
            &allow,
            "--workers",
            "2",
            "--queues",
            "default,webhooks",
        ],
    )?;
    let client = connect(&node).await?;
    ready(&client, &node).await?;

    // Some history for the page, then the task that dies.
    let noops = submit_noops(&client, 12).await?;
    client.wait_all(noops, Duration::from_secs(60)).await?;
    let task = client
        .task("http")
        .args(&serde_json::json!({ "url": format!("http://{hook}/hook"), "timeout_ms": 5_000 }))?
        .queue("webhooks")
        .max_retries(0);
    let task_id = client.submit(task).await?;
    let id = task_id.0;
    let dead = client.wait(task_id, Duration::from_secs(60)).await?;
    ensure!(dead.state == TaskState::Dead, "{dead:?}");

    Box::pin(api_checks(&http, id)).await?;
    ensure!(
        client.get(task_id).await?.state == TaskState::Dead,
        "nothing above retried it"
    );
    Box::pin(browser(&http, id, &healthy)).await?;
    ensure!(client.get(task_id).await?.state == TaskState::Succeeded);
    Ok(())
}

/// The API: the dead task is listed; bad input is a clear 4xx; actions need the header.
async fn api_checks(http: &str, id: u64) -> Result<()> {
    let (status, body) = http_get(http, "/api/tasks?state=dead", None).await?;
    ensure!(
        status == 200 && body.contains(&format!("\"id\":{id}")),
        "{status}: {body}"
    );
    for (path, want) in [
        ("/api/tasks?limit=100000", 400),
        ("/api/tasks?state=zombie", 400),
        ("/api/tasks?queue=no%20spaces", 400),
        ("/api/tasks/abc", 400),
        ("/api/tasks/987654321", 404),
        ("/api/nothing", 404),
    ] {
        let (status, body) = http_get(http, path, None).await?;
        ensure!(status == want, "{path}: {status} {body}");
        ensure!(
            want == 404 && path == "/api/nothing" || body.contains("\"error\""),
            "{path}: {body}"
        );
    }
    let (status, body) = http_get(http, "/api/workers", None).await?;
    ensure!(
        status == 200 && body.contains("\"kind\":\"pool\"") && body.contains("webhooks"),
        "{status}: {body}"
    );
    let retry = format!("/api/tasks/{id}/retry");
    let (status, body) = request(http, "POST", &retry, "").await?;
    ensure!(
        status == 403 && body.contains("x-flotilla-dashboard"),
        "{status}: {body}"
    );
    let (status, _) = request(http, "GET", &retry, "x-flotilla-dashboard: 1\r\n").await?;
    ensure!(status == 405, "a GET retries nothing: {status}");
    let (status, body) = request(http, "GET", "/api/queues", "host: evil.example:80\r\n").await?;
    ensure!(status == 403, "DNS rebinding: {status} {body}");
    let (status, body) = request(
        http,
        "POST",
        "/api/queues/no%20spaces/pause",
        "x-flotilla-dashboard: 1\r\n",
    )
    .await?;
    ensure!(status == 400, "{status}: {body}");

    // Without JavaScript: the page itself lists the dead task.
    let (status, page) = http_get(http, "/", None).await?;
    ensure!(status == 200 && page.contains("<noscript>"), "{status}");
    ensure!(page.contains(&format!("<td>{id}</td>")), "{page}");
    Ok(())
}

/// The browser: the task shows dead, the retry button makes it succeed (its webhook healed).
async fn browser(http: &str, id: u64, healthy: &AtomicBool) -> Result<()> {
    // The browser.
    let driver = webdriver::Driver::start(free_port()?).await?;
    let session = driver.session(1280, 1500).await?;
    session.goto(&format!("http://{http}/")).await?;
    let state = format!("#tasks tr[data-id=\"{id}\"] td.state");
    let wait = Duration::from_secs(30);
    session.wait_text(&state, wait, |t| t == "dead").await?;
    session
        .wait_text("#cluster-summary", wait, |t| t.contains("leader"))
        .await?;
    save("dashboard-dead.png", &session.screenshot().await?)?;

    healthy.store(true, Ordering::SeqCst);
    session
        .click_css(&format!("#tasks button.retry[data-id=\"{id}\"]"))
        .await?;
    session.wait_text(&state, wait, |t| t == "succeeded").await?;
    let attempt = format!("#tasks tr[data-id=\"{id}\"] td.attempt");
    session.wait_text(&attempt, wait, |t| t == "2").await?;

    // Its detail, after a click on its id.
    session
        .click_css(&format!("#tasks tr[data-id=\"{id}\"] a.id"))
        .await?;
    session
        .wait_text("#detail-fields", wait, |t| t.contains("sent"))
        .await?;
    save("dashboard-detail.png", &session.screenshot().await?)?;

    // Pause and resume the queue with its button.
    session
        .click_css("#queues button.pause[data-queue=\"webhooks\"]")
        .await?;
    session
        .wait_text("#queues button[data-queue=\"webhooks\"]", wait, |t| t == "resume")
        .await?;
    session
        .click_css("#queues button.resume[data-queue=\"webhooks\"]")
        .await?;
    session
        .wait_text("#queues button[data-queue=\"webhooks\"]", wait, |t| t == "pause")
        .await?;
    session.close().await?;
    Ok(())
}

/// With `--require-token` the dashboard asks a token of every route, and `--metrics-public`
/// opens `/metrics` only; the page without a token says how to get in and shows no data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_require_token_the_dashboard_needs_a_token_even_with_metrics_public() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("n1");
    let http = format!("127.0.0.1:{}", free_port()?);
    let _node = NodeProcess::start(
        &data,
        &["--http-listen", &http, "--require-token", "--metrics-public"],
    )?;
    let token = flotilla_tests::admin_token(&data).await?;
    let token = token.as_str();
    let (status, body) = http_get(&http, "/metrics", None).await?;
    ensure!(status == 200, "--metrics-public opens /metrics: {status} {body}");
    for path in [
        "/api/queues",
        "/api/tasks",
        "/api/cluster",
        "/api/workers",
        "/api/tasks/1",
    ] {
        let (status, body) = http_get(&http, path, None).await?;
        ensure!(
            status == 401 && body.contains("\"error\""),
            "{path}: {status} {body}"
        );
    }
    let (status, body) = request(
        &http,
        "POST",
        "/api/queues/default/pause",
        "x-flotilla-dashboard: 1\r\n",
    )
    .await?;
    ensure!(status == 401, "{status}: {body}");
    let (status, page) = http_get(&http, "/", None).await?;
    ensure!(
        status == 200 && page.contains("asks a token") && !page.contains("<h2>Queues</h2><table>"),
        "{page}"
    );
    // The token is usable once its entry is applied.
    let mut last = (0, String::new());
    for _ in 0..100 {
        last = http_get(&http, "/api/queues", Some(token)).await?;
        if last.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(last.0 == 200 && last.1.contains("\"queues\""), "{last:?}");
    let auth = format!("authorization: Bearer {token}\r\nx-flotilla-dashboard: 1\r\n");
    let (status, body) = request(&http, "POST", "/api/queues/default/pause", &auth).await?;
    ensure!(
        status == 200 && body.contains("\"paused\":true"),
        "{status}: {body}"
    );
    Ok(())
}
