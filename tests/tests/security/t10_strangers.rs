//! Items 1-4 and 8 of issue 14: a stranger who can reach a node's port, even one who learned
//! the cluster id, is refused before anything is decoded; a member's forged terms and
//! leadership transfers are refused and logged.

use std::time::Duration;

use anyhow::Result;
use anyhow::ensure;
use tonic::Code;

use crate::client;
use crate::cluster_id;
use crate::raft_call;
use crate::token_node;
use crate::vote_request;

/// `(forwarded: false, AdminRequest::AllocateNodeId { addr, .. })` whose `addr` claims 1 TiB.
fn the_11_byte_admin_request() -> Vec<u8> {
    let mut bytes = vec![0, 1, 253];
    bytes.extend_from_slice(&(1u64 << 40).to_le_bytes());
    bytes
}

/// `(forwarded: false, AdminRequest::ClusterId)`.
const ASK_CLUSTER_ID: [u8; 2] = [0, 0];

/// `[Command::PauseQueue { queue: "default", paused: true }]` (variant 10).
fn pause_default_queue() -> Vec<u8> {
    let mut bytes = vec![1, 10, 7];
    bytes.extend_from_slice(b"default");
    bytes.push(1);
    bytes
}

fn code(reply: &Result<flotilla_proto::v1::RaftMessage, tonic::Status>) -> Option<Code> {
    reply.as_ref().err().map(tonic::Status::code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_admin_call_is_refused_before_its_body_is_read() -> Result<()> {
    let _serial = crate::SERIAL.lock().await;
    let dir = tempfile::tempdir()?;
    let (node, token) = token_node(&dir.path().join("n1"), &[]).await?;
    let ours = cluster_id(&node.data_dir)?;
    // Three of these stopped a 3-node cluster.
    for _ in 0..3 {
        let reply = raft_call(&node.addr, "Admin", the_11_byte_admin_request(), &[]).await?;
        ensure!(code(&reply) == Some(Code::Unauthenticated), "{reply:?}");
    }
    // The cluster id is no longer told to anyone who asks, nor quoted to a wrong one.
    let reply = raft_call(&node.addr, "Admin", ASK_CLUSTER_ID.to_vec(), &[]).await?;
    ensure!(code(&reply) == Some(Code::Unauthenticated), "{reply:?}");
    ensure!(
        !format!("{reply:?}").contains(&ours),
        "the reply names the cluster: {reply:?}"
    );
    let wrong = [("flotilla-cluster-id", "a-guess".to_string())];
    let reply = raft_call(&node.addr, "Admin", ASK_CLUSTER_ID.to_vec(), &wrong).await?;
    ensure!(code(&reply) == Some(Code::PermissionDenied), "{reply:?}");
    ensure!(
        !format!("{reply:?}").contains(&ours),
        "the refusal names the cluster: {reply:?}"
    );
    // The node still serves.
    let admin = client(&node.addr, Some(&token)).await?;
    let id = admin.submit(admin.task("noop")).await?;
    admin.wait(id, Duration::from_secs(30)).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_with_the_cluster_id_cannot_forward_vote_or_transfer() -> Result<()> {
    let _serial = crate::SERIAL.lock().await;
    let dir = tempfile::tempdir()?;
    let (node, token) = token_node(&dir.path().join("n1"), &[]).await?;
    let admin = client(&node.addr, Some(&token)).await?;
    let term_before = admin.status().await?.term;
    let stamp = vec![
        ("flotilla-cluster-id", cluster_id(&node.data_dir)?),
        ("flotilla-node-id", "1".to_string()),
    ];
    let mut guessed = stamp.clone();
    guessed.push((
        "flotilla-peer-secret",
        "flt_guessed_secret_0123456789abcdef".into(),
    ));
    for metadata in [&stamp, &guessed] {
        let reply = raft_call(&node.addr, "Forward", pause_default_queue(), metadata).await?;
        ensure!(code(&reply) == Some(Code::Unauthenticated), "forward: {reply:?}");
        let forged = vote_request(u64::MAX - 1, 1, true);
        let reply = raft_call(&node.addr, "Vote", forged, metadata).await?;
        ensure!(code(&reply) == Some(Code::Unauthenticated), "vote: {reply:?}");
        let reply = raft_call(&node.addr, "TransferLeader", vec![0; 8], metadata).await?;
        ensure!(code(&reply) == Some(Code::Unauthenticated), "transfer: {reply:?}");
    }
    // Nothing changed: the queue is not paused, the term did not move, tasks run.
    let id = admin.submit(admin.task("noop")).await?;
    admin.wait(id, Duration::from_secs(30)).await?;
    ensure!(
        admin.stats().await?.iter().all(|q| !q.paused),
        "a queue was paused"
    );
    ensure!(admin.status().await?.term == term_before, "the term moved");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_terms_and_transfers_are_refused_and_logged_even_from_a_member() -> Result<()> {
    let _serial = crate::SERIAL.lock().await;
    let dir = tempfile::tempdir()?;
    let (node, token) = token_node(&dir.path().join("n1"), &[]).await?;
    let admin = client(&node.addr, Some(&token)).await?;
    let term = admin.status().await?.term;
    // Whoever holds the peer secret (a member gone wrong, or a stolen secret).
    let secret = std::fs::read_to_string(node.data_dir.join("cluster.secret"))?;
    let member = |id: u64| {
        vec![
            (
                "flotilla-cluster-id",
                cluster_id(&node.data_dir).unwrap_or_default(),
            ),
            ("flotilla-node-id", id.to_string()),
            ("flotilla-peer-secret", secret.trim().to_string()),
        ]
    };
    // The vote of issue 14: term u64::MAX - 1 was granted, and no election could succeed again.
    let reply = raft_call(
        &node.addr,
        "Vote",
        vote_request(u64::MAX - 1, 9, false),
        &member(9),
    )
    .await?;
    ensure!(code(&reply) == Some(Code::InvalidArgument), "{reply:?}");
    ensure!(
        node.log().contains("incredible term"),
        "the forged term was not logged:\n{}",
        node.log()
    );
    // A leadership transfer from a node that is not a voter, and a vote sent for another node.
    let reply = raft_call(&node.addr, "Vote", vote_request(term + 1, 9, true), &member(9)).await?;
    ensure!(code(&reply) == Some(Code::PermissionDenied), "{reply:?}");
    let reply = raft_call(&node.addr, "Vote", vote_request(term + 1, 1, true), &member(9)).await?;
    ensure!(code(&reply) == Some(Code::PermissionDenied), "{reply:?}");
    // The node kept its term and its leadership, and serves.
    let status = admin.status().await?;
    ensure!(
        status.term == term && status.leader_id == Some(status.node_id),
        "{status:?}"
    );
    let id = admin.submit(admin.task("noop")).await?;
    admin.wait(id, Duration::from_secs(30)).await?;
    Ok(())
}
