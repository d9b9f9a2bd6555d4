//! [`Client`]: node rotation and the retry loop of unary calls.
//!
//! - this file: the [`Client`] handle, its channels and the retry loop every unary call runs
//!   through (`Client::unary`);
//! - `builder`: [`ClientBuilder`] (timeouts, batching, TLS, token) and the node endpoints;
//! - `calls`: the task and cluster calls (submit, get, wait, cancel, stats, status, remove);
//!   concurrent single `submit`s and `wait`s of one client share requests and streams
//!   (`crate::gather`, `crate::wait_hub`).
//!
//! Other calls live with their domain types (`ops.rs`, `schedules.rs`, `events.rs`, ...).

mod builder;
mod calls;

pub use builder::ClientBuilder;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flotilla_proto::v1::queue_service_client::QueueServiceClient;
use tokio::time::Instant;
use tonic::Status;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tracing::debug;

use crate::entropy::Entropy;
use crate::error::{ClientError, Result};
use crate::gather::Gather;
use crate::retry::{Backoff, RetryPolicy, is_transient};
use crate::task::{Submitted, TaskId, TaskRequest};
use crate::token::BearerToken;
use crate::wait_hub::WaitHub;
use flotilla_proto::v1 as pb;

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
    /// Concurrent `submit` calls, gathered into shared requests (`gather`).
    submits: Gather<pb::TaskSpec, Submitted>,
    /// Concurrent `wait` calls, gathered into shared streams (`wait_hub`).
    waits: WaitHub,
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
    /// Concurrent `submit` and `wait` calls share requests and streams.
    pub(crate) gather: bool,
    pub(crate) token: BearerToken,
}

/// Opens a connection to a node from its endpoint (address and options already set).
pub type ChannelFactory = Arc<dyn Fn(Endpoint) -> Channel + Send + Sync>;

impl Client {
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
}
