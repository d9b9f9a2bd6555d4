//! Operating tasks (docs/OPERATIONS.md, "Finding and acting on tasks"): find them
//! ([`Client::list_tasks`], [`Client::describe_task`]), retry dead ones ([`Client::retry`],
//! [`Client::retry_matching`]), cancel running ones ([`Client::revoke`]), and pause, resume and
//! purge queues. Reads need a token that reads; every change needs admin.
//!
//! ```no_run
//! # async fn demo(client: flotilla_client::Client) -> flotilla_client::Result<()> {
//! use flotilla_client::{TaskFilter, TaskState};
//! // Every dead task of queue `emails`, a page at a time, then retry them all.
//! let filter = TaskFilter::default().queue("emails").state(TaskState::Dead);
//! let mut cursor = None;
//! loop {
//!     let page = client.list_tasks(&filter, 100, cursor.as_deref()).await?;
//!     for t in &page.tasks {
//!         println!("{} {} {:?}", t.id.0, t.name, t.error);
//!     }
//!     match page.next_cursor {
//!         Some(next) => cursor = Some(next),
//!         None => break,
//!     }
//! }
//! let mut cursor = None;
//! loop {
//!     let done = client.retry_matching(&filter, 1000, cursor.as_deref()).await?;
//!     match done.next_cursor {
//!         Some(next) => cursor = Some(next),
//!         None => break,
//!     }
//! }
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;

use bytes::Bytes;
use flotilla_proto::v1 as pb;
use flotilla_proto::v1::ops_service_client::OpsServiceClient;
use serde::Serialize;

use crate::client::{Client, with_timeout};
use crate::error::{ClientError, Result};
use crate::info::{TaskInfo, TaskState};
use crate::task::TaskId;

/// Which tasks a listing (or a retry by filter) covers; the default covers every task.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskFilter {
    /// Only this queue.
    pub queue: Option<String>,
    /// Only tasks in one of these states; empty: any state.
    pub states: Vec<TaskState>,
    /// Only tasks of this name.
    pub name: Option<String>,
    /// Only tasks created at or after this time (ms since the Unix epoch).
    pub created_from_unix_ms: Option<u64>,
    /// Only tasks created before this time (ms since the Unix epoch).
    pub created_before_unix_ms: Option<u64>,
}

impl TaskFilter {
    /// Only queue `queue`.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Also tasks in state `state` (the first call narrows to it).
    pub fn state(mut self, state: TaskState) -> Self {
        self.states.push(state);
        self
    }

    /// Only tasks named `name`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    fn to_wire(&self) -> Result<pb::TaskFilter> {
        let states = self
            .states
            .iter()
            .map(|s| state_pb(*s).map(|s| s as i32))
            .collect::<Result<_>>()?;
        Ok(pb::TaskFilter {
            queue: self.queue.clone().unwrap_or_default(),
            states,
            name: self.name.clone().unwrap_or_default(),
            created_from_unix_ms: self.created_from_unix_ms.unwrap_or(0),
            created_before_unix_ms: self.created_before_unix_ms.unwrap_or(0),
        })
    }
}

fn state_pb(s: TaskState) -> Result<pb::TaskState> {
    Ok(match s {
        TaskState::Scheduled => pb::TaskState::Scheduled,
        TaskState::Waiting => pb::TaskState::Waiting,
        TaskState::Pending => pb::TaskState::Pending,
        TaskState::Leased => pb::TaskState::Leased,
        TaskState::Retrying => pb::TaskState::Retrying,
        TaskState::Succeeded => pb::TaskState::Succeeded,
        TaskState::Dead => pb::TaskState::Dead,
        TaskState::Cancelled => pb::TaskState::Cancelled,
        TaskState::NotFound | TaskState::Unknown => {
            return Err(ClientError::InvalidArgument(format!(
                "tasks are not listed by state {s}"
            )));
        }
    })
}

/// One page of [`Client::list_tasks`].
#[derive(Clone, Debug, PartialEq)]
pub struct TaskPage {
    /// Matching tasks, newest first, without results (see [`Client::describe_task`]).
    pub tasks: Vec<TaskInfo>,
    /// Pass it to the next call to continue; `None`: nothing older is left to examine. A page
    /// may hold fewer tasks than asked for (even none) and still have a next one.
    pub next_cursor: Option<String>,
    /// Tasks the node examined for this page.
    pub scanned: u64,
}

/// Everything the cluster holds of one task ([`Client::describe_task`]).
#[derive(Clone, Debug, PartialEq)]
pub struct TaskDetail {
    pub task: TaskInfo,
    /// The pool holding its lease now (`node-N` or a remote worker's name), while leased.
    pub holder: Option<String>,
    /// Leased: the lease's deadline; scheduled or retrying: when it becomes pending; final:
    /// when it is forgotten (ms since the Unix epoch).
    pub timer_unix_ms: Option<u64>,
    /// Failed attempts counted against `max_retries`.
    pub failures: u32,
    /// Leases lost to a worker that died.
    pub lost_leases: u32,
    pub priority: u32,
    /// The arguments (JSON).
    pub args: Bytes,
    pub headers: BTreeMap<String, String>,
    pub idempotency_key: Option<String>,
    pub retry_backoff_ms: u64,
    pub time_limit_ms: Option<u64>,
    pub result_ttl_ms: u64,
    /// The latest progress a worker reported (JSON), with its attempt and time.
    pub progress: Option<Progress>,
    /// Its last attempts (at most 16), oldest first; empty for a task that never ran or ran
    /// before the cluster recorded attempts.
    pub attempts: Vec<crate::Attempt>,
}

/// Progress reported by a running task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// The worker's JSON, as text.
    pub data: String,
    pub attempt: u32,
    pub at_unix_ms: u64,
}

/// What [`Client::retry_matching`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetryPage {
    /// The tasks requeued by this call.
    pub retried: Vec<TaskId>,
    /// Pass it to the next call to continue; `None`: no older task is left to examine.
    pub next_cursor: Option<String>,
}

/// What [`Client::revoke`] did to one task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokeOutcome {
    /// It was waiting: cancelled before it ran.
    Cancelled,
    /// It was running: cancelled, and its worker told to abort it.
    Terminated,
    /// Nothing changed: it ended already, is unknown, or runs and `terminate` was not asked.
    Unchanged,
}

impl RevokeOutcome {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            RevokeOutcome::Cancelled => "cancelled",
            RevokeOutcome::Terminated => "terminated",
            RevokeOutcome::Unchanged => "unchanged",
        }
    }
}

type Stub = OpsServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, crate::token::BearerToken>,
>;

fn stub(client: &Client, node: usize) -> Stub {
    OpsServiceClient::new(client.channel(node))
}

fn cursor(next: String) -> Option<String> {
    (!next.is_empty()).then_some(next)
}

impl Client {
    /// A page of the tasks `filter` matches, newest first: at most `page_size` (1 to 1000),
    /// starting at `cursor` (a previous page's `next_cursor`; `None`: the newest task).
    pub async fn list_tasks(
        &self,
        filter: &TaskFilter,
        page_size: u32,
        cursor: Option<&str>,
    ) -> Result<TaskPage> {
        let request = pb::ListTasksRequest {
            filter: Some(filter.to_wire()?),
            page_size,
            cursor: cursor.unwrap_or_default().to_owned(),
            stale_ok: false,
        };
        let reply = self
            .unary_on(stub, None, |mut c, t| {
                let r = with_timeout(request.clone(), t);
                async move { c.list_tasks(r).await }
            })
            .await?;
        Ok(TaskPage {
            tasks: reply.tasks.into_iter().map(TaskInfo::from).collect(),
            next_cursor: self::cursor(reply.next_cursor),
            scanned: reply.scanned,
        })
    }

    /// Everything the cluster holds of task `id`: its attempt, holder, last error, latest
    /// progress, args and headers. [`ClientError::NotFound`] if it does not exist (any more).
    pub async fn describe_task(&self, id: TaskId) -> Result<TaskDetail> {
        let request = pb::DescribeTaskRequest {
            id: id.0,
            stale_ok: false,
        };
        let r = self
            .unary_on(stub, Some(id), |mut c, t| async move {
                c.describe_task(with_timeout(request, t)).await
            })
            .await?;
        let wire = r
            .task
            .ok_or_else(|| ClientError::protocol("describe reply without a task"))?;
        let progress = (!wire.progress.is_empty()).then(|| Progress {
            data: String::from_utf8_lossy(&wire.progress).into_owned(),
            attempt: wire.progress_attempt,
            at_unix_ms: wire.progress_unix_ms,
        });
        Ok(TaskDetail {
            task: TaskInfo::from(wire),
            holder: (!r.holder.is_empty()).then_some(r.holder),
            timer_unix_ms: (r.timer_unix_ms > 0).then_some(r.timer_unix_ms),
            failures: r.failures,
            lost_leases: r.lost_leases,
            priority: r.priority,
            args: r.args,
            headers: r.headers.into_iter().collect(),
            idempotency_key: (!r.idempotency_key.is_empty()).then_some(r.idempotency_key),
            retry_backoff_ms: r.retry_backoff_ms,
            time_limit_ms: (r.time_limit_ms > 0).then_some(r.time_limit_ms),
            result_ttl_ms: r.result_ttl_ms,
            progress,
            attempts: r.attempts.into_iter().map(crate::Attempt::from).collect(),
        })
    }

    /// Requeues dead or cancelled tasks with a fresh retry budget (admin): per id, whether this
    /// call requeued it.
    pub async fn retry(&self, ids: impl IntoIterator<Item = TaskId>) -> Result<Vec<bool>> {
        let request = pb::RetryRequest {
            ids: ids.into_iter().map(|id| id.0).collect(),
            ..Default::default()
        };
        if request.ids.is_empty() {
            return Ok(Vec::new());
        }
        let reply = self
            .unary_on(stub, None, |mut c, t| {
                let r = with_timeout(request.clone(), t);
                async move { c.retry(r).await }
            })
            .await?;
        Ok(reply.retried)
    }

    /// Requeues up to `limit` (1 to 1000) of the tasks `filter` matches (its states: dead, the
    /// default, or cancelled), from `cursor` on (admin). Call again with the `next_cursor`
    /// until it is `None` to retry them all.
    pub async fn retry_matching(
        &self,
        filter: &TaskFilter,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<RetryPage> {
        let request = pb::RetryRequest {
            ids: Vec::new(),
            filter: Some(filter.to_wire()?),
            limit,
            cursor: cursor.unwrap_or_default().to_owned(),
        };
        let reply = self
            .unary_on(stub, None, |mut c, t| {
                let r = with_timeout(request.clone(), t);
                async move { c.retry(r).await }
            })
            .await?;
        Ok(RetryPage {
            retried: reply.retried_ids.into_iter().map(TaskId).collect(),
            next_cursor: self::cursor(reply.next_cursor),
        })
    }

    /// Cancels tasks (admin); with `terminate`, running ones too: the pool or worker holding
    /// one aborts it, and its result is never recorded. `reason` (at most 256 bytes) becomes
    /// the error of what `terminate` cancels.
    pub async fn revoke(
        &self,
        ids: impl IntoIterator<Item = TaskId>,
        terminate: bool,
        reason: &str,
    ) -> Result<Vec<RevokeOutcome>> {
        let request = pb::RevokeRequest {
            ids: ids.into_iter().map(|id| id.0).collect(),
            terminate,
            reason: reason.to_owned(),
        };
        if request.ids.is_empty() {
            return Ok(Vec::new());
        }
        let reply = self
            .unary_on(stub, None, |mut c, t| {
                let r = with_timeout(request.clone(), t);
                async move { c.revoke(r).await }
            })
            .await?;
        reply
            .outcomes
            .into_iter()
            .map(|o| match pb::RevokeOutcome::try_from(o) {
                Ok(pb::RevokeOutcome::Cancelled) => Ok(RevokeOutcome::Cancelled),
                Ok(pb::RevokeOutcome::Terminated) => Ok(RevokeOutcome::Terminated),
                Ok(pb::RevokeOutcome::Unchanged) => Ok(RevokeOutcome::Unchanged),
                _ => Err(ClientError::protocol(format!("revoke outcome {o} is unknown"))),
            })
            .collect()
    }

    /// Stops leasing from `queue` (admin): its tasks wait, running ones finish.
    pub async fn pause_queue(&self, queue: &str) -> Result<()> {
        let request = pb::PauseQueueRequest {
            queue: queue.to_owned(),
        };
        self.unary_on(stub, None, |mut c, t| {
            let r = with_timeout(request.clone(), t);
            async move { c.pause_queue(r).await }
        })
        .await
        .map(|_| ())
    }

    /// Leases from a paused `queue` again (admin).
    pub async fn resume_queue(&self, queue: &str) -> Result<()> {
        let request = pb::ResumeQueueRequest {
            queue: queue.to_owned(),
        };
        self.unary_on(stub, None, |mut c, t| {
            let r = with_timeout(request.clone(), t);
            async move { c.resume_queue(r).await }
        })
        .await
        .map(|_| ())
    }

    /// Cancels every scheduled, pending and retrying task of `queue` (admin); how many.
    pub async fn purge_queue(&self, queue: &str) -> Result<u64> {
        let request = pb::PurgeQueueRequest {
            queue: queue.to_owned(),
        };
        let reply = self
            .unary_on(stub, None, |mut c, t| {
                let r = with_timeout(request.clone(), t);
                async move { c.purge_queue(r).await }
            })
            .await?;
        Ok(reply.purged)
    }
}
