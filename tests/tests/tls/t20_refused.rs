//! What a TLS node refuses, at both ends of a connection: a node whose certificate another CA
//! signed, or the same CA for another cluster, cannot join (the joiner's dial refuses the
//! node's certificate); and a peer call reaches `RaftService` only with a node certificate of
//! the node's own cluster (the node refuses any other caller before decoding the call).

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use anyhow::ensure;
use flotilla_proto::v1::RaftMessage;
use flotilla_proto::v1::raft_service_client::RaftServiceClient;
use flotilla_tests::NodeProcess;
use flotilla_tests::free_port;
use flotilla_tests::run_node;
use flotilla_tls::ClientTls;
use tonic::Code;
use tonic::transport::Endpoint;

use crate::certs;
use crate::node_certs;
use crate::path;
use crate::start_node;
use crate::tls_flags;
use crate::wait_status;

/// A joiner with the certificates in `certs_dir` tries to join `node`; returns its stderr
/// after it gave up (it must).
fn join_refused(node: &NodeProcess, data: &Path, certs_dir: &Path) -> Result<String> {
    let listen = format!("127.0.0.1:{}", free_port()?);
    let mut args = vec!["--listen".to_string(), listen, "--data-dir".into(), path(data)];
    args.extend(["--join".to_string(), node.addr.clone()]);
    args.extend(tls_flags(certs_dir));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, stderr) = run_node(&args)?;
    ensure!(code == Some(1), "the joiner exited {code:?}: {stderr}");
    ensure!(stderr.contains("cannot join"), "stderr: {stderr}");
    Ok(stderr)
}

/// One `RaftService` call (a vote with garbage in it) to `addr` over TLS, showing `identity`'s
/// certificate (`dir/<cert>`, `dir/<key>`) if given, and the cluster's real peer secret
/// `secret`: as if it had leaked, so that only the certificate gate stands in the way.
async fn peer_call(
    addr: &str,
    ca: &Path,
    identity: Option<(&Path, &Path)>,
    secret: &str,
) -> Result<tonic::Status> {
    let endpoint = ClientTls::load(ca, identity)?.apply(Endpoint::from_shared(format!("https://{addr}"))?)?;
    let channel = endpoint.connect_timeout(Duration::from_secs(5)).connect().await?;
    let mut request = tonic::Request::new(RaftMessage {
        data: vec![1, 2, 3].into(),
        error: Default::default(),
    });
    request
        .metadata_mut()
        .insert("flotilla-peer-secret", secret.parse()?);
    let reply = RaftServiceClient::new(channel).vote(request).await;
    Ok(reply.expect_err("a vote from a stranger was answered"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_ca_or_another_cluster_is_refused_at_both_ends() -> Result<()> {
    let _serial = crate::SERIAL.lock().await;
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    let ca = root.join("ca").join("ca.pem");
    let ours = node_certs(root, "ca", "test", "c1")?;
    let node = start_node(&root.join("n1"), &tls_flags(&ours), &["--workers", "0"])?;
    wait_status(&node, &ca, |s| s.leader_id.is_some()).await?;

    // Dialling end: the joiner refuses the node's certificate.
    let stranger = node_certs(root, "ca2", "test", "x1")?;
    let stderr = join_refused(&node, &root.join("x"), &stranger)?;
    ensure!(stderr.contains("UnknownIssuer"), "stderr: {stderr}");
    let neighbour = node_certs(root, "ca", "other", "o1")?;
    let stderr = join_refused(&node, &root.join("o"), &neighbour)?;
    ensure!(
        stderr.contains("the peer's certificate is a node of cluster 'test', not a node of cluster 'other'"),
        "stderr: {stderr}"
    );

    // Accepting end: a caller that trusts the CA, even one holding the leaked peer secret,
    // still needs a node certificate of the cluster.
    let secret = std::fs::read_to_string(root.join("n1").join("cluster.secret"))?;
    let secret = secret.trim();
    let gate =
        |s: &tonic::Status| s.message().contains("node certificate") || s.message().contains("not a node");
    let none = peer_call(&node.addr, &ca, None, secret).await?;
    ensure!(none.code() == Code::Unauthenticated && gate(&none), "{none:?}");
    let other = peer_call(
        &node.addr,
        &ca,
        Some((&neighbour.join("node.pem"), &neighbour.join("node.key"))),
        secret,
    )
    .await?;
    ensure!(
        other.code() == Code::PermissionDenied && gate(&other),
        "{other:?}"
    );
    let client_dir = root.join("client");
    certs(&[
        "client",
        "--ca",
        &path(&root.join("ca")),
        "--out",
        &path(&client_dir),
    ])?;
    let client = peer_call(
        &node.addr,
        &ca,
        Some((&client_dir.join("client.pem"), &client_dir.join("client.key"))),
        secret,
    )
    .await?;
    ensure!(
        client.code() == Code::PermissionDenied && gate(&client),
        "{client:?}"
    );
    // A node of the cluster passes the gate (and is refused further on, for no cluster id).
    let member = node_certs(root, "ca", "test", "c2")?;
    let passed = peer_call(
        &node.addr,
        &ca,
        Some((&member.join("node.pem"), &member.join("node.key"))),
        secret,
    )
    .await?;
    ensure!(!gate(&passed), "{passed:?}");
    ensure!(
        node.log()
            .contains("the caller's certificate is not a node of this cluster"),
        "no warning in the node's log"
    );
    Ok(())
}
