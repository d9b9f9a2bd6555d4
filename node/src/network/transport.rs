//! The transport seam: how this node reaches another by address.
//!
//! Production uses [`TcpConnector`] (lazy HTTP/2 channels with TCP_NODELAY), or
//! [`TlsConnector`] over it when the node has TLS (`--tls-*`). The simulator provides a
//! connector over its simulated network; nothing else in the node opens sockets to peers.

use std::sync::Arc;
use std::time::Duration;

use flotilla_tls::NodeTls;
use tonic::transport::Channel;
use tonic::transport::Endpoint;

/// Turns an advertised address (`host:port`) into a tonic channel.
pub trait Connector: Send + Sync + 'static {
    fn channel(&self, addr: &str) -> Result<Channel, tonic::transport::Error>;
}

/// Plain TCP (loopback or LAN); the channel connects lazily and reconnects by itself.
#[derive(Clone, Debug)]
pub struct TcpConnector {
    pub connect_timeout: Duration,
}

impl Default for TcpConnector {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_millis(500),
        }
    }
}

impl TcpConnector {
    /// The endpoint of `uri` with this connector's options.
    fn endpoint(&self, uri: String) -> Result<Endpoint, tonic::transport::Error> {
        Ok(Endpoint::from_shared(uri)?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5)))
    }
}

impl Connector for TcpConnector {
    fn channel(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        Ok(self.endpoint(format!("http://{addr}"))?.connect_lazy())
    }
}

/// Mutual TLS over [`TcpConnector`]: the node shows its certificate, and accepts only a peer
/// whose certificate the CA signed for the address dialled and that names the same cluster
/// (`flotilla_tls::verify::PeerVerifier`).
#[derive(Clone, Debug)]
pub struct TlsConnector {
    tcp: TcpConnector,
    tls: Arc<NodeTls>,
}

impl TlsConnector {
    pub fn new(tcp: TcpConnector, tls: Arc<NodeTls>) -> Self {
        Self { tcp, tls }
    }
}

impl Connector for TlsConnector {
    fn channel(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        let endpoint = self.tcp.endpoint(format!("https://{addr}"))?;
        Ok(self.tls.dial(endpoint)?.connect_lazy())
    }
}
