//! Connections before HTTP/2 sees them: how the node accepts sockets, and how long it keeps a
//! connection that does nothing.
//!
//! - [`accept`]: the accept loop of a TCP listener. An accept error (out of file descriptors,
//!   out of memory) is logged and followed by a growing pause, instead of being retried at once
//!   in a loop that spins at 100 % CPU and logs nothing (tonic's own loop does that).
//! - [`Guarded`]: every accepted connection, TCP or simulated. One that sends no byte within
//!   [`ConnLimits::handshake`] is closed (a scanner, a half-open socket, a client that never
//!   speaks HTTP/2); one with no call in progress for [`ConnLimits::idle`] is closed too. Calls
//!   are counted by [`super::calls`], which finds the connection's [`Activity`] in each
//!   request's extensions ([`ConnInfo`]).
//! - [`raise_open_files_limit`]: the process may use as many file descriptors as its hard
//!   limit allows (a soft limit of 1024 is common and a few hundred clients reach it).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::task::Context;
use std::task::Poll;
use std::time::Duration;

use flotilla_proto::backoff::Backoff;
use futures::Stream;
use tokio::io::AsyncRead;
use tokio::io::AsyncWrite;
use tokio::io::ReadBuf;
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio::time::Sleep;
use tonic::transport::server::Connected;
use tracing::debug;
use tracing::warn;

/// Pauses after an accept error: from 5 ms, doubling to 1 s while errors go on.
const ACCEPT_BACKOFF: Backoff = Backoff::new(Duration::from_millis(5), Duration::from_secs(1));

/// How long a connection may stay silent or idle (`--handshake-timeout-ms`,
/// `--idle-timeout-ms`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnLimits {
    /// The peer must send its first bytes (the HTTP/2 preface, or a TLS hello) within this.
    pub handshake: Duration,
    /// A connection with no call in progress is closed after this long.
    pub idle: Duration,
}

/// Accept connections on `listener` for ever, setting TCP_NODELAY on each (tonic ignores its
/// own `tcp_nodelay` for an incoming stream, and small replies would wait for the peer's
/// delayed ACK). Errors are never yielded: see the module docs.
pub fn accept(listener: TcpListener) -> impl Stream<Item = io::Result<TcpStream>> {
    futures::stream::unfold((listener, ACCEPT_BACKOFF), |(listener, mut backoff)| async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    backoff.reset();
                    if let Err(e) = stream.set_nodelay(true) {
                        warn!(error = %e, "could not set TCP_NODELAY");
                    }
                    return Some((Ok(stream), (listener, backoff)));
                }
                // The connection died before it was accepted: nothing is wrong here.
                Err(e) if is_connection_error(&e) => debug!(error = %e, "accept: connection lost"),
                Err(e) => {
                    let pause = backoff.next_delay();
                    warn!(
                        error = %e,
                        pause_ms = pause.as_millis() as u64,
                        "cannot accept connections (out of file descriptors? see `ulimit -n`); pausing"
                    );
                    tokio::time::sleep(pause).await;
                }
            }
        }
    })
}

/// Errors of one connection, not of the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::Interrupted
    )
}

/// Raise the soft limit of open files to the hard limit; returns `(before, after)`.
pub fn raise_open_files_limit() -> io::Result<(Option<u64>, Option<u64>)> {
    use rustix::process::Resource;
    let limit = rustix::process::getrlimit(Resource::Nofile);
    if limit.current == limit.maximum {
        return Ok((limit.current, limit.current));
    }
    let raised = rustix::process::Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    rustix::process::setrlimit(Resource::Nofile, raised)?;
    Ok((
        limit.current,
        rustix::process::getrlimit(Resource::Nofile).current,
    ))
}

/// Calls in progress on one connection, and since when there were none.
#[derive(Clone, Debug)]
pub struct Activity(Arc<ActivityState>);

#[derive(Debug)]
struct ActivityState {
    open: AtomicUsize,
    idle_since: std::sync::Mutex<Instant>,
}

impl Activity {
    fn new(now: Instant) -> Self {
        Self(Arc::new(ActivityState {
            open: AtomicUsize::new(0),
            idle_since: std::sync::Mutex::new(now),
        }))
    }

    /// A call started; it ends when the returned guard is dropped.
    pub fn call(&self) -> OpenCall {
        self.0.open.fetch_add(1, Ordering::SeqCst);
        OpenCall(self.clone())
    }

    fn idle_since(&self) -> Option<Instant> {
        if self.0.open.load(Ordering::SeqCst) > 0 {
            return None;
        }
        Some(*self.0.idle_since.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// One call in progress on a connection (see [`Activity::call`]).
#[derive(Debug)]
pub struct OpenCall(Activity);

impl Drop for OpenCall {
    fn drop(&mut self) {
        let state = &self.0.0;
        // Stamp before the count can reach zero, so a reader never sees zero with a stale stamp.
        *state.idle_since.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        state.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What the services learn about a connection: its activity, and the transport's own info
/// (handed on to the request by [`super::calls`], so `remote_addr()` keeps working).
#[derive(Clone, Debug)]
pub struct ConnInfo<T> {
    pub activity: Activity,
    pub inner: T,
}

/// A TLS connection's certificates stay visible through the guard (the peer gate reads them).
impl<T: flotilla_tls::PeerCertificates> flotilla_tls::PeerCertificates for ConnInfo<T> {
    fn peer_certificates(&self) -> Option<Arc<Vec<flotilla_tls::CertificateDer<'static>>>> {
        self.inner.peer_certificates()
    }
}

/// A connection closed when it stays silent or idle too long (see the module docs).
pub struct Guarded<IO> {
    io: IO,
    limits: ConnLimits,
    activity: Activity,
    /// Whether the peer sent anything yet.
    greeted: bool,
    timer: Pin<Box<Sleep>>,
}

impl<IO> Guarded<IO> {
    pub fn new(io: IO, limits: ConnLimits) -> Self {
        let now = Instant::now();
        Self {
            io,
            limits,
            activity: Activity::new(now),
            greeted: false,
            timer: Box::pin(tokio::time::sleep_until(now + limits.handshake)),
        }
    }

    /// Whether the connection must close now; otherwise re-arm the timer for the next check.
    fn expired(&mut self, cx: &mut Context<'_>) -> Option<&'static str> {
        while self.timer.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            if !self.greeted {
                return Some("no handshake");
            }
            let next = match self.activity.idle_since() {
                Some(since) if now.saturating_duration_since(since) >= self.limits.idle => {
                    return Some("idle");
                }
                Some(since) => since + self.limits.idle,
                None => now + self.limits.idle,
            };
            self.timer.as_mut().reset(next);
        }
        None
    }
}

use std::future::Future as _;

impl<IO: Connected> Connected for Guarded<IO> {
    type ConnectInfo = ConnInfo<IO::ConnectInfo>;

    fn connect_info(&self) -> Self::ConnectInfo {
        ConnInfo {
            activity: self.activity.clone(),
            inner: self.io.connect_info(),
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Guarded<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before && !self.greeted {
                    self.greeted = true;
                    let idle = self.limits.idle;
                    self.timer.as_mut().reset(Instant::now() + idle);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.expired(cx) {
                // End of stream: HTTP/2 closes the connection as if the peer had.
                Some(why) => {
                    debug!(why, "closing a quiet connection");
                    Poll::Ready(Ok(()))
                }
                None => Poll::Pending,
            },
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Guarded<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;
    use tokio::io::AsyncWriteExt;

    use super::*;

    const LIMITS: ConnLimits = ConnLimits {
        handshake: Duration::from_secs(10),
        idle: Duration::from_secs(300),
    };

    /// Read from `conn` until end of stream; how long that took (simulated time).
    async fn time_to_close(conn: &mut Guarded<tokio::io::DuplexStream>) -> Duration {
        let start = Instant::now();
        let mut buf = [0u8; 64];
        while conn.read(&mut buf).await.unwrap() > 0 {}
        start.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_is_dropped_after_the_handshake_timeout() {
        let (_peer, io) = tokio::io::duplex(64);
        let mut conn = Guarded::new(io, LIMITS);
        assert_eq!(time_to_close(&mut conn).await, LIMITS.handshake);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_closes_but_not_while_a_call_is_open() {
        let (mut peer, io) = tokio::io::duplex(64);
        let mut conn = Guarded::new(io, LIMITS);
        peer.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        conn.read_exact(&mut buf).await.unwrap();

        let call = conn.activity.call();
        let open_for = Duration::from_secs(1000);
        let waited = tokio::time::timeout(open_for, time_to_close(&mut conn)).await;
        assert!(waited.is_err(), "closed while a call was open");
        drop(call);
        // Idle from the end of the call.
        assert_eq!(time_to_close(&mut conn).await, LIMITS.idle);
    }

    #[test]
    fn the_open_files_limit_is_raised_to_the_hard_limit() {
        let (before, after) = raise_open_files_limit().unwrap();
        let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
        assert_eq!(after, hard);
        assert!(after >= before);
    }
}
