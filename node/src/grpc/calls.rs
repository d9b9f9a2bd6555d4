//! [`CallsLayer`]: what every gRPC call passes through before and after its service.
//!
//! - **A bound on client calls in progress**, node-wide: past [`MAX_CLIENT_CALLS`], a client
//!   call is refused at once with `UNAVAILABLE` (the client retries, on another node if it has
//!   one) instead of queueing without limit. Peer calls (`RaftService`) are not counted: a
//!   flood of clients must not starve heartbeats. (Each connection is also bounded by HTTP/2's
//!   `max_concurrent_streams`, set by the server.) A call counts until its reply is ready.
//! - **Connection activity**: each call holds its connection's [`OpenCall`] until its reply
//!   body ends, so [`super::conn::Guarded`] never closes a connection as idle under a stream.
//! - **Bad input is the caller's fault**: a request that does not decode is answered by tonic
//!   with `INTERNAL` (or `OUT_OF_RANGE` when over the size limit); it is turned into
//!   `INVALID_ARGUMENT` here (see [`super::status::undecodable_request`]).

use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Context;
use std::task::Poll;

use futures::future::BoxFuture;
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::Semaphore;
use tonic::Status;
use tonic::body::Body;

use super::conn::ConnInfo;
use super::conn::OpenCall;
use super::status::ApiError;
use super::status::undecodable_request;

/// Most client calls in progress on one node at once.
pub const MAX_CLIENT_CALLS: usize = 4096;

/// Path prefix of the peers-only service.
const PEER_SERVICE: &str = "/flotilla.v1.RaftService/";

/// See the module docs. `CI` is the transport's own connection info.
pub struct CallsLayer<CI> {
    permits: Arc<Semaphore>,
    max: usize,
    _conn: PhantomData<fn() -> CI>,
}

impl<CI> CallsLayer<CI> {
    /// At most `max` client calls in progress at once.
    pub fn new(max: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max)),
            max,
            _conn: PhantomData,
        }
    }
}

impl<CI> Clone for CallsLayer<CI> {
    fn clone(&self) -> Self {
        Self {
            permits: self.permits.clone(),
            max: self.max,
            _conn: PhantomData,
        }
    }
}

impl<S, CI> tower::Layer<S> for CallsLayer<CI> {
    type Service = Calls<S, CI>;

    fn layer(&self, inner: S) -> Self::Service {
        Calls {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`CallsLayer`] wraps around the node's services.
pub struct Calls<S, CI> {
    inner: S,
    layer: CallsLayer<CI>,
}

impl<S: Clone, CI> Clone for Calls<S, CI> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S, CI> tower::Service<http::Request<Body>> for Calls<S, CI>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    CI: Clone + Send + Sync + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<Body>) -> Self::Future {
        let conn = req.extensions().get::<ConnInfo<CI>>().cloned();
        let open = conn.map(|conn| {
            // The transport's own info, where tonic's `Request::remote_addr` looks for it.
            req.extensions_mut().insert(conn.inner);
            conn.activity.call()
        });
        let permit = if req.uri().path().starts_with(PEER_SERVICE) {
            None
        } else {
            match self.layer.permits.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    let busy = Status::from(ApiError::Overloaded(self.layer.max));
                    return Box::pin(std::future::ready(Ok(busy.into_http())));
                }
            }
        };
        // The clone is the one that was polled ready (tower's rule for `call`).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let response = inner.call(req).await?;
            drop::<Option<OwnedSemaphorePermit>>(permit);
            Ok(finish(response, open))
        })
    }
}

/// The reply as sent: a request that did not decode becomes `INVALID_ARGUMENT`, and the body
/// holds the connection's [`OpenCall`] until it ends.
fn finish(response: http::Response<Body>, open: Option<OpenCall>) -> http::Response<Body> {
    // Only a reply that failed before its body ("trailers-only") carries its status in headers.
    if let Some(status) = Status::from_header_map(response.headers())
        && let Some(e) = undecodable_request(&status)
    {
        return Status::from(e).into_http();
    }
    match open {
        Some(open) => response.map(|body| Body::new(Tracked { body, _open: open })),
        None => response,
    }
}

/// A reply body that keeps its call open until it is done or dropped.
struct Tracked {
    body: Body,
    _open: OpenCall,
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::Layer as _;
    use tower::Service as _;
    use tower::ServiceExt as _;

    use super::*;

    /// A service that answers every call with `reply` once `release` is notified.
    #[derive(Clone)]
    struct Stub {
        reply: fn() -> http::Response<Body>,
        release: Arc<tokio::sync::Notify>,
    }

    impl tower::Service<http::Request<Body>> for Stub {
        type Response = http::Response<Body>;
        type Error = Infallible;
        type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<Body>) -> Self::Future {
            let (reply, release) = (self.reply, self.release.clone());
            Box::pin(async move {
                release.notified().await;
                Ok(reply())
            })
        }
    }

    fn request(path: &str) -> http::Request<Body> {
        http::Request::builder().uri(path).body(Body::empty()).unwrap()
    }

    fn code(response: &http::Response<Body>) -> tonic::Code {
        Status::from_header_map(response.headers()).map_or(tonic::Code::Ok, |s| s.code())
    }

    #[tokio::test]
    async fn client_calls_past_the_limit_are_refused_at_once_but_peer_calls_pass() {
        let release = Arc::new(tokio::sync::Notify::new());
        let stub = Stub {
            reply: || http::Response::new(Body::empty()),
            release: release.clone(),
        };
        let mut svc = CallsLayer::<()>::new(2).layer(stub);
        let client = "/flotilla.v1.QueueService/Submit";
        let held: Vec<_> = (0..2)
            .map(|_| {
                let mut svc = svc.clone();
                tokio::spawn(async move { svc.ready().await.unwrap().call(request(client)).await })
            })
            .collect();
        tokio::task::yield_now().await;
        let refused = svc.ready().await.unwrap().call(request(client)).await.unwrap();
        assert_eq!(code(&refused), tonic::Code::Unavailable);
        let peer = svc
            .ready()
            .await
            .unwrap()
            .call(request("/flotilla.v1.RaftService/Vote"));
        release.notify_waiters();
        for h in held {
            assert_eq!(code(&h.await.unwrap().unwrap()), tonic::Code::Ok);
        }
        release.notify_one();
        assert_eq!(code(&peer.await.unwrap()), tonic::Code::Ok);
        // The permits came back.
        release.notify_one();
        let again = svc.ready().await.unwrap().call(request(client)).await.unwrap();
        assert_eq!(code(&again), tonic::Code::Ok);
    }

    #[tokio::test]
    async fn a_request_that_does_not_decode_is_invalid_argument_not_internal() {
        let release = Arc::new(tokio::sync::Notify::new());
        let undecodable = Stub {
            reply: || Status::internal("failed to decode Protobuf message: invalid wire type").into_http(),
            release: release.clone(),
        };
        let mut svc = CallsLayer::<()>::new(8).layer(undecodable);
        release.notify_one();
        let reply = svc.ready().await.unwrap().call(request("/x")).await.unwrap();
        let status = Status::from_header_map(reply.headers()).unwrap();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().contains("invalid wire type"), "{status:?}");

        let fatal = Stub {
            reply: || Status::internal("raft stopped: disk").into_http(),
            release: release.clone(),
        };
        let mut svc = CallsLayer::<()>::new(8).layer(fatal);
        release.notify_one();
        let reply = svc.ready().await.unwrap().call(request("/x")).await.unwrap();
        assert_eq!(code(&reply), tonic::Code::Internal);
    }
}
