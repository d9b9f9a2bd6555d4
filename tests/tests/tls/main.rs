//! Integration tests of TLS on loopback: nodes started with certificates that `flotilla certs`
//! made for the test. A cluster with mutual TLS forms, replicates and serves TLS clients (the
//! library and the CLI); plaintext, another CA and another cluster are refused. Files by
//! priority: t10 basic, t20 refusals.

mod t10_mutual_tls;
mod t20_refused;

use std::path::Path;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use anyhow::ensure;
use flotilla_client::Client;
use flotilla_client::ClientTls;
use flotilla_client::ClusterStatus;
use flotilla_client::RetryPolicy;
use flotilla_tests::NodeProcess;
use flotilla_tests::binary;

/// The tests each run node processes; on a 2-core machine they take turns.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Raft timing tolerant of a loaded machine (as in the cluster tests).
const TOLERANT_TIMING: [&str; 6] = [
    "--heartbeat-interval-ms",
    "100",
    "--election-timeout-ms-min",
    "500",
    "--election-timeout-ms-max",
    "1000",
];

/// Run `flotilla certs ARGS` (the quick start, as an operator would).
pub fn certs(args: &[&str]) -> Result<()> {
    let out = Command::new(binary("flotilla")?)
        .arg("certs")
        .args(args)
        .output()?;
    ensure!(
        out.status.success(),
        "flotilla certs {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// A CA in `dir/<ca>` and, under it, a certificate for a node of `cluster` in `dir/<out>`
/// (valid for localhost and 127.0.0.1).
pub fn node_certs(dir: &Path, ca: &str, cluster: &str, out: &str) -> Result<PathBuf> {
    let ca_dir = dir.join(ca);
    if !ca_dir.join("ca.pem").exists() {
        certs(&["ca", "--out", &path(&ca_dir)])?;
    }
    let out = dir.join(out);
    certs(&[
        "node",
        "--ca",
        &path(&ca_dir),
        "--cluster",
        cluster,
        "--name",
        "localhost,127.0.0.1",
        "--out",
        &path(&out),
    ])?;
    Ok(out)
}

pub fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The node flags of the certificates in `certs` (made by [`node_certs`]).
pub fn tls_flags(certs: &Path) -> Vec<String> {
    let file = |name: &str| path(&certs.join(name));
    vec![
        "--tls-cert".into(),
        file("node.pem"),
        "--tls-key".into(),
        file("node.key"),
        "--tls-ca".into(),
        file("ca.pem"),
    ]
}

/// Start a node with `tls` flags, `extra` flags and tolerant timing.
pub fn start_node(data: &Path, tls: &[String], extra: &[&str]) -> Result<NodeProcess> {
    let mut args: Vec<&str> = tls.iter().map(String::as_str).collect();
    args.extend_from_slice(extra);
    args.extend_from_slice(&TOLERANT_TIMING);
    NodeProcess::start(data, &args)
}

/// A TLS client of `addrs` trusting `ca`, retrying for `patience`.
pub async fn tls_client(addrs: &[String], ca: &Path, patience: Duration) -> Result<Client> {
    let policy = RetryPolicy {
        max_elapsed: patience,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(500),
    };
    Ok(Client::builder(addrs.to_vec())
        .retry_policy(policy)
        .tls(ClientTls::load(ca, None)?)
        .build()
        .await?)
}

/// Poll `node`'s status over TLS until `ok` holds (bounded: 60 s).
pub async fn wait_status(
    node: &NodeProcess,
    ca: &Path,
    ok: impl Fn(&ClusterStatus) -> bool,
) -> Result<ClusterStatus> {
    let client = tls_client(std::slice::from_ref(&node.addr), ca, Duration::from_secs(2)).await?;
    flotilla_tests::wait_for_status(node, &client, ok).await
}
