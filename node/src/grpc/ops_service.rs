//! `flotilla.v1.OpsService`: operating tasks (docs/OPERATIONS.md, "Finding and acting on
//! tasks"). Finding reads this node's replica (`queue/state/listing.rs`), behind a read barrier
//! unless the caller accepts stale data; acting proposes `Retry`, `Revoke`, `Cancel`,
//! `PauseQueue` and `PurgeQueue` (`queue/state/operator.rs`). The auth layer lets readers list
//! and describe, and admins only act (`grpc/auth.rs`).
//!
//! A retry by filter is a listing followed by a `Retry` of the ids it found: the state machine
//! retries only those still dead (or cancelled) when the command applies, so a task that
//! changed in between is left alone, and one call retries at most [`MAX_RETRY_LIMIT`] tasks.

use flotilla_proto::v1 as pb;
use flotilla_proto::v1::ops_service_server::OpsService;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use super::queue_service::QueueApi;
use super::status::ApiError;
use crate::proposer::Proposer;
use crate::queue::AttemptEnd;
use crate::queue::AttemptView;
use crate::queue::MAX_REVOKE_REASON_LEN;
use crate::queue::Revoked;
use crate::queue::TaskId;
use crate::queue::TaskState;
use crate::queue::name::check_queue_name;
use crate::queue::ops;
use crate::queue::state::MAX_PAGE_SIZE;
use crate::queue::state::TaskDetail;
use crate::queue::state::TaskFilter;
use crate::queue::state::TaskPage;

/// Tasks in a page when the caller names no page size.
pub const DEFAULT_PAGE_SIZE: usize = 50;

/// Most tasks one page examines under the replica's read lock (~1 ms): past it the page ends
/// early and tells the caller where to continue.
pub const SCAN_BUDGET: usize = 10_000;

/// Tasks one retry by filter requeues when the caller names no limit.
pub const DEFAULT_RETRY_LIMIT: usize = 100;

/// Most tasks one retry by filter requeues.
pub const MAX_RETRY_LIMIT: usize = 1000;

/// The cursor's prefix: cursors are opaque to callers, and a later format can be told apart.
const CURSOR_PREFIX: &str = "v1.";

/// The operations service: reads go through the queue service's barrier.
#[derive(Clone)]
pub struct OpsApi {
    queue: QueueApi,
    proposer: Proposer,
}

impl OpsApi {
    pub fn new(queue: QueueApi, proposer: Proposer) -> Self {
        Self { queue, proposer }
    }

    async fn barrier_unless(&self, stale_ok: bool) -> Result<(), ApiError> {
        if stale_ok {
            Ok(())
        } else {
            self.queue.read_barrier().await
        }
    }

    fn page(&self, filter: &TaskFilter, cursor: Option<TaskId>, limit: usize) -> TaskPage {
        self.queue
            .replica()
            .read(|q| q.list_tasks(filter, cursor, limit, SCAN_BUDGET))
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::InvalidArgument(msg.into())
}

fn cursor_of(text: &str) -> Result<Option<TaskId>, ApiError> {
    if text.is_empty() {
        return Ok(None);
    }
    text.strip_prefix(CURSOR_PREFIX)
        .and_then(|id| id.parse::<TaskId>().ok())
        .map(Some)
        .ok_or_else(|| bad(format!("cursor '{text}' is not one this cluster gave out")))
}

fn cursor_text(next: Option<TaskId>) -> String {
    next.map(|id| format!("{CURSOR_PREFIX}{id}")).unwrap_or_default()
}

/// A state of a filter: `None` for `WAITING` (told apart by [`TaskFilter::waiting`]).
fn state_of(s: i32) -> Result<Option<TaskState>, ApiError> {
    Ok(Some(match pb::TaskState::try_from(s) {
        Ok(pb::TaskState::Waiting) => return Ok(None),
        Ok(pb::TaskState::Scheduled) => TaskState::Scheduled,
        Ok(pb::TaskState::Pending) => TaskState::Pending,
        Ok(pb::TaskState::Leased) => TaskState::Leased,
        Ok(pb::TaskState::Retrying) => TaskState::Retrying,
        Ok(pb::TaskState::Succeeded) => TaskState::Succeeded,
        Ok(pb::TaskState::Dead) => TaskState::Dead,
        Ok(pb::TaskState::Cancelled) => TaskState::Cancelled,
        Ok(pb::TaskState::Unspecified) | Err(_) => {
            return Err(bad(format!("task state {s} does not exist")));
        }
    }))
}

fn queue_of(queue: &str) -> Result<String, ApiError> {
    check_queue_name(queue).map_err(|e| bad(e.to_string()))?;
    Ok(queue.to_owned())
}

/// A filter of the wire, checked.
pub fn filter_of(f: Option<pb::TaskFilter>) -> Result<TaskFilter, ApiError> {
    let f = f.unwrap_or_default();
    let nonzero = |ms: u64| (ms > 0).then_some(ms);
    let states = f
        .states
        .iter()
        .map(|s| state_of(*s))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(TaskFilter {
        queue: (!f.queue.is_empty()).then(|| queue_of(&f.queue)).transpose()?,
        states: states.iter().flatten().copied().collect(),
        waiting: states.iter().any(Option::is_none),
        name: (!f.name.is_empty()).then_some(f.name),
        created_from_ms: nonzero(f.created_from_unix_ms),
        created_before_ms: nonzero(f.created_before_unix_ms),
    })
}

/// A task of a listing: results and progress left out (a page of 1,000 large results would be
/// a large reply; `DescribeTask` has them).
fn listed(view: crate::queue::TaskView) -> pb::TaskInfo {
    pb::TaskInfo {
        result: Default::default(),
        progress: Default::default(),
        progress_attempt: 0,
        progress_unix_ms: 0,
        ..view.into()
    }
}

fn detail_pb(d: TaskDetail) -> pb::DescribeTaskResponse {
    pb::DescribeTaskResponse {
        task: Some(d.view.into()),
        holder: d.holder.unwrap_or_default(),
        timer_unix_ms: d.timer_ms.unwrap_or(0),
        failures: d.failures,
        lost_leases: u32::from(d.lost_leases),
        priority: u32::from(d.priority),
        args: d.args,
        headers: d.headers.into_iter().collect(),
        idempotency_key: d.idempotency_key.unwrap_or_default(),
        retry_backoff_ms: d.backoff_ms,
        time_limit_ms: d.time_limit_ms.unwrap_or(0),
        result_ttl_ms: d.result_ttl_ms,
        attempts: d.attempts.into_iter().map(attempt_pb).collect(),
    }
}

fn attempt_pb(a: AttemptView) -> pb::Attempt {
    let (ended_unix_ms, end) = match a.ended {
        None => (0, pb::AttemptEnd::Unspecified),
        Some((at, how)) => (
            at,
            match how {
                AttemptEnd::Succeeded => pb::AttemptEnd::Succeeded,
                AttemptEnd::Failed { retryable: true } => pb::AttemptEnd::Failed,
                AttemptEnd::Failed { retryable: false } => pb::AttemptEnd::FailedFatal,
                AttemptEnd::LostLease => pb::AttemptEnd::LostLease,
                AttemptEnd::Released => pb::AttemptEnd::Released,
                AttemptEnd::Revoked => pb::AttemptEnd::Revoked,
            },
        ),
    };
    pb::Attempt {
        attempt: a.attempt,
        holder: a.holder,
        granted_unix_ms: a.granted_ms,
        ended_unix_ms,
        end: end as i32,
    }
}

fn outcome_pb(r: Revoked) -> i32 {
    let o = match r {
        Revoked::Cancelled => pb::RevokeOutcome::Cancelled,
        Revoked::Terminated => pb::RevokeOutcome::Terminated,
        Revoked::Unchanged => pb::RevokeOutcome::Unchanged,
    };
    o as i32
}

#[tonic::async_trait]
impl OpsService for OpsApi {
    async fn list_tasks(
        &self,
        request: Request<pb::ListTasksRequest>,
    ) -> Result<Response<pb::ListTasksResponse>, Status> {
        let req = request.into_inner();
        let filter = filter_of(req.filter)?;
        let cursor = cursor_of(&req.cursor)?;
        let size = match req.page_size as usize {
            0 => DEFAULT_PAGE_SIZE,
            n if n > MAX_PAGE_SIZE => {
                return Err(bad(format!("page size {n} is over the limit of {MAX_PAGE_SIZE}")).into());
            }
            n => n,
        };
        self.barrier_unless(req.stale_ok).await?;
        let page = self.page(&filter, cursor, size);
        Ok(Response::new(pb::ListTasksResponse {
            tasks: page.tasks.into_iter().map(listed).collect(),
            next_cursor: cursor_text(page.next_below),
            scanned: page.scanned,
        }))
    }

    async fn describe_task(
        &self,
        request: Request<pb::DescribeTaskRequest>,
    ) -> Result<Response<pb::DescribeTaskResponse>, Status> {
        let req = request.into_inner();
        self.barrier_unless(req.stale_ok).await?;
        let detail = self
            .queue
            .replica()
            .read(|q| q.describe(req.id))
            .ok_or(ApiError::NotFound(req.id))?;
        Ok(Response::new(detail_pb(detail)))
    }

    async fn retry(&self, request: Request<pb::RetryRequest>) -> Result<Response<pb::RetryResponse>, Status> {
        let req = request.into_inner();
        if !req.ids.is_empty() {
            self.queue.check_ids(req.ids.len())?;
            let retried = self
                .proposer
                .op(ops::Retry { ids: req.ids })
                .await
                .map_err(ApiError::from)?;
            return Ok(Response::new(pb::RetryResponse {
                retried,
                ..Default::default()
            }));
        }
        let mut filter = filter_of(req.filter)?;
        if filter.waiting {
            return Err(bad("only dead and cancelled tasks are retried, not waiting ones").into());
        }
        if filter.states.is_empty() {
            filter.states = vec![TaskState::Dead];
        }
        if let Some(s) = filter
            .states
            .iter()
            .find(|s| !matches!(s, TaskState::Dead | TaskState::Cancelled))
        {
            return Err(bad(format!("only dead and cancelled tasks are retried, not {s:?}")).into());
        }
        let limit = match req.limit as usize {
            0 => DEFAULT_RETRY_LIMIT,
            n if n > MAX_RETRY_LIMIT => {
                return Err(bad(format!("a retry limit of {n} is over {MAX_RETRY_LIMIT}")).into());
            }
            n => n,
        };
        let cursor = cursor_of(&req.cursor)?;
        // What the listing finds must include every task that died before the call.
        self.queue.read_barrier().await?;
        let page = self.page(&filter, cursor, limit);
        let ids: Vec<TaskId> = page.tasks.iter().map(|t| t.id).collect();
        let retried_ids = if ids.is_empty() {
            Vec::new()
        } else {
            let flags = self
                .proposer
                .op(ops::Retry { ids: ids.clone() })
                .await
                .map_err(ApiError::from)?;
            ids.into_iter()
                .zip(flags)
                .filter_map(|(id, ok)| ok.then_some(id))
                .collect()
        };
        Ok(Response::new(pb::RetryResponse {
            retried: Vec::new(),
            retried_ids,
            next_cursor: cursor_text(page.next_below),
        }))
    }

    async fn revoke(
        &self,
        request: Request<pb::RevokeRequest>,
    ) -> Result<Response<pb::RevokeResponse>, Status> {
        let req = request.into_inner();
        self.queue.check_ids(req.ids.len())?;
        if req.reason.len() > MAX_REVOKE_REASON_LEN {
            return Err(bad(format!("a reason is limited to {MAX_REVOKE_REASON_LEN} bytes")).into());
        }
        if req.ids.is_empty() {
            return Ok(Response::new(pb::RevokeResponse::default()));
        }
        let outcomes: Vec<Revoked> = if req.terminate {
            self.proposer
                .op(ops::Revoke {
                    ids: req.ids,
                    reason: req.reason,
                })
                .await
                .map_err(ApiError::from)?
        } else {
            // Without terminate this is the old `Cancel` (entry format 1): a running task is
            // left alone. The reason is not kept (`Cancel` has none).
            let flags = self
                .proposer
                .op(ops::Cancel { ids: req.ids })
                .await
                .map_err(ApiError::from)?;
            flags
                .into_iter()
                .map(|c| if c { Revoked::Cancelled } else { Revoked::Unchanged })
                .collect()
        };
        Ok(Response::new(pb::RevokeResponse {
            outcomes: outcomes.into_iter().map(outcome_pb).collect(),
        }))
    }

    async fn pause_queue(
        &self,
        request: Request<pb::PauseQueueRequest>,
    ) -> Result<Response<pb::PauseQueueResponse>, Status> {
        let queue = queue_of(&request.into_inner().queue)?;
        self.proposer
            .op(ops::PauseQueue { queue, paused: true })
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::PauseQueueResponse {}))
    }

    async fn resume_queue(
        &self,
        request: Request<pb::ResumeQueueRequest>,
    ) -> Result<Response<pb::ResumeQueueResponse>, Status> {
        let queue = queue_of(&request.into_inner().queue)?;
        self.proposer
            .op(ops::PauseQueue { queue, paused: false })
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::ResumeQueueResponse {}))
    }

    async fn purge_queue(
        &self,
        request: Request<pb::PurgeQueueRequest>,
    ) -> Result<Response<pb::PurgeQueueResponse>, Status> {
        let queue = queue_of(&request.into_inner().queue)?;
        let purged = self
            .proposer
            .op(ops::PurgeQueue { queue })
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::PurgeQueueResponse { purged }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_strangers_are_refused() {
        assert_eq!(cursor_of("").unwrap(), None);
        assert_eq!(cursor_of(&cursor_text(Some(42))).unwrap(), Some(42));
        assert_eq!(cursor_text(None), "");
        for bad in ["42", "v1.", "v1.x", "v2.5", "v1.-3"] {
            assert!(cursor_of(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn filters_are_checked() {
        let f = filter_of(Some(pb::TaskFilter {
            queue: "emails".into(),
            states: vec![pb::TaskState::Dead as i32],
            name: "send".into(),
            created_from_unix_ms: 5,
            created_before_unix_ms: 0,
        }))
        .unwrap();
        assert_eq!(f.queue.as_deref(), Some("emails"));
        assert_eq!(f.states, vec![TaskState::Dead]);
        assert!(!f.waiting);
        assert_eq!((f.created_from_ms, f.created_before_ms), (Some(5), None));
        // WAITING is a flag of its own beside the table's states.
        let waiting = filter_of(Some(pb::TaskFilter {
            states: vec![pb::TaskState::Waiting as i32, pb::TaskState::Scheduled as i32],
            ..Default::default()
        }))
        .unwrap();
        assert_eq!(
            (waiting.states, waiting.waiting),
            (vec![TaskState::Scheduled], true)
        );
        assert_eq!(filter_of(None).unwrap(), TaskFilter::default());
        for bad in [0, 9] {
            let bad_state = pb::TaskFilter {
                states: vec![bad],
                ..Default::default()
            };
            assert!(filter_of(Some(bad_state)).is_err(), "{bad}");
        }
        let bad_queue = pb::TaskFilter {
            queue: "no spaces".into(),
            ..Default::default()
        };
        assert!(filter_of(Some(bad_queue)).is_err());
    }
}
