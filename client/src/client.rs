//! [`Client`] and [`ClientBuilder`]: the calls, node rotation and the retry loop.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flotilla_proto::v1 as pb;
use flotilla_proto::v1::queue_service_client::QueueServiceClient;
use flotilla_tls::ClientTls;
use futures::{Stream, StreamExt, TryStreamExt};
use tokio::time::Instant;
use tonic::Status;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tracing::debug;

use crate::cluster::{ClusterStatus, QueueStats};
use crate::entropy::Entropy;
use crate::error::{ClientError, Result};
use crate::info::{TaskInfo, TaskState};
use crate::retry::{Backoff, RetryPolicy, is_transient};
use crate::task::{Submitted, TaskId, TaskRequest};
use crate::token::BearerToken;
use crate::wait;

/// A stub of one node that presents the client's token on every call.
pub(crate) type Grpc = QueueServiceClient<InterceptedService<Channel, BearerToken>>;

/// Largest reply accepted from a node (results can be large JSON documents).
pub(crate) const MAX_DECODING_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// A connection to a Flotilla cluster: any node serves any call, so the client keeps a list of
/// nodes, sends each call to its current node and moves on to the next one when a call fails
/// transiently.
///
/// Cheap to clone (one `Arc`); clones share channels, node preference and the key generator.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    nodes: Vec<Node>,
    /// Index of the node calls go to first; advanced past a node that failed.
    current: AtomicUsize,
    config: Config,
    entropy: Entropy,
}

#[derive(Debug)]
struct Node {
    addr: String,
    channel: Channel,
}

#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) request_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) first_response_timeout: Duration,
    /// HTTP/2 ping interval and how long a ping may go unanswered; `None`: no pings.
    pub(crate) keepalive: Option<(Duration, Duration)>,
    pub(crate) retry: RetryPolicy,
    pub(crate) max_batch_size: usize,
    pub(crate) max_in_flight_batches: usize,
    pub(crate) wait_chunk_size: usize,
    pub(crate) token: BearerToken,
}

/// Opens a connection to a node from its endpoint (address and options already set).
pub type ChannelFactory = Arc<dyn Fn(Endpoint) -> Channel + Send + Sync>;

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

    /// Starts a request for the registered task `name`, with a fresh idempotency key.
    pub fn task(&self, name: impl Into<String>) -> TaskRequest {
        TaskRequest::with_key(name, self.inner.entropy.idempotency_key())
    }

    /// The node addresses, in the order they are tried.
    pub fn nodes(&self) -> impl Iterator<Item = &str> {
        self.inner.nodes.iter().map(|n| n.addr.as_str())
    }

    pub(crate) fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Submits one task and returns its id (the earlier task's id if its key was seen before).
    pub async fn submit(&self, task: TaskRequest) -> Result<TaskId> {
        let submitted = self.submit_batch(vec![task]).await?;
        submitted
            .first()
            .map(|s| s.id)
            .ok_or_else(|| ClientError::protocol("empty submit reply"))
    }

    /// Submits many tasks: split into requests of at most `max_batch_size` tasks, with up to
    /// `max_in_flight_batches` requests in flight. Results come back in `tasks` order.
    ///
    /// On error some earlier batches may have been accepted; submitting the same requests again
    /// is safe, as their idempotency keys make the accepted ones come back as duplicates.
    pub async fn submit_batch(&self, tasks: Vec<TaskRequest>) -> Result<Vec<Submitted>> {
        let total = tasks.len();
        let batches = chunked(
            tasks.into_iter().map(pb::TaskSpec::from),
            self.config().max_batch_size,
        );
        let replies: Vec<Vec<Submitted>> = futures::stream::iter(batches)
            .map(|tasks| self.submit_one_batch(pb::SubmitRequest { tasks }))
            .buffered(self.config().max_in_flight_batches)
            .try_collect()
            .await?;
        let submitted: Vec<Submitted> = replies.into_iter().flatten().collect();
        debug_assert_eq!(submitted.len(), total);
        Ok(submitted)
    }

    async fn submit_one_batch(&self, request: pb::SubmitRequest) -> Result<Vec<Submitted>> {
        let sent = request.tasks.len();
        let reply = self
            .unary(None, |mut c, t| {
                let r = with_timeout(request.clone(), t);
                async move { c.submit(r).await }
            })
            .await?;
        if reply.results.len() != sent {
            return Err(ClientError::protocol(format!(
                "submit reply has {} results for {sent} tasks",
                reply.results.len()
            )));
        }
        Ok(reply.results.into_iter().map(Submitted::from).collect())
    }

    /// Reads a task's state, linearizably (through the leader's read index).
    pub async fn get(&self, id: TaskId) -> Result<TaskInfo> {
        self.get_task(id, false).await
    }

    /// Reads a task's state from whichever node answers, without a read-index round: cheaper,
    /// but it may lag behind the latest committed state.
    pub async fn get_stale(&self, id: TaskId) -> Result<TaskInfo> {
        self.get_task(id, true).await
    }

    async fn get_task(&self, id: TaskId, stale_ok: bool) -> Result<TaskInfo> {
        let request = pb::GetTaskRequest { id: id.0, stale_ok };
        let reply = self
            .unary(Some(id), |mut c, t| async move {
                c.get_task(with_timeout(request, t)).await
            })
            .await?;
        reply
            .task
            .map(TaskInfo::from)
            .ok_or_else(|| ClientError::protocol("get reply without a task"))
    }

    /// Waits until task `id` is final (succeeded, dead or cancelled), for at most `timeout`.
    /// Fails with [`ClientError::NotFound`] for an unknown id and [`ClientError::Timeout`] when
    /// time runs out.
    pub async fn wait(&self, id: TaskId, timeout: Duration) -> Result<TaskInfo> {
        let mut results = std::pin::pin!(self.wait_many([id], timeout));
        match results.next().await {
            Some(Ok(info)) if info.state == TaskState::NotFound => Err(ClientError::NotFound(id)),
            Some(result) => result,
            None => Err(ClientError::protocol("wait ended without a result")),
        }
    }

    /// Streams each task's final state as it is reached (in completion order, each id once;
    /// unknown ids as [`TaskState::NotFound`]). Long id lists are split across several streams;
    /// a stream broken by a node failure is resumed elsewhere for the ids not yet reported.
    /// When `timeout` passes first, the stream yields one [`ClientError::Timeout`] and ends.
    pub fn wait_many(
        &self,
        ids: impl IntoIterator<Item = TaskId>,
        timeout: Duration,
    ) -> impl Stream<Item = Result<TaskInfo>> + Send + 'static {
        wait::wait_many(self.clone(), ids.into_iter().map(|id| id.0).collect(), timeout)
    }

    /// Like [`Client::wait_many`], collected: all final states in completion order, or the
    /// first error (e.g. [`ClientError::Timeout`]).
    pub async fn wait_all(
        &self,
        ids: impl IntoIterator<Item = TaskId>,
        timeout: Duration,
    ) -> Result<Vec<TaskInfo>> {
        self.wait_many(ids, timeout).try_collect().await
    }

    /// Cancels tasks that have not started. One flag per id, in order: true when this call
    /// cancelled the task.
    pub async fn cancel(&self, ids: impl IntoIterator<Item = TaskId>) -> Result<Vec<bool>> {
        let batches = chunked(ids.into_iter().map(|id| id.0), self.config().max_batch_size);
        let mut cancelled = Vec::new();
        for ids in batches {
            let sent = ids.len();
            let request = pb::CancelRequest { ids };
            let reply = self
                .unary(None, |mut c, t| {
                    let r = with_timeout(request.clone(), t);
                    async move { c.cancel(r).await }
                })
                .await?;
            if reply.cancelled.len() != sent {
                return Err(ClientError::protocol(format!(
                    "cancel reply has {} flags for {sent} ids",
                    reply.cancelled.len()
                )));
            }
            cancelled.extend(reply.cancelled);
        }
        Ok(cancelled)
    }

    /// Task counts per queue, sorted by queue name.
    pub async fn stats(&self) -> Result<Vec<QueueStats>> {
        let reply = self
            .unary(None, |mut c, t| async move {
                c.queue_stats(with_timeout(pb::QueueStatsRequest {}, t)).await
            })
            .await?;
        Ok(reply.queues.into_iter().map(QueueStats::from).collect())
    }

    /// Removes a member (a dead one too) through Raft; returns the member ids left.
    pub async fn remove_node(&self, id: u64) -> Result<Vec<u64>> {
        let reply = self
            .unary(None, |mut c, t| async move {
                c.remove_node(with_timeout(pb::RemoveNodeRequest { id }, t)).await
            })
            .await?;
        Ok(reply.members)
    }

    /// Members, roles and the leader, as the answering node sees them.
    pub async fn status(&self) -> Result<ClusterStatus> {
        let reply = self
            .unary(None, |mut c, t| async move {
                c.cluster_status(with_timeout(pb::ClusterStatusRequest {}, t))
                    .await
            })
            .await?;
        Ok(reply.into())
    }

    /// Runs one unary call: on the current node first, then, after each transient failure,
    /// on the next node after a backoff, until it succeeds, fails for good, or the retry
    /// policy's time is up. `id` is the task a `NOT_FOUND` refers to.
    pub(crate) async fn unary<T, F, Fut>(&self, id: Option<TaskId>, call: F) -> Result<T>
    where
        F: FnMut(Grpc, Duration) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, Status>>,
    {
        self.unary_on(Client::grpc, id, call).await
    }

    /// [`Client::unary`] on the stub `stub` makes of a node (another service of the node).
    pub(crate) async fn unary_on<S, T, F, Fut>(
        &self,
        stub: impl Fn(&Client, usize) -> S,
        id: Option<TaskId>,
        mut call: F,
    ) -> Result<T>
    where
        F: FnMut(S, Duration) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, Status>>,
    {
        let timeout = self.config().request_timeout;
        let mut backoff = Backoff::new(&self.config().retry, Instant::now());
        let mut node = self.current_node();
        loop {
            let failure = match tokio::time::timeout(timeout, call(stub(self, node), timeout)).await {
                Ok(Ok(reply)) => return Ok(reply.into_inner()),
                Ok(Err(status)) if is_transient(&status) => describe(&status),
                Ok(Err(status)) => return Err(final_error(&status, id)),
                Err(_) => format!("no reply within {timeout:?}"),
            };
            node = self.retry_after(node, &mut backoff, failure).await?;
        }
    }

    /// Books a transient failure of `node`: waits out the backoff and returns the node to try
    /// next, or the final [`ClientError::Unavailable`] when the policy's time is up.
    pub(crate) async fn retry_after(
        &self,
        node: usize,
        backoff: &mut Backoff,
        failure: String,
    ) -> Result<usize> {
        let addr = &self.inner.nodes[node].addr;
        let last = format!("{addr}: {failure}");
        let Some(delay) = backoff.on_failure(Instant::now(), self.inner.entropy.jitter()) else {
            return Err(ClientError::Unavailable {
                attempts: backoff.attempts(),
                last,
            });
        };
        let next = self.advance_from(node);
        debug!(node = %addr, attempts = backoff.attempts(), ?delay, error = %failure, "retrying on next node");
        tokio::time::sleep(delay).await;
        Ok(next)
    }

    /// The node calls start on.
    pub(crate) fn current_node(&self) -> usize {
        self.inner.current.load(Ordering::Relaxed) % self.inner.nodes.len()
    }

    /// Moves the shared preference past `failed` (unless another call already did) and returns
    /// the node after it.
    fn advance_from(&self, failed: usize) -> usize {
        let next = (failed + 1) % self.inner.nodes.len();
        let _ = self
            .inner
            .current
            .compare_exchange(failed, next, Ordering::Relaxed, Ordering::Relaxed);
        next
    }

    /// A stub over node `node`'s channel (cheap: channels are shared handles).
    pub(crate) fn grpc(&self, node: usize) -> Grpc {
        QueueServiceClient::new(self.channel(node)).max_decoding_message_size(MAX_DECODING_MESSAGE_BYTES)
    }

    /// Node `node`'s channel, presenting the client's token.
    pub(crate) fn channel(&self, node: usize) -> InterceptedService<Channel, BearerToken> {
        InterceptedService::new(
            self.inner.nodes[node].channel.clone(),
            self.config().token.clone(),
        )
    }
}

/// A request carrying a gRPC deadline, so the server can drop work nobody waits for.
pub(crate) fn with_timeout<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    request
}

/// A status that will not be retried, as an error.
pub(crate) fn final_error(status: &Status, id: Option<TaskId>) -> ClientError {
    if std::error::Error::source(status).is_some() {
        // Made on this side from a local failure, not sent by a server.
        return ClientError::Transport(describe(status));
    }
    ClientError::from_status(status, id)
}

/// A one-line description of a failed call.
pub(crate) fn describe(status: &Status) -> String {
    let mut text = format!("{:?}: {}", status.code(), status.message());
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        // Error chains often repeat their parent's words; keep each message once.
        let message = e.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = e.source();
    }
    text
}

/// Splits `items` into vectors of at most `size` items, keeping their order.
pub(crate) fn chunked<T>(items: impl IntoIterator<Item = T>, size: usize) -> Vec<Vec<T>> {
    let mut items = items.into_iter();
    std::iter::from_fn(|| {
        let chunk: Vec<T> = items.by_ref().take(size).collect();
        (!chunk.is_empty()).then_some(chunk)
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_keep_order_and_size() {
        let chunks = chunked(0..2501, 1000);
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), [1000, 1000, 501]);
        assert_eq!(chunks.concat(), (0..2501).collect::<Vec<_>>());
        assert!(chunked(Vec::<u8>::new(), 10).is_empty());
    }

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
