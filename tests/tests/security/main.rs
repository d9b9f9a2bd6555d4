//! Integration tests of issue 14 ("Trust") on real `node` processes: what a stranger who can
//! reach a node's port can no longer do, tokens with roles, joining with a join token, and the
//! secure-defaults rule. Files by priority: t10 strangers, t20 tokens, t30 defaults.
//!
//! A stranger is played by raw gRPC calls to `RaftService` built from the .proto alone, the
//! way the report tried them; the bincode bodies are written out by hand.

mod t10_strangers;
mod t20_tokens;
mod t30_defaults;

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use anyhow::Result;
use anyhow::bail;
use flotilla_client::Client;
use flotilla_client::ClusterStatus;
use flotilla_client::RetryPolicy;
use flotilla_proto::v1::RaftMessage;
use flotilla_proto::v1::raft_service_client::RaftServiceClient;
use flotilla_tests::NodeProcess;

/// The tests take turns: each runs node processes on a 2-core machine.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Raft timing tolerant of a loaded machine.
pub const TOLERANT_TIMING: [&str; 6] = [
    "--heartbeat-interval-ms",
    "100",
    "--election-timeout-ms-min",
    "500",
    "--election-timeout-ms-max",
    "1000",
];

/// A client of `addr`, with `token` if given.
pub async fn client(addr: &str, token: Option<&str>) -> Result<Client> {
    let policy = RetryPolicy {
        max_elapsed: Duration::from_secs(20),
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(300),
    };
    let mut builder = Client::builder([addr.to_string()]).retry_policy(policy);
    if let Some(token) = token {
        builder = builder.token(token)?;
    }
    Ok(builder.build().await?)
}

/// Poll until `ok` holds for the status `client` reads (bounded: 60 s).
pub async fn wait_status(
    node: &NodeProcess,
    client: &Client,
    ok: impl Fn(&ClusterStatus) -> bool,
) -> Result<ClusterStatus> {
    flotilla_tests::wait_for_status(node, client, ok).await
}

pub use flotilla_tests::admin_token;

/// A node with `--require-token` that leads its own cluster, and its admin token (usable:
/// the token is applied once a status call with it succeeds).
pub async fn token_node(dir: &Path, extra: &[&str]) -> Result<(NodeProcess, String)> {
    let mut args = vec!["--require-token"];
    args.extend_from_slice(extra);
    args.extend(TOLERANT_TIMING);
    let node = NodeProcess::start(dir, &args)?;
    let token = admin_token(dir).await?;
    let admin = client(&node.addr, Some(&token)).await?;
    wait_status(&node, &admin, |s| s.leader_id == Some(s.node_id)).await?;
    Ok((node, token))
}

/// The cluster id of a node's data directory (as if it had leaked).
pub fn cluster_id(data_dir: &Path) -> Result<String> {
    let text = std::fs::read_to_string(data_dir.join("node.json"))?;
    let json: serde_json::Value = serde_json::from_str(&text)?;
    json["cluster_id"]
        .as_str()
        .map(str::to_string)
        .context("no cluster_id in node.json")
}

/// One raw `RaftService` call with `body` and the given metadata.
pub async fn raft_call(
    addr: &str,
    method: &str,
    body: Vec<u8>,
    metadata: &[(&'static str, String)],
) -> Result<Result<RaftMessage, tonic::Status>> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut client = RaftServiceClient::new(channel);
    let mut request = tonic::Request::new(RaftMessage {
        data: body.into(),
        error: Default::default(),
    });
    for (key, value) in metadata {
        request.metadata_mut().insert(*key, value.parse()?);
    }
    request.set_timeout(Duration::from_secs(10));
    let reply = match method {
        "Admin" => client.admin(request).await,
        "Forward" => client.forward(request).await,
        "Vote" => client.vote(request).await,
        "AppendEntries" => client.append_entries(request).await,
        "TransferLeader" => client.transfer_leader(request).await,
        other => bail!("no method {other}"),
    };
    Ok(reply.map(tonic::Response::into_inner))
}

/// bincode (standard config) of a `u64` varint.
pub fn varint(v: u64) -> Vec<u8> {
    match v {
        0..=250 => vec![v as u8],
        251..=0xFFFF => [&[251u8][..], &(v as u16).to_le_bytes()].concat(),
        0x1_0000..=0xFFFF_FFFF => [&[252u8][..], &(v as u32).to_le_bytes()].concat(),
        _ => [&[253u8][..], &v.to_le_bytes()].concat(),
    }
}

/// A `VoteRequest` as bincode: `vote { leader_id { term, voted_for: Some(candidate) },
/// committed: false }, last_log_id: None, leadership_transfer`.
pub fn vote_request(term: u64, candidate: u64, leadership_transfer: bool) -> Vec<u8> {
    let mut bytes = varint(term);
    bytes.push(1);
    bytes.extend(varint(candidate));
    bytes.extend([0, 0, u8::from(leadership_transfer)]);
    bytes
}
