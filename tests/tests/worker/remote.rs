//! A remote worker at the protocol level, for tests: open a session, read what the node sends,
//! answer it (or not), and drop the stream.

use std::time::Duration;

use anyhow::Context;
use anyhow::Result;
use anyhow::bail;
use bytes::Bytes;
use flotilla_proto::v1 as pb;
use flotilla_proto::v1::node_message::Msg as Out;
use flotilla_proto::v1::worker_message::Msg as In;
use flotilla_proto::v1::worker_service_client::WorkerServiceClient;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tonic::Streaming;
use tonic::transport::Channel;

/// How long a test waits for one message.
pub const STEP: Duration = Duration::from_secs(20);

pub async fn client(addr: &str) -> Result<WorkerServiceClient<Channel>> {
    Ok(WorkerServiceClient::connect(format!("http://{addr}")).await?)
}

pub fn hello(name: &str, concurrency: u32) -> pb::Hello {
    pb::Hello {
        name: name.into(),
        queues: vec!["default".into()],
        tasks: vec![pb::TaskDecl {
            name: "noop".into(),
            queue: String::new(),
        }],
        concurrency,
        resume: vec![],
        protocol_version: 1,
        agent: "flotilla-tests".into(),
        ..Default::default()
    }
}

/// One open session.
pub struct Worker {
    tx: mpsc::Sender<pb::WorkerMessage>,
    rx: Streaming<pb::NodeMessage>,
    pub welcome: Option<pb::Welcome>,
}

impl Worker {
    /// Open a session and send `hello`; the first answer is the Welcome (or a refusal).
    pub async fn open(addr: &str, hello: pb::Hello) -> Result<Worker> {
        let mut w = Worker::connect(addr).await?;
        w.send(In::Hello(hello)).await?;
        match w.next().await? {
            Out::Welcome(welcome) => w.welcome = Some(welcome),
            other => bail!("expected a Welcome, got {other:?}"),
        }
        Ok(w)
    }

    /// A session with nothing sent yet.
    pub async fn connect(addr: &str) -> Result<Worker> {
        let (tx, rx) = mpsc::channel(64);
        let response = client(addr).await?.session(ReceiverStream::new(rx)).await?;
        Ok(Worker {
            tx,
            rx: response.into_inner(),
            welcome: None,
        })
    }

    pub async fn send(&self, msg: In) -> Result<()> {
        self.tx
            .send(pb::WorkerMessage { msg: Some(msg) })
            .await
            .context("stream closed")
    }

    /// The next message that is not a ping (answered); `Err` when the stream ends.
    pub async fn next(&mut self) -> Result<Out> {
        self.next_status()
            .await
            .map_err(|s| anyhow::anyhow!("stream ended: {s:?}"))
    }

    /// Like `next`, the stream's final status as the error.
    pub async fn next_status(&mut self) -> Result<Out, Status> {
        loop {
            let msg = tokio::time::timeout(STEP, self.rx.next())
                .await
                .map_err(|_| Status::deadline_exceeded("no message in time"))?
                .ok_or_else(|| Status::ok("stream ended"))??;
            match msg.msg {
                Some(Out::Ping(p)) => {
                    let _ = self.send(In::Pong(pb::Pong { nonce: p.nonce })).await;
                }
                Some(other) => return Ok(other),
                None => return Err(Status::internal("empty message")),
            }
        }
    }

    /// The next batch of tasks (acks in between are returned through `acks`).
    pub async fn tasks(&mut self, acks: &mut Vec<pb::ResultAck>) -> Result<Vec<pb::Task>> {
        loop {
            match self.next().await? {
                Out::Tasks(t) => return Ok(t.tasks),
                Out::Acks(a) => acks.extend(a.acks),
                other => bail!("expected tasks, got {other:?}"),
            }
        }
    }

    /// Acks until `n` more came (tasks in between are returned through `tasks`).
    pub async fn acks(&mut self, n: usize, tasks: &mut Vec<pb::Task>) -> Result<Vec<pb::ResultAck>> {
        let mut acks = Vec::new();
        while acks.len() < n {
            match self.next().await? {
                Out::Acks(a) => acks.extend(a.acks),
                Out::Tasks(t) => tasks.extend(t.tasks),
                other => bail!("expected acks, got {other:?}"),
            }
        }
        Ok(acks)
    }

    pub async fn results(&self, results: Vec<pb::TaskResult>) -> Result<()> {
        self.send(In::Results(pb::Results { results })).await
    }
}

pub fn success(t: &pb::Task, result: &'static [u8]) -> pb::TaskResult {
    pb::TaskResult {
        task_id: t.task_id,
        attempt: t.attempt,
        outcome: Some(pb::task_result::Outcome::Success(Bytes::from_static(result))),
    }
}
