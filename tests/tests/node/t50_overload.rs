//! An overloaded node slows or refuses calls, but never drops a client's connection (issue 15,
//! item 3). The collapse seen under a sustained open loop of single submits: the node read its
//! sockets late, clients had meanwhile cancelled calls that timed out, and h2's reset-flood
//! guard (GOAWAY "too_many_resets" past 20 streams reset before the server accepted them)
//! closed every client's connection with all its calls. Here a client cancels a burst of calls
//! that reach the node in one read, as a late read sees them, and then calls again on the same
//! connection.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::task::Context;
use std::task::Poll;
use std::task::ready;
use std::time::Duration;

use anyhow::Context as _;
use anyhow::Result;
use anyhow::ensure;
use bytes::Bytes;
use flotilla_tests::NodeProcess;
use flotilla_tests::connect;
use flotilla_tests::ready;
use tokio::io::AsyncRead;
use tokio::io::AsyncWrite;
use tokio::io::ReadBuf;
use tokio::net::TcpStream;

/// Calls cancelled in one burst: far over h2's default guard (20), under a connection's
/// stream limit (256), so an honest client can send them all.
const BURST: usize = 200;

/// A socket whose writes are held back while `corked`, then sent in one go: the node's next
/// read finds the whole burst, as a node that reads late does.
struct Corked {
    io: TcpStream,
    corked: Arc<AtomicBool>,
    held: Vec<u8>,
}

impl Corked {
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while !self.held.is_empty() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.held))?;
            self.held.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Corked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Corked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.corked.load(Ordering::SeqCst) {
            self.held.extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        ready!(self.drain(cx))?;
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.corked.load(Ordering::SeqCst) {
            return Poll::Ready(Ok(()));
        }
        ready!(self.drain(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A `ClusterStatus` call's request head (its body, an empty message, is sent separately).
fn status_request(addr: &str) -> Result<http::Request<()>> {
    Ok(http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}/flotilla.v1.QueueService/ClusterStatus"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())?)
}

/// One `ClusterStatus` call on `send`'s connection; its gRPC status code.
async fn status_call(send: &h2::client::SendRequest<Bytes>, addr: &str) -> Result<String> {
    let mut send = send
        .clone()
        .ready()
        .await
        .context("connection refuses new calls")?;
    let (response, mut body) = send.send_request(status_request(addr)?, false)?;
    // The gRPC frame of an empty message: not compressed, length 0.
    body.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), true)?;
    let response = response.await.context("call failed")?;
    ensure!(response.status() == 200, "{response:?}");
    if let Some(code) = response.headers().get("grpc-status") {
        return Ok(code.to_str()?.to_owned());
    }
    let mut stream = response.into_body();
    while let Some(data) = stream.data().await {
        let data = data?;
        let _ = stream.flow_control().release_capacity(data.len());
    }
    let trailers = stream.trailers().await?.context("no trailers")?;
    Ok(trailers
        .get("grpc-status")
        .context("no grpc-status")?
        .to_str()?
        .to_owned())
}

#[tokio::test]
async fn a_burst_of_cancelled_calls_leaves_the_connection_and_its_calls_alive() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let node = NodeProcess::start(&dir.path().join("n1"), &["--workers", "0"])?;
    ready(&connect(&node).await?, &node).await?;

    let corked = Arc::new(AtomicBool::new(false));
    let io = Corked {
        io: TcpStream::connect(&node.addr).await?,
        corked: corked.clone(),
        held: Vec::new(),
    };
    let (send, connection) = h2::client::handshake(io).await?;
    let connection = tokio::spawn(connection);
    // Settings exchanged (the node's stream limit known), and the connection works.
    ensure!(status_call(&send, &node.addr).await? == "0");

    corked.store(true, Ordering::SeqCst);
    let mut cancelled = Vec::new();
    for _ in 0..BURST {
        let mut send = send.clone().ready().await?;
        cancelled.push(send.send_request(status_request(&node.addr)?, false)?);
    }
    // The connection task writes the calls' HEADERS (held), then their RST_STREAMs (held).
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(cancelled);
    tokio::time::sleep(Duration::from_millis(50)).await;
    corked.store(false, Ordering::SeqCst);

    // The burst goes out ahead of this call, in the same write.
    let after = tokio::time::timeout(Duration::from_secs(20), status_call(&send, &node.addr))
        .await
        .context("call after the burst hung")?
        .context("the node dropped the connection after a burst of cancelled calls")?;
    ensure!(after == "0", "grpc-status {after}");
    // And the connection keeps serving.
    for _ in 0..3 {
        ensure!(status_call(&send, &node.addr).await? == "0");
    }
    ensure!(
        !connection.is_finished(),
        "connection ended: {:?}",
        connection.await
    );
    Ok(())
}
