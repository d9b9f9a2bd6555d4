//! Item 7 of issue 14: `node` alone on loopback needs no configuration; a node other machines
//! can reach refuses to start without TLS unless `--insecure` says so.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use anyhow::Result;
use anyhow::ensure;
use flotilla_tests::NodeProcess;
use flotilla_tests::run_node;

use crate::client;
use crate::wait_status;

#[test]
fn a_node_other_machines_can_reach_needs_tls_or_insecure() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("n");
    let data_arg = data.to_string_lossy().to_string();
    // 192.0.2.1 (TEST-NET-1) is not this machine's: nothing is ever sent there.
    let exposed = ["--listen", "192.0.2.1:7000", "--data-dir", &data_arg];
    let (code, stderr) = run_node(&exposed)?;
    ensure!(code == Some(2), "exit {code:?}: {stderr}");
    ensure!(
        stderr.contains("--insecure") && stderr.contains("--tls-cert") && stderr.contains("no TLS"),
        "unclear refusal: {stderr}"
    );
    ensure!(!data.exists(), "a refused node touched its data directory");
    // --insecure gets past the rule (and then fails to bind an address it does not have).
    let mut insecure = exposed.to_vec();
    insecure.push("--insecure");
    let (code, stderr) = run_node(&insecure)?;
    ensure!(
        code == Some(1) && stderr.contains("cannot listen"),
        "exit {code:?}: {stderr}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loopback_node_needs_no_configuration_and_keeps_its_secrets_private() -> Result<()> {
    let _serial = crate::SERIAL.lock().await;
    let dir = tempfile::tempdir()?;
    let node = NodeProcess::start(&dir.path().join("n1"), &[])?;
    let anonymous = client(&node.addr, None).await?;
    wait_status(&node, &anonymous, |s| s.leader_id == Some(s.node_id)).await?;
    let id = anonymous.submit(anonymous.task("noop")).await?;
    anonymous.wait(id, Duration::from_secs(30)).await?;
    let token = crate::admin_token(&node.data_dir).await?;
    for file in ["cluster.secret", "admin.token"] {
        let mode = std::fs::metadata(node.data_dir.join(file))?.permissions().mode();
        ensure!(mode & 0o777 == 0o600, "{file} has mode {mode:o}");
    }
    let log = node.log();
    ensure!(
        log.contains("local clients need no token"),
        "the rule was not said:\n{log}"
    );
    ensure!(!log.contains(&token), "the admin token is in the log");
    // A token that is presented is still checked on an open node.
    let wrong = client(&node.addr, Some("flt_wrong_0123456789abcdef0123456789")).await?;
    ensure!(wrong.status().await.is_err(), "a wrong token was accepted");
    Ok(())
}
