//! [`ClientBuilder`]: a client's options, and the endpoint of each node.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use flotilla_tls::ClientTls;
use tonic::transport::Endpoint;

use super::{ChannelFactory, Client, Config, Inner, Node};
use crate::entropy::Entropy;
use crate::error::{ClientError, Result};
use crate::gather::Gather;
use crate::retry::RetryPolicy;
use crate::token::BearerToken;
use crate::wait_hub::WaitHub;

/// Options for a [`Client`]; start with [`Client::builder`].
#[derive(Clone)]
pub struct ClientBuilder {
    addrs: Vec<String>,
    config: Config,
    seed: Option<u64>,
    channels: Option<ChannelFactory>,
    tls: Option<ClientTls>,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("addrs", &self.addrs)
            .field("config", &self.config)
            .field("seed", &self.seed)
            .field("custom_channels", &self.channels.is_some())
            .field("tls", &self.tls)
            .finish()
    }
}

impl ClientBuilder {
    /// Deadline for one attempt of a unary call (default 10 s). A wait's own timeout is separate.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config.request_timeout = timeout;
        self
    }

    /// Deadline for opening a connection to a node (default 2 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// Deadline for a node to start answering a `WaitResults` stream (default 1 s, never more
    /// than the request timeout). A live node answers at once and then reports as tasks
    /// finish; one that does not answer is left for the next node.
    pub fn first_response_timeout(mut self, timeout: Duration) -> Self {
        self.config.first_response_timeout = timeout;
        self
    }

    /// HTTP/2 pings on every connection: one after `interval` without a frame from the node,
    /// and the connection is closed (its calls retried on the next node) when the node does
    /// not answer within `timeout`. Default 500 ms and 500 ms, so a node that stopped
    /// answering (SIGSTOPped, frozen, cut off without a reset) is left within about a second,
    /// whatever the request timeout. `None` sends no pings.
    pub fn keepalive(mut self, ping: Option<(Duration, Duration)>) -> Self {
        self.config.keepalive = ping;
        self
    }

    /// How transient failures are retried (default: [`RetryPolicy::default`]).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.config.retry = policy;
        self
    }

    /// Most tasks (or ids to cancel) sent in one request (default 1000).
    pub fn max_batch_size(mut self, size: usize) -> Self {
        self.config.max_batch_size = size;
        self
    }

    /// Most batch requests of one `submit_batch` in flight at once (default 8).
    pub fn max_in_flight_batches(mut self, n: usize) -> Self {
        self.config.max_in_flight_batches = n;
        self
    }

    /// Most ids waited for by one `WaitResults` stream; longer lists are split over several
    /// concurrent streams (default 10,000).
    pub fn wait_chunk_size(mut self, size: usize) -> Self {
        self.config.wait_chunk_size = size;
        self
    }

    /// Gather concurrent [`Client::submit`] calls into shared submit requests and concurrent
    /// [`Client::wait`] calls into shared `WaitResults` streams (default true; see their docs).
    /// `false` sends one request (or stream) per call, as before issue 15: for comparisons.
    pub fn gather_calls(mut self, gather: bool) -> Self {
        self.config.gather = gather;
        self
    }

    /// Present `token` on every call (`authorization: Bearer <token>`): a node that is not on
    /// loopback, or runs with `--require-token`, refuses calls without one. The `flotilla` CLI
    /// reads it from `--token` or `FLOTILLA_TOKEN`.
    pub fn token(mut self, token: &str) -> Result<Self> {
        self.config.token = BearerToken::new(token)?;
        Ok(self)
    }

    /// Seed the generator of idempotency keys and retry jitter (default: from the OS), so a
    /// simulation makes the same keys every run.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Open connections with `factory` instead of plain TCP (the simulator's network uses
    /// this; it gets each node's endpoint and must return a lazily connecting channel).
    pub fn channel_factory(mut self, factory: ChannelFactory) -> Self {
        self.channels = Some(factory);
        self
    }

    /// Talk to the nodes over TLS (nodes started with `--tls-*`): `https://` to every address,
    /// and a node must present a certificate of the CA in `tls` for the address dialled.
    pub fn tls(mut self, tls: ClientTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Creates the client. Connections are opened lazily, on the first call to each node, so
    /// this only fails on bad options; it must run inside a tokio runtime.
    pub async fn build(self) -> Result<Client> {
        let Config {
            max_batch_size,
            max_in_flight_batches,
            wait_chunk_size,
            ..
        } = self.config;
        if max_batch_size == 0 || max_in_flight_batches == 0 || wait_chunk_size == 0 {
            return Err(ClientError::Config(
                "batch sizes and in-flight limits must be at least 1".into(),
            ));
        }
        if self.addrs.is_empty() {
            return Err(ClientError::Config("no node addresses given".into()));
        }
        let nodes = self
            .addrs
            .into_iter()
            .map(|addr| {
                let endpoint = endpoint(&addr, &self.config, self.tls.as_ref())?;
                let channel = match &self.channels {
                    Some(factory) => factory(endpoint),
                    None => endpoint.connect_lazy(),
                };
                Ok(Node { addr, channel })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Client {
            inner: Arc::new(Inner {
                nodes,
                current: AtomicUsize::new(0),
                config: self.config,
                entropy: Entropy::new(self.seed),
                submits: Gather::default(),
                waits: WaitHub::default(),
            }),
        })
    }
}

/// The endpoint for `addr` ("host:port", or a full `http://` or, with TLS, `https://` URI).
fn endpoint(addr: &str, config: &Config, tls: Option<&ClientTls>) -> Result<Endpoint> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let uri = match addr.split_once("://") {
        None => format!("{scheme}://{addr}"),
        // With TLS, a plaintext address would silently go without it.
        Some((given, _)) if tls.is_some() && given != "https" => {
            return Err(ClientError::Config(format!(
                "node address `{addr}` is not https:// but TLS is configured"
            )));
        }
        Some(_) => addr.to_owned(),
    };
    let invalid =
        |e: tonic::transport::Error| ClientError::Config(format!("invalid node address `{addr}`: {e}"));
    let mut endpoint = Endpoint::from_shared(uri).map_err(invalid)?;
    if let Some(tls) = tls {
        endpoint = tls.apply(endpoint).map_err(invalid)?;
    }
    let endpoint = endpoint.connect_timeout(config.connect_timeout).tcp_nodelay(true);
    Ok(match config.keepalive {
        // A node that stopped answering without closing the connection is noticed within
        // `interval + timeout`, in a call (a quiet wait stream too) or before the next one, and
        // the call is retried elsewhere instead of waiting out its deadline.
        Some((interval, timeout)) => endpoint
            .http2_keep_alive_interval(interval)
            .keep_alive_timeout(timeout)
            .keep_alive_while_idle(true),
        None => endpoint,
    })
}

impl Client {
    /// A builder for a client of the nodes at `addrs` ("host:port" each).
    pub fn builder(addrs: impl IntoIterator<Item = impl Into<String>>) -> ClientBuilder {
        ClientBuilder {
            addrs: addrs.into_iter().map(Into::into).collect(),
            config: Config {
                request_timeout: Duration::from_secs(10),
                connect_timeout: Duration::from_secs(2),
                first_response_timeout: Duration::from_secs(1),
                keepalive: Some((Duration::from_millis(500), Duration::from_millis(500))),
                retry: RetryPolicy::default(),
                max_batch_size: 1000,
                max_in_flight_batches: 8,
                wait_chunk_size: 10_000,
                gather: true,
                token: BearerToken::default(),
            },
            seed: None,
            channels: None,
            tls: None,
        }
    }

    /// A client of the nodes at `addrs` with default options.
    pub async fn connect(addrs: impl IntoIterator<Item = impl Into<String>>) -> Result<Client> {
        Self::builder(addrs).build().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn builder_rejects_bad_options_and_adds_the_scheme() {
        let err = Client::connect(Vec::<String>::new()).await.unwrap_err();
        assert!(matches!(err, ClientError::Config(_)), "{err}");
        let err = Client::builder(["127.0.0.1:1"])
            .max_batch_size(0)
            .build()
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Config(_)), "{err}");
        let err = Client::connect(["bad host:1"]).await.unwrap_err();
        assert!(err.to_string().contains("bad host:1"), "{err}");
        let c = Client::connect(["127.0.0.1:7000", "http://[::1]:7001"])
            .await
            .unwrap();
        assert_eq!(
            c.nodes().collect::<Vec<_>>(),
            ["127.0.0.1:7000", "http://[::1]:7001"]
        );
    }

    #[tokio::test]
    async fn with_tls_every_address_is_https() {
        let dir = tempfile::tempdir().unwrap();
        flotilla_tls::generate::make_ca(dir.path(), 1).unwrap();
        let tls = ClientTls::load(&dir.path().join(flotilla_tls::generate::CA_CERT), None).unwrap();
        let err = Client::builder(["http://127.0.0.1:7000"])
            .tls(tls.clone())
            .build()
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not https://"), "{err}");
        Client::builder(["127.0.0.1:7000", "https://localhost:7001"])
            .tls(tls)
            .build()
            .await
            .unwrap();
    }
}
