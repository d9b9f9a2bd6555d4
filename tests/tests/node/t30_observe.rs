//! Metrics and health of a real node: `/metrics` counts what was submitted and run, `/healthz`
//! and gRPC health say SERVING once the node leads, reflection lists the health service, and
//! a node that asks tokens of local clients asks one for `/metrics` too.

use std::time::Duration;

use anyhow::Result;
use anyhow::ensure;
use flotilla_client::TaskState;
use flotilla_tests::NodeProcess;
use flotilla_tests::connect;
use flotilla_tests::free_port;
use flotilla_tests::http_get;
use flotilla_tests::ready;
use flotilla_tests::sample;
use flotilla_tests::submit_noops;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// gRPC health of `service` on the node at `addr`.
pub async fn grpc_health(addr: &str, service: &str) -> Result<Result<ServingStatus, tonic::Status>> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut client = HealthClient::new(channel);
    let request = HealthCheckRequest {
        service: service.into(),
    };
    Ok(client
        .check(request)
        .await
        .map(|r| ServingStatus::try_from(r.into_inner().status).unwrap_or(ServingStatus::Unknown)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_submits_and_runs_and_health_says_serving() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let http = format!("127.0.0.1:{}", free_port()?);
    let node = NodeProcess::start(
        &dir.path().join("n1"),
        &["--http-listen", &http, "--workers", "2"],
    )?;
    let client = connect(&node).await?;
    ready(&client, &node).await?;

    let ids = submit_noops(&client, 25).await?;
    let done = client.wait_all(ids, Duration::from_secs(60)).await?;
    ensure!(done.iter().all(|t| t.state == TaskState::Succeeded), "{done:?}");

    // The replica applies the results before the waiters hear of them: the counts are there.
    let (status, text) = http_get(&http, "/metrics", None).await?;
    ensure!(status == 200, "{status}: {text}");
    let get = |series: &str| sample(&text, series);
    for (series, value) in [
        ("flotilla_tasks_submitted_total{queue=\"default\"}", 25.0),
        (
            "flotilla_tasks_finished_total{queue=\"default\",outcome=\"succeeded\"}",
            25.0,
        ),
        ("flotilla_tasks{queue=\"default\",state=\"succeeded\"}", 25.0),
        ("flotilla_tasks{queue=\"default\",state=\"pending\"}", 0.0),
        ("flotilla_task_run_seconds_count{queue=\"default\"}", 25.0),
        ("flotilla_raft_is_leader", 1.0),
    ] {
        ensure!(get(series) == Some(value), "{series} is not {value}: {text}");
    }
    // A wait is observed per lease: a task leased ahead and handed back unstarted (the pool's
    // stall or short-lease rule, under load) waits again before its next lease.
    let released =
        get("flotilla_tasks_finished_total{queue=\"default\",outcome=\"released\"}").unwrap_or(0.0);
    let waits = "flotilla_task_wait_seconds_count{queue=\"default\"}";
    ensure!(
        get(waits) == Some(25.0 + released),
        "{waits} is not 25 + {released} hand-backs: {text}"
    );
    for (series, at_least) in [
        ("flotilla_raft_term", 1.0),
        ("flotilla_log_flush_seconds_count", 3.0),
        ("flotilla_commit_seconds_count", 2.0),
        ("flotilla_entry_commands_count", 2.0),
        ("flotilla_raft_leader_changes_total", 0.0),
    ] {
        ensure!(
            get(series).is_some_and(|v| v >= at_least),
            "{series} below {at_least}: {text}"
        );
    }
    let applied = get("flotilla_raft_applied_index").unwrap_or(0.0);
    ensure!(
        applied >= 3.0 && get("flotilla_raft_commit_index") >= Some(applied),
        "{text}"
    );

    let (status, body) = http_get(&http, "/healthz", None).await?;
    ensure!(status == 200 && body.contains("\"SERVING\""), "{status}: {body}");
    let (status, _) = http_get(&http, "/readyz", None).await?;
    ensure!(status == 200);
    let (status, _) = http_get(&http, "/nothing", None).await?;
    ensure!(status == 404);

    for service in ["", "flotilla.v1.QueueService"] {
        let health = grpc_health(&node.addr, service).await?;
        ensure!(
            matches!(health, Ok(ServingStatus::Serving)),
            "{service:?}: {health:?}"
        );
    }
    let unknown = grpc_health(&node.addr, "no.such.Service").await?;
    ensure!(
        matches!(&unknown, Err(s) if s.code() == tonic::Code::NotFound),
        "{unknown:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_require_token_metrics_need_a_token_and_health_does_not() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("n1");
    let http = format!("127.0.0.1:{}", free_port()?);
    let _node = NodeProcess::start(&data, &["--http-listen", &http, "--require-token"])?;
    let token = flotilla_tests::admin_token(&data).await?;
    let token = token.as_str();

    let (status, body) = http_get(&http, "/metrics", None).await?;
    ensure!(status == 401, "{status}: {body}");
    let (status, body) = http_get(&http, "/metrics", Some("flt_0123456789abcdef0123456789abcdef")).await?;
    ensure!(status == 401, "{status}: {body}");
    // The token is usable once its entry is applied.
    let mut last = (0, String::new());
    for _ in 0..100 {
        last = http_get(&http, "/metrics", Some(token)).await?;
        if last.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(last.0 == 200 && last.1.contains("flotilla_raft_term"), "{last:?}");
    let (status, body) = http_get(&http, "/healthz", None).await?;
    ensure!(status == 200 || status == 503, "{status}: {body}");
    Ok(())
}

#[test]
fn an_http_port_off_loopback_needs_insecure() -> Result<()> {
    let (code, stderr) = flotilla_tests::run_node(&["--http-listen", "0.0.0.0:9100"])?;
    ensure!(code == Some(2), "{code:?}: {stderr}");
    ensure!(
        stderr.contains("--http-listen") && stderr.contains("--insecure"),
        "{stderr}"
    );
    Ok(())
}
