//! Three nodes with mutual TLS form a cluster, replicate to every member, and serve TLS
//! clients: the Rust client, and the CLI with `--tls-ca` (and a client certificate). A
//! plaintext client gets nothing from them.

use std::time::Duration;

use anyhow::Result;
use anyhow::ensure;
use flotilla_client::Client;
use flotilla_client::RetryPolicy;
use flotilla_tests::binary;

use crate::certs;
use crate::node_certs;
use crate::path;
use crate::start_node;
use crate::tls_client;
use crate::tls_flags;
use crate::wait_status;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_with_mutual_tls_forms_replicates_and_serves_tls_clients() -> Result<()> {
    let _serial = crate::SERIAL.lock().await;
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    let ca = root.join("ca").join("ca.pem");
    let mut nodes = Vec::new();
    for i in 1..=3 {
        let certs = node_certs(root, "ca", "test", &format!("c{i}"))?;
        let mut extra = vec!["--workers", "2"];
        let first = nodes
            .first()
            .map(|n: &flotilla_tests::NodeProcess| n.addr.clone());
        if let Some(first) = &first {
            extra.extend(["--join", first.as_str()]);
        }
        nodes.push(start_node(
            &root.join(format!("n{i}")),
            &tls_flags(&certs),
            &extra,
        )?);
    }
    for node in &nodes {
        wait_status(node, &ca, |s| {
            s.members.len() == 3 && s.members.iter().all(|m| m.role != "learner") && s.leader_id.is_some()
        })
        .await?;
    }

    // Tasks through any node; every node applies them (the log reached each over mutual TLS).
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    let client = tls_client(&addrs, &ca, Duration::from_secs(30)).await?;
    let mut ids = Vec::new();
    for i in 0..50 {
        ids.push(
            client
                .submit(client.task("echo").args(&serde_json::json!({ "i": i }))?)
                .await?,
        );
    }
    for id in &ids {
        let done = client.wait(*id, Duration::from_secs(30)).await?;
        ensure!(done.state == flotilla_client::TaskState::Succeeded, "{done:?}");
    }
    let commit = client.status().await?.commit_index;
    for node in &nodes {
        wait_status(node, &ca, |s| s.applied_index >= commit).await?;
    }

    // The CLI with --tls-ca, then with a client certificate too.
    let client_dir = root.join("client");
    certs(&[
        "client",
        "--ca",
        &path(&root.join("ca")),
        "--name",
        "ops",
        "--out",
        &path(&client_dir),
    ])?;
    let nodes_arg = addrs.join(",");
    let ca_arg = path(&ca);
    let (cert_arg, key_arg) = (
        path(&client_dir.join("client.pem")),
        path(&client_dir.join("client.key")),
    );
    for extra in [
        vec![],
        vec!["--tls-cert", cert_arg.as_str(), "--tls-key", key_arg.as_str()],
    ] {
        let mut args = vec!["--nodes", &nodes_arg, "--tls-ca", &ca_arg];
        args.extend(extra);
        args.extend(["submit", "noop", "--count", "20", "--wait", "--json"]);
        let out = std::process::Command::new(binary("flotilla")?)
            .args(&args)
            .output()?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        ensure!(
            out.status.success(),
            "flotilla {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        ensure!(
            stdout.lines().filter(|l| l.contains("succeeded")).count() == 20,
            "{stdout}"
        );
    }

    // Plaintext gets nothing: neither the library nor the CLI without --tls-ca.
    let plain = Client::builder(addrs.clone())
        .retry_policy(RetryPolicy {
            max_elapsed: Duration::from_secs(1),
            ..RetryPolicy::default()
        })
        .build()
        .await?;
    let err = plain.status().await.unwrap_err();
    ensure!(!err.to_string().is_empty());
    let out = std::process::Command::new(binary("flotilla")?)
        .args(["--nodes", &nodes_arg, "--retry-s", "1", "status"])
        .output()?;
    ensure!(!out.status.success(), "a plaintext CLI got an answer");

    for node in &mut nodes {
        ensure!(node.terminate()? == Some(0), "unclean exit; log:\n{}", node.log());
    }
    Ok(())
}
