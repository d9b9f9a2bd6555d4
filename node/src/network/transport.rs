//! The transport seam: how this node reaches another by address.
//!
//! Production uses [`TcpConnector`] (lazy HTTP/2 channels with TCP_NODELAY). The simulator
//! provides a connector over its simulated network; nothing else in the node opens sockets to
//! peers.

use std::time::Duration;

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

impl Connector for TcpConnector {
    fn channel(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5));
        Ok(endpoint.connect_lazy())
    }
}
