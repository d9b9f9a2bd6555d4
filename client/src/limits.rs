//! Flow control (docs/LIMITS.md): [`Client::set_limit`] and [`Client::remove_limit`] (admin),
//! [`Client::limits`] to list them with what they hold back. A task carries a concurrency key
//! with [`TaskRequest::concurrency_key`](crate::TaskRequest::concurrency_key).
//!
//! ```no_run
//! # async fn demo(client: flotilla_client::Client) -> flotilla_client::Result<()> {
//! // At most 100 grants a second of `emails.send`, and two of them running at once.
//! client.set_limit("task:emails.send", Some("100/s"), Some(2)).await?;
//! // Each tenant (concurrency key) at most 5 running tasks.
//! client.set_limit("key:*", None, Some(5)).await?;
//! for l in client.limits().await? {
//!     println!("{} running {} held {}", l.scope, l.running, l.held);
//! }
//! # Ok(()) }
//! ```

use flotilla_proto::v1 as pb;
use flotilla_proto::v1::limit_service_client::LimitServiceClient;
use serde::Serialize;

use crate::client::{Client, with_timeout};
use crate::error::Result;

/// A limit as [`Client::limits`] lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LimitInfo {
    /// `queue:NAME`, `task:NAME`, `key:KEY` or `key:*`.
    pub scope: String,
    /// `N/s`, `N/m`, `N/h` or `N/d`; `None`: no rate.
    pub rate: Option<String>,
    /// Most tasks of the scope leased at once; `None`: no concurrency limit.
    pub concurrency: Option<u32>,
    /// Tasks of the scope leased now.
    pub running: u64,
    /// Pending tasks it holds back now.
    pub held: u64,
}

impl From<pb::LimitInfo> for LimitInfo {
    fn from(i: pb::LimitInfo) -> Self {
        let l = i.limit.unwrap_or_default();
        LimitInfo {
            scope: l.scope,
            rate: (!l.rate.is_empty()).then_some(l.rate),
            concurrency: l.concurrency,
            running: i.running,
            held: i.held,
        }
    }
}

type Stub = LimitServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, crate::token::BearerToken>,
>;

fn stub(client: &Client, node: usize) -> Stub {
    LimitServiceClient::new(client.channel(node))
}

impl Client {
    /// Sets (or replaces) the limit of `scope` (admin): a `rate` such as `100/s` or `10/m`,
    /// a `concurrency`, or both. Replacing a limit keeps its bucket's level.
    pub async fn set_limit(&self, scope: &str, rate: Option<&str>, concurrency: Option<u32>) -> Result<()> {
        let request = pb::SetLimitRequest {
            limit: Some(pb::Limit {
                scope: scope.to_owned(),
                rate: rate.unwrap_or_default().to_owned(),
                concurrency,
            }),
        };
        self.unary_on(stub, None, |mut c, t| {
            let r = with_timeout(request.clone(), t);
            async move { c.set_limit(r).await }
        })
        .await
        .map(|_| ())
    }

    /// Every limit, with the tasks it covers running now and the pending tasks it holds back.
    pub async fn limits(&self) -> Result<Vec<LimitInfo>> {
        let reply = self
            .unary_on(stub, None, |mut c, t| async move {
                c.list_limits(with_timeout(pb::ListLimitsRequest {}, t)).await
            })
            .await?;
        Ok(reply.limits.into_iter().map(LimitInfo::from).collect())
    }

    /// Removes the limit of `scope` (admin); whether there was one.
    pub async fn remove_limit(&self, scope: &str) -> Result<bool> {
        let request = pb::RemoveLimitRequest {
            scope: scope.to_owned(),
        };
        let reply = self
            .unary_on(stub, None, |mut c, t| {
                let r = with_timeout(request.clone(), t);
                async move { c.remove_limit(r).await }
            })
            .await?;
        Ok(reply.removed)
    }
}
