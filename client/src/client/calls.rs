//! The task and cluster calls of [`Client`]: submit, get, wait, cancel, stats, status and
//! member removal.

use std::sync::Arc;
use std::time::Duration;

use flotilla_proto::v1 as pb;
use futures::{Stream, StreamExt, TryStreamExt};
use tokio::time::Instant;

use super::{Client, chunked, with_timeout};
use crate::cluster::{ClusterStatus, QueueStats};
use crate::error::{ClientError, Result};
use crate::gather::SendItems;
use crate::info::{TaskInfo, TaskState};
use crate::task::{Submitted, TaskId, TaskRequest};
use crate::wait;
use crate::wait_hub::OpenStream;

impl Client {
    /// Submits one task and returns its id (the earlier task's id if its key was seen before).
    ///
    /// Concurrent calls on one client (or its clones) share requests: a call made while none
    /// is in flight is sent at once; calls made meanwhile go together as the next request, up
    /// to `max_batch_size` tasks. Each gets its own id or error: a request refused as a whole
    /// for bad input is sent again task by task, so only the task at fault fails.
    pub async fn submit(&self, task: TaskRequest) -> Result<TaskId> {
        if !self.config().gather {
            let submitted = self.submit_batch(vec![task]).await?;
            return submitted
                .first()
                .map(|s| s.id)
                .ok_or_else(|| ClientError::protocol("empty submit reply"));
        }
        let client = self.clone();
        let send: SendItems<pb::TaskSpec, Submitted> =
            Arc::new(move |tasks| Box::pin(client.clone().submit_specs(tasks)));
        let submitted = self
            .inner
            .submits
            .call(pb::TaskSpec::from(task), self.config().max_batch_size, send)
            .await?;
        Ok(submitted.id)
    }

    /// One submit request of `tasks` (a gathered one: see [`Client::submit`]).
    async fn submit_specs(self, tasks: Arc<Vec<pb::TaskSpec>>) -> Result<Vec<Submitted>> {
        let sent = tasks.len();
        let reply = self
            .unary(None, |mut c, t| {
                let r = with_timeout(
                    pb::SubmitRequest {
                        tasks: tasks.to_vec(),
                    },
                    t,
                );
                async move { c.submit(r).await }
            })
            .await?;
        submitted(reply, sent)
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
        submitted(reply, sent)
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
    ///
    /// Concurrent calls on one client (or its clones) share `WaitResults` streams: a call for
    /// an id no stream watches opens one at once when no other is being opened; calls made
    /// meanwhile open the next one together (at most `wait_chunk_size` ids).
    pub async fn wait(&self, id: TaskId, timeout: Duration) -> Result<TaskInfo> {
        if !self.config().gather {
            let mut results = std::pin::pin!(self.wait_many([id], timeout));
            return match results.next().await {
                Some(Ok(info)) if info.state == TaskState::NotFound => Err(ClientError::NotFound(id)),
                Some(result) => result,
                None => Err(ClientError::protocol("wait ended without a result")),
            };
        }
        let now = Instant::now();
        let deadline = now.checked_add(timeout).unwrap_or(now + wait::FOREVER);
        let client = self.clone();
        let open: OpenStream = Arc::new(move |ids, timeout, opened| {
            wait::wait_many_signalled(client.clone(), ids, timeout, Some(opened)).boxed()
        });
        let result = self
            .inner
            .waits
            .wait(id.0, deadline, self.config().wait_chunk_size, open);
        match tokio::time::timeout_at(deadline, result).await {
            Err(_) => Err(ClientError::Timeout),
            Ok(Err(_)) => Err(ClientError::protocol("wait ended without a result")),
            Ok(Ok(Ok(info))) if info.state == TaskState::NotFound => Err(ClientError::NotFound(id)),
            Ok(Ok(result)) => result,
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
}

/// A submit reply's results, one per task sent, or a protocol error.
fn submitted(reply: pb::SubmitResponse, sent: usize) -> Result<Vec<Submitted>> {
    if reply.results.len() != sent {
        return Err(ClientError::protocol(format!(
            "submit reply has {} results for {sent} tasks",
            reply.results.len()
        )));
    }
    Ok(reply.results.into_iter().map(Submitted::from).collect())
}
