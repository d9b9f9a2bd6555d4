//! `sim bench --remote-workers N`: the end-to-end and latency phases run their tasks on Rust
//! remote workers over `WorkerService.Session` instead of the nodes' in-process pools. Each
//! worker answers every `Tasks` batch at once with one `Results` (a no-op task), so the figure
//! is the stream's cost against the in-process pool's.

use anyhow::Context;
use anyhow::Result;
use anyhow::bail;
use bytes::Bytes;
use flotilla_proto::v1 as pb;
use futures::StreamExt;
use pb::node_message::Msg as Out;
use pb::worker_message::Msg as In;
use pb::worker_service_client::WorkerServiceClient;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::warn;

/// The running workers; dropping them ends their sessions.
pub struct RemoteWorkers {
    sessions: Vec<JoinHandle<()>>,
}

impl Drop for RemoteWorkers {
    fn drop(&mut self) {
        for s in &self.sessions {
            s.abort();
        }
    }
}

/// Start `per_node` workers on each node of `addrs`, each holding up to `concurrency` tasks;
/// returns once every one was welcomed.
pub async fn start(addrs: &[String], per_node: usize, concurrency: u32) -> Result<RemoteWorkers> {
    let mut sessions = Vec::new();
    for (n, addr) in addrs.iter().enumerate() {
        for i in 0..per_node {
            let name = format!("bench-{n}-{i}");
            sessions.push(session(addr, name, concurrency).await?);
        }
    }
    Ok(RemoteWorkers { sessions })
}

async fn session(addr: &str, name: String, concurrency: u32) -> Result<JoinHandle<()>> {
    let mut client = WorkerServiceClient::connect(format!("http://{addr}"))
        .await
        .with_context(|| format!("connecting a remote worker to {addr}"))?
        .max_decoding_message_size(usize::MAX);
    let (tx, rx) = mpsc::unbounded_channel();
    let hello = pb::Hello {
        name,
        queues: Vec::new(),
        tasks: vec![pb::TaskDecl {
            name: "noop".into(),
            queue: String::new(),
        }],
        concurrency,
        resume: Vec::new(),
        protocol_version: 1,
        agent: "flotilla-sim bench".into(),
        // The node's --prefetch, held at the node: this worker answers each batch at once
        // and queues nothing.
        prefetch: None,
        queue_ahead: 0,
    };
    // Whether the stream still takes messages.
    let send = move |msg| tx.send(pb::WorkerMessage { msg: Some(msg) }).is_ok();
    if !send(In::Hello(hello)) {
        bail!("remote worker stream closed before its Hello");
    }
    let outbound = tokio_stream::wrappers::UnboundedReceiverStream::new(rx);
    let mut inbound = client.session(outbound).await?.into_inner();
    match inbound.next().await {
        Some(Ok(pb::NodeMessage {
            msg: Some(Out::Welcome(_)),
        })) => {}
        other => bail!("remote worker not welcomed: {other:?}"),
    }
    Ok(tokio::spawn(async move {
        let result = Bytes::from_static(b"null");
        while let Some(msg) = inbound.next().await {
            let msg = match msg {
                Ok(pb::NodeMessage { msg: Some(msg) }) => msg,
                Ok(_) => continue,
                Err(status) => {
                    warn!(%status, "remote worker stream ended");
                    return;
                }
            };
            let reply = match msg {
                Out::Tasks(tasks) => {
                    let results = tasks.tasks.iter().map(|t| pb::TaskResult {
                        task_id: t.task_id,
                        attempt: t.attempt,
                        outcome: Some(pb::task_result::Outcome::Success(result.clone())),
                    });
                    In::Results(pb::Results {
                        results: results.collect(),
                    })
                }
                Out::Ping(p) => In::Pong(pb::Pong { nonce: p.nonce }),
                _ => continue,
            };
            if !send(reply) {
                return;
            }
        }
    }))
}
