//! Health follows the quorum: in a two-node cluster both nodes serve; with one of them killed,
//! the other has no leader backed by a quorum and says NOT_SERVING (`/healthz` 503, gRPC
//! health), and serves again once its peer is back.

use std::time::Duration;

use anyhow::Result;
use anyhow::bail;
use flotilla_tests::NodeProcess;
use flotilla_tests::free_port;
use flotilla_tests::http_get;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::TOLERANT_TIMING;
use crate::wait_status;

async fn grpc_status(addr: &str) -> Result<ServingStatus> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let reply = HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await?
        .into_inner();
    Ok(ServingStatus::try_from(reply.status)?)
}

/// Poll `/healthz` and gRPC health of a node until both say `serving` (bounded: 60 s).
async fn until_health(node: &NodeProcess, http: &str, serving: bool) -> Result<()> {
    let (want_code, want_status) = if serving {
        (200, ServingStatus::Serving)
    } else {
        (503, ServingStatus::NotServing)
    };
    let mut last = None;
    for _ in 0..600 {
        let code = http_get(http, "/healthz", None).await.map(|(c, _)| c).ok();
        let status = grpc_status(&node.addr).await.ok();
        if code == Some(want_code) && status == Some(want_status) {
            return Ok(());
        }
        last = Some((code, status));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "node {} never said serving={serving}: last {last:?}; log:\n{}",
        node.addr,
        node.log()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_a_quorum_behind_its_leader_is_not_serving() -> Result<()> {
    let _serial = crate::SERIAL.lock().await;
    let dir = tempfile::tempdir()?;
    let http1 = format!("127.0.0.1:{}", free_port()?);
    let http2 = format!("127.0.0.1:{}", free_port()?);
    let mut args1 = vec!["--http-listen", http1.as_str()];
    args1.extend(TOLERANT_TIMING);
    let n1 = NodeProcess::start(&dir.path().join("n1"), &args1)?;
    let mut args2 = vec!["--http-listen", http2.as_str(), "--join", n1.addr.as_str()];
    args2.extend(TOLERANT_TIMING);
    let mut n2 = NodeProcess::start(&dir.path().join("n2"), &args2)?;
    for node in [&n1, &n2] {
        wait_status(node, |s| {
            s.members.len() == 2 && s.members.iter().all(|m| m.role != "learner") && s.leader_id.is_some()
        })
        .await?;
    }
    until_health(&n1, &http1, true).await?;
    until_health(&n2, &http2, true).await?;

    n2.kill9()?;
    until_health(&n1, &http1, false).await?;

    n2.restart()?;
    until_health(&n1, &http1, true).await?;
    until_health(&n2, &http2, true).await?;
    Ok(())
}
