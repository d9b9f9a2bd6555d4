//! [`accept`]: TLS on a stream of accepted connections, for any server that takes one (tonic's
//! `serve_with_incoming`, and an HTTP server alike). Handshakes run concurrently, each under a
//! deadline, so one slow or silent peer holds up nobody; a failed handshake is logged and
//! dropped, never passed on as an error (which would stop a server's accept loop).

use std::fmt::Debug;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Context;
use std::task::Poll;
use std::time::Duration;

use futures::Stream;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use rustls::ServerConfig;
use tokio::io::AsyncRead;
use tokio::io::AsyncWrite;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tonic::transport::server::Connected;
use tracing::debug;
use tracing::warn;

/// Most handshakes in progress at once; past it, no new connection is taken until one ends.
pub const MAX_HANDSHAKES: usize = 1024;

/// Default deadline of one handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS connections of `incoming` (see the module doc).
pub fn accept<S, IO, E>(incoming: S, config: Arc<ServerConfig>, timeout: Duration) -> TlsIncoming<IO, E>
where
    S: Stream<Item = Result<IO, E>> + Send + 'static,
    IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
    IO::ConnectInfo: Debug,
{
    TlsIncoming {
        incoming: Some(Box::pin(incoming)),
        handshakes: FuturesUnordered::new(),
        acceptor: TlsAcceptor::from(config),
        timeout,
    }
}

/// The accepted connections (or accept errors) that [`accept`] wraps.
type Connections<IO, E> = Pin<Box<dyn Stream<Item = Result<IO, E>> + Send>>;

/// See [`accept`].
pub struct TlsIncoming<IO, E> {
    /// `None` once the underlying stream ended.
    incoming: Option<Connections<IO, E>>,
    handshakes: FuturesUnordered<BoxFuture<'static, Option<TlsStream<IO>>>>,
    acceptor: TlsAcceptor,
    timeout: Duration,
}

impl<IO, E> TlsIncoming<IO, E>
where
    IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
    IO::ConnectInfo: Debug,
{
    fn handshake(&self, io: IO) -> BoxFuture<'static, Option<TlsStream<IO>>> {
        let (acceptor, timeout) = (self.acceptor.clone(), self.timeout);
        Box::pin(async move {
            let peer = io.connect_info();
            match tokio::time::timeout(timeout, acceptor.accept(io)).await {
                Ok(Ok(stream)) => Some(stream),
                Ok(Err(e)) => {
                    // A certificate refused is an operator's business (a wrong CA, another
                    // cluster); anything else is noise a port scanner or a plaintext client makes.
                    let rustls_error = e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>());
                    if matches!(
                        rustls_error,
                        Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented)
                    ) {
                        warn!(?peer, error = %e, "tls handshake refused a certificate");
                    } else {
                        debug!(?peer, error = %e, "tls handshake failed");
                    }
                    None
                }
                Err(_) => {
                    debug!(?peer, ?timeout, "tls handshake timed out");
                    None
                }
            }
        })
    }
}

impl<IO, E> Stream for TlsIncoming<IO, E>
where
    IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
    IO::ConnectInfo: Debug,
{
    type Item = Result<TlsStream<IO>, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            // Take every connection waiting (up to the cap), starting its handshake.
            while this.handshakes.len() < MAX_HANDSHAKES
                && let Some(incoming) = this.incoming.as_mut()
            {
                match incoming.as_mut().poll_next(cx) {
                    Poll::Ready(Some(Ok(io))) => {
                        let handshake = this.handshake(io);
                        this.handshakes.push(handshake);
                    }
                    // The accept error is the server's to judge (and log), as without TLS.
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                    Poll::Ready(None) => this.incoming = None,
                    Poll::Pending => break,
                }
            }
            match this.handshakes.poll_next_unpin(cx) {
                Poll::Ready(Some(Some(stream))) => return Poll::Ready(Some(Ok(stream))),
                // A failed handshake made room: take connections again.
                Poll::Ready(Some(None)) => continue,
                Poll::Ready(None) if this.incoming.is_none() => return Poll::Ready(None),
                // Both wait with a waker: the incoming stream (below the cap) or a handshake.
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    }
}
