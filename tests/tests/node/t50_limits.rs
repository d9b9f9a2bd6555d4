//! One node against hostile or careless clients (issue 14, items 13 and 14): bad input is
//! `INVALID_ARGUMENT` and stores nothing; requests are bounded before they are buffered;
//! silent connections are closed; at the open-files limit the node backs off and says why.

use std::io::Read;
use std::net::TcpStream;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::time::Duration;
use tokio::time::Instant;

use anyhow::Context;
use anyhow::Result;
use anyhow::ensure;
use flotilla_client::ClientError;
use flotilla_proto::v1 as pb;
use flotilla_proto::v1::queue_service_client::QueueServiceClient;
use flotilla_tests::NodeProcess;
use flotilla_tests::binary;
use flotilla_tests::connect;
use flotilla_tests::free_port;
use flotilla_tests::ready;
use tonic::Code;

async fn channel(node: &NodeProcess) -> Result<tonic::transport::Channel> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", node.addr))?;
    Ok(endpoint.connect().await?)
}

/// A raw gRPC stub to `node` (the typed client would split or refuse what these tests send).
async fn raw(node: &NodeProcess) -> Result<QueueServiceClient<tonic::transport::Channel>> {
    Ok(QueueServiceClient::new(channel(node).await?).max_encoding_message_size(usize::MAX))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_invalid_argument_and_stores_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let node = NodeProcess::start(&dir.path().join("n1"), &["--workers", "0"])?;
    let client = connect(&node).await?;
    ready(&client, &node).await?;

    // Not a SubmitRequest: a GetTaskRequest's varint where a task (length-delimited) belongs.
    let mut grpc = tonic::client::Grpc::new(channel(&node).await?);
    grpc.ready().await?;
    let codec = tonic_prost::ProstCodec::<pb::GetTaskRequest, pb::SubmitResponse>::default();
    let path = http::uri::PathAndQuery::from_static("/flotilla.v1.QueueService/Submit");
    let garbage = grpc
        .unary(
            tonic::Request::new(pb::GetTaskRequest {
                id: 7,
                stale_ok: true,
            }),
            path,
            codec,
        )
        .await
        .unwrap_err();
    ensure!(garbage.code() == Code::InvalidArgument, "{garbage:?}");
    ensure!(garbage.message().contains("does not decode"), "{garbage:?}");

    // A queue name the `--queues` flag would refuse is refused at submit too.
    for queue in ["with space", "new\nline", &"q".repeat(129)] {
        let refused = client.submit(client.task("noop").queue(queue)).await;
        match refused {
            Err(ClientError::InvalidArgument(m)) => ensure!(m.contains("is not a queue name"), "{m}"),
            other => anyhow::bail!("queue {queue:?} was not refused: {other:?}"),
        }
    }
    client
        .submit(client.task("noop").queue("billing.eu-1:high_prio"))
        .await?;
    let stats = client.stats().await?;
    ensure!(
        stats.len() == 1 && stats[0].queue == "billing.eu-1:high_prio",
        "{stats:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_bounded_before_they_are_buffered() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let limits = [
        "--workers",
        "0",
        "--max-payload-bytes",
        "1000",
        "--max-batch-tasks",
        "10",
    ];
    let node = NodeProcess::start(&dir.path().join("n1"), &limits)?;
    let client = connect(&node).await?;
    ready(&client, &node).await?;
    let mut stub = raw(&node).await?;

    // 11 ids where 10 are allowed.
    let ids: Vec<u64> = (1..=11).collect();
    let cancel = stub
        .cancel(pb::CancelRequest { ids: ids.clone() })
        .await
        .unwrap_err();
    ensure!(cancel.code() == Code::InvalidArgument, "{cancel:?}");
    ensure!(cancel.message().contains("--max-batch-tasks"), "{cancel:?}");
    let wait = stub
        .wait_results(pb::WaitResultsRequest { ids, timeout_ms: 1 })
        .await
        .unwrap_err();
    ensure!(wait.code() == Code::InvalidArgument, "{wait:?}");

    // A request larger than 10 tasks of 1000 bytes (plus overhead) can hold is not decoded.
    let big = pb::TaskSpec {
        name: "noop".into(),
        args: vec![b'x'; 1024 * 1024].into(),
        ..Default::default()
    };
    let refused = stub
        .submit(pb::SubmitRequest { tasks: vec![big] })
        .await
        .unwrap_err();
    ensure!(refused.code() == Code::InvalidArgument, "{refused:?}");
    ensure!(refused.message().contains("too large"), "{refused:?}");
    ensure!(client.stats().await?.is_empty(), "something was stored");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_speaks_is_closed() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let args = ["--workers", "0", "--handshake-timeout-ms", "300"];
    let node = NodeProcess::start(&dir.path().join("n1"), &args)?;
    let client = connect(&node).await?;
    ready(&client, &node).await?;

    let mut silent = TcpStream::connect(&node.addr)?;
    silent.set_read_timeout(Some(Duration::from_secs(5)))?;
    let started = Instant::now();
    // The node speaks first (its HTTP/2 settings), then must hang up.
    let mut heard = Vec::new();
    let read = silent.read_to_end(&mut heard);
    ensure!(
        read.is_ok() && started.elapsed() < Duration::from_secs(3),
        "a silent connection was kept (read: {read:?} after {:?})",
        started.elapsed()
    );
    // The node still serves.
    client.status().await?;
    Ok(())
}

/// A node started under `ulimit -n` (hard and soft): the node cannot raise it.
struct Limited {
    child: Child,
    addr: String,
    log_path: std::path::PathBuf,
}

impl Limited {
    fn start(dir: &std::path::Path, open_files: u32) -> Result<Limited> {
        let addr = format!("127.0.0.1:{}", free_port()?);
        let log_path = dir.join("node.log");
        let script = format!(
            "ulimit -n {open_files} && exec \"$0\" --listen {addr} --data-dir {} --workers 0",
            dir.join("data").display()
        );
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(binary("node")?)
            .env("RUST_LOG", "info,openraft=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path)?)
            .spawn()
            .context("spawning sh")?;
        Ok(Limited {
            child,
            addr,
            log_path,
        })
    }

    /// CPU time (user + system) the process used so far, in clock ticks.
    fn cpu_ticks(&self) -> Result<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        // Fields after the command name (which may hold spaces) start after the last ')'.
        let rest = &stat[stat.rfind(')').context("stat")? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Limited {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_open_files_limit_the_node_backs_off_and_says_why() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let node = Limited::start(dir.path(), 128)?;
    let client = flotilla_client::Client::builder([node.addr.clone()])
        .retry_policy(flotilla_client::RetryPolicy {
            max_elapsed: Duration::from_secs(30),
            ..Default::default()
        })
        .build()
        .await?;
    let mut served = false;
    for _ in 0..300 {
        if client.status().await.is_ok_and(|s| s.leader_id.is_some()) {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(served, "node did not start; log:\n{}", node.log());

    // More connections than the node has descriptors: the backlog keeps the rest waiting.
    let mut conns = Vec::new();
    for _ in 0..200 {
        if let Ok(c) = TcpStream::connect(&node.addr) {
            conns.push(c);
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ticks_per_s = 100.0; // USER_HZ on Linux
    let before = node.cpu_ticks()?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu_s = (node.cpu_ticks()? - before) as f64 / ticks_per_s;
    let log = node.log();
    ensure!(
        cpu_s < 0.5,
        "the node used {cpu_s:.2} s of CPU in 2 s at its open-files limit; log:\n{log}"
    );
    ensure!(log.contains("cannot accept connections"), "log:\n{log}");
    drop(conns);
    Ok(())
}
