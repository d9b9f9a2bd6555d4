//! Items 4 and 6 of issue 14: tokens with roles, made and revoked from the CLI and stored
//! hashed; joining needs a join token; removing a member needs admin. A caller without rights
//! gets UNAUTHENTICATED or PERMISSION_DENIED and nothing changes.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use anyhow::ensure;
use flotilla_client::ClientError;
use flotilla_client::TokenRole;
use flotilla_tests::NodeProcess;
use flotilla_tests::binary;
use flotilla_tests::free_port;
use flotilla_tests::run_node;

use crate::client;
use crate::token_node;
use crate::wait_status;

fn unauthenticated<T: std::fmt::Debug>(r: &flotilla_client::Result<T>) -> bool {
    matches!(r, Err(ClientError::Unauthenticated(_)))
}

fn denied<T: std::fmt::Debug>(r: &flotilla_client::Result<T>) -> bool {
    matches!(r, Err(ClientError::PermissionDenied(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_need_a_token_with_the_right_role_and_nothing_changes_without_one() -> Result<()> {
    let _serial = crate::SERIAL.lock().await;
    let dir = tempfile::tempdir()?;
    let (node, token) = token_node(&dir.path().join("n1"), &["--workers", "0"]).await?;
    let mode = std::fs::metadata(node.data_dir.join("admin.token"))?
        .permissions()
        .mode();
    ensure!(mode & 0o777 == 0o600, "admin.token has mode {mode:o}");
    let admin = client(&node.addr, Some(&token)).await?;
    let (_, submit_token) = admin.create_token(TokenRole::Submit, "app", None).await?;
    let (_, join_token) = admin.create_token(TokenRole::Join, "node 2", None).await?;

    let anonymous = client(&node.addr, None).await?;
    let r = anonymous.submit(anonymous.task("noop")).await;
    ensure!(unauthenticated(&r), "{r:?}");
    let stranger = client(&node.addr, Some("flt_not_a_token_0123456789abcdef")).await?;
    let r = stranger.submit(stranger.task("noop")).await;
    ensure!(unauthenticated(&r), "{r:?}");
    let joiner = client(&node.addr, Some(&join_token)).await?;
    let r = joiner.submit(joiner.task("noop")).await;
    ensure!(denied(&r), "{r:?}");

    let app = client(&node.addr, Some(&submit_token)).await?;
    app.submit(app.task("noop")).await?;
    let r = app.remove_node(1).await;
    ensure!(denied(&r), "{r:?}");
    let r = app.list_tokens().await;
    ensure!(denied(&r), "{r:?}");
    if let Err(e) = &r {
        ensure!(
            !e.to_string().contains(&submit_token),
            "the refusal quotes the token: {e}"
        );
    }
    // Only the submit with the right role reached the log.
    let pending: u64 = admin.stats().await?.iter().map(|q| q.pending).sum();
    ensure!(pending == 1, "{pending} tasks pending");
    ensure!(admin.status().await?.members.len() == 1, "membership changed");

    // Revoked: refused from then on.
    let app_id = admin
        .list_tokens()
        .await?
        .iter()
        .find(|t| t.label == "app")
        .map(|t| t.id);
    ensure!(
        admin.revoke_token(app_id.unwrap_or_default()).await?,
        "not revoked"
    );
    let r = app.submit(app.task("noop")).await;
    ensure!(unauthenticated(&r), "{r:?}");

    // The CLI: create (the secret on stdout), list (no secret), revoke.
    let cli = |args: &[&str]| -> Result<(bool, String, String)> {
        let out = Command::new(binary("flotilla")?)
            .args(["--nodes", &node.addr, "--token", &token])
            .args(args)
            .output()?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    };
    let (ok, out, err) = cli(&["token", "create", "--role", "worker", "--ttl", "1h", "--json"])?;
    ensure!(ok, "token create: {err}");
    let created: serde_json::Value = serde_json::from_str(out.trim())?;
    let secret = created["token"].as_str().unwrap_or_default().to_string();
    ensure!(secret.starts_with("flt_"), "{out}");
    let (ok, out, err) = cli(&["token", "list"])?;
    ensure!(
        ok && out.contains("worker") && !out.contains(&secret),
        "{out}{err}"
    );
    let id = created["id"].to_string();
    let (ok, out, err) = cli(&["token", "revoke", &id])?;
    ensure!(ok && out.contains("revoked"), "{out}{err}");
    let (ok, _, err) = cli(&["token", "revoke", &id])?;
    ensure!(!ok && err.contains("no token"), "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_needs_a_join_token_and_removing_a_member_needs_admin() -> Result<()> {
    let _serial = crate::SERIAL.lock().await;
    let dir = tempfile::tempdir()?;
    let (n1, token) = token_node(&dir.path().join("n1"), &["--workers", "0"]).await?;
    let admin = client(&n1.addr, Some(&token)).await?;
    let (_, submit_token) = admin.create_token(TokenRole::Submit, "", None).await?;
    let (_, join_token) = admin
        .create_token(TokenRole::Join, "", Some(Duration::from_secs(600)))
        .await?;

    // Without a token, or with one of another role: refused at once, nothing stored.
    let data = dir.path().join("n2");
    let data_arg = data.to_string_lossy().to_string();
    let listen = format!("127.0.0.1:{}", free_port()?);
    for extra in [&[][..], &["--token", submit_token.as_str()]] {
        let mut args = vec!["--listen", &listen, "--data-dir", &data_arg, "--join", &n1.addr];
        args.extend_from_slice(extra);
        let (code, stderr) = run_node(&args)?;
        ensure!(code == Some(1), "exit {code:?}: {stderr}");
        ensure!(stderr.contains("join token"), "unclear refusal: {stderr}");
        ensure!(
            !stderr.contains(&submit_token),
            "the refusal quotes the token: {stderr}"
        );
        ensure!(!data.join("node.json").exists(), "an identity was stored");
    }
    ensure!(admin.status().await?.members.len() == 1, "a stranger was added");

    // With the join token: a voter, and the peer secret is in its data directory.
    let mut args = vec![
        "--workers",
        "0",
        "--require-token",
        "--join",
        &n1.addr,
        "--token",
        &join_token,
    ];
    args.extend(crate::TOLERANT_TIMING);
    let n2 = NodeProcess::start(&data, &args)?;
    let status = wait_status(&n2, &admin, |s| {
        s.members.len() == 2 && s.members.iter().all(|m| m.role != "learner")
    })
    .await?;
    ensure!(data.join("cluster.secret").exists(), "no peer secret stored");
    let n2_id = status.members.iter().map(|m| m.id).max().unwrap_or_default();

    // Removing it: nobody but an admin.
    let r = client(&n1.addr, None).await?.remove_node(n2_id).await;
    ensure!(unauthenticated(&r), "{r:?}");
    let r = client(&n1.addr, Some(&submit_token))
        .await?
        .remove_node(n2_id)
        .await;
    ensure!(denied(&r), "{r:?}");
    let r = client(&n1.addr, Some(&join_token))
        .await?
        .remove_node(n2_id)
        .await;
    ensure!(denied(&r), "{r:?}");
    ensure!(admin.status().await?.members.len() == 2, "membership changed");
    let members = admin.remove_node(n2_id).await?;
    ensure!(members == [status.node_id.min(n2_id)], "{members:?}");
    drop(n2);
    Ok(())
}
