//! `flotilla.v1.LimitService`: flow-control limits (`queue/state/limits.rs`, docs/LIMITS.md).
//! The text forms (`queue:emails`, `100/s`) are parsed here; the bounds are judged by the
//! state machine when the command applies, and a refusal comes back as this call's error.
//! Listing reads this node's replica behind a read barrier, like every read.

use flotilla_proto::v1 as pb;
use flotilla_proto::v1::limit_service_server::LimitService;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use super::queue_service::QueueApi;
use super::status::ApiError;
use crate::proposer::Proposer;
use crate::queue::LimitInfo;
use crate::queue::LimitRule;
use crate::queue::LimitScope;
use crate::queue::Rate;
use crate::queue::name::check_queue_name;
use crate::queue::ops;

/// The limit service: reads go through the queue service's barrier.
#[derive(Clone)]
pub struct LimitApi {
    queue: QueueApi,
    proposer: Proposer,
}

impl LimitApi {
    pub fn new(queue: QueueApi, proposer: Proposer) -> Self {
        Self { queue, proposer }
    }
}

fn scope(text: &str) -> Result<LimitScope, ApiError> {
    let scope: LimitScope = text.parse()?;
    if let LimitScope::Queue(q) = &scope {
        check_queue_name(q).map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
    }
    Ok(scope)
}

/// A limit of the wire as the state machine's scope and rule.
pub fn limit_of(l: pb::Limit) -> Result<(LimitScope, LimitRule), ApiError> {
    let rate = if l.rate.is_empty() {
        None
    } else {
        Some(l.rate.parse::<Rate>()?)
    };
    let rule = LimitRule {
        rate,
        concurrency: l.concurrency,
    };
    rule.check()?;
    Ok((scope(&l.scope)?, rule))
}

/// A limit as the wire shows it.
pub fn limit_pb(scope: &LimitScope, rule: &LimitRule) -> pb::Limit {
    pb::Limit {
        scope: scope.to_string(),
        rate: rule.rate.map(|r| r.to_string()).unwrap_or_default(),
        concurrency: rule.concurrency,
    }
}

fn info_pb(i: LimitInfo) -> pb::LimitInfo {
    pb::LimitInfo {
        limit: Some(limit_pb(&i.scope, &i.rule)),
        running: i.running,
        held: i.held,
    }
}

#[tonic::async_trait]
impl LimitService for LimitApi {
    async fn set_limit(
        &self,
        request: Request<pb::SetLimitRequest>,
    ) -> Result<Response<pb::SetLimitResponse>, Status> {
        let limit = request
            .into_inner()
            .limit
            .ok_or_else(|| ApiError::InvalidArgument("no limit in the request".into()))?;
        let (scope, rule) = limit_of(limit)?;
        self.proposer
            .op(ops::SetLimit { scope, rule })
            .await
            .map_err(ApiError::from)?
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::SetLimitResponse {}))
    }

    async fn list_limits(
        &self,
        _request: Request<pb::ListLimitsRequest>,
    ) -> Result<Response<pb::ListLimitsResponse>, Status> {
        self.queue.read_barrier().await?;
        let limits = self.queue.replica().read(|q| q.limits());
        Ok(Response::new(pb::ListLimitsResponse {
            limits: limits.into_iter().map(info_pb).collect(),
        }))
    }

    async fn remove_limit(
        &self,
        request: Request<pb::RemoveLimitRequest>,
    ) -> Result<Response<pb::RemoveLimitResponse>, Status> {
        let scope = scope(&request.into_inner().scope)?;
        let removed = self
            .proposer
            .op(ops::RemoveLimit { scope })
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::RemoveLimitResponse { removed }))
    }
}
