//! Waiting for many tasks: the id list is split into chunks, each chunk is one resumable
//! `WaitResults` stream, and the chunks' streams are merged.
//!
//! A chunk remembers which of its ids are still unreported. When its stream breaks with a
//! transient failure (or ends early), it is reopened on the next node for exactly those ids,
//! with the time left, so every id is reported once however often nodes fail.

use std::collections::BTreeSet;
use std::time::Duration;

use flotilla_proto::v1 as pb;
use futures::{Stream, StreamExt};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tonic::Streaming;

use crate::client::{Client, describe, final_error, with_timeout};
use crate::error::{ClientError, Result};
use crate::info::TaskInfo;
use crate::retry::{Backoff, is_transient};

/// How long past the wait's deadline a silent node is given to end the stream itself.
const DEADLINE_GRACE: Duration = Duration::from_secs(1);

/// Stands in for "no timeout" when the caller's timeout does not fit an `Instant`.
pub(crate) const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

pub(crate) fn wait_many(
    client: Client,
    ids: Vec<u64>,
    timeout: Duration,
) -> impl Stream<Item = Result<TaskInfo>> + Send + 'static {
    wait_many_signalled(client, ids, timeout, None)
}

/// [`wait_many`], telling `opened` once the first chunk's first attempt to open its stream has
/// ended (opened or not): the gathered waits (`wait_hub`) open one stream at a time.
pub(crate) fn wait_many_signalled(
    client: Client,
    ids: Vec<u64>,
    timeout: Duration,
    mut opened: Option<oneshot::Sender<()>>,
) -> impl Stream<Item = Result<TaskInfo>> + Send + 'static {
    let now = Instant::now();
    let deadline = now.checked_add(timeout).unwrap_or(now + FOREVER);
    let unique: BTreeSet<u64> = ids.into_iter().collect();
    let chunk_size = client.config().wait_chunk_size;
    let chunks = crate::client::chunked(unique, chunk_size).into_iter().map(|ids| {
        let chunk = Chunk {
            backoff: Backoff::new(&client.config().retry, now),
            node: client.current_node(),
            client: client.clone(),
            pending: ids.into_iter().collect(),
            deadline,
            stream: None,
            done: false,
            opened: opened.take(),
        };
        Box::pin(futures::stream::unfold(chunk, |mut chunk| async move {
            chunk.next().await.map(|item| (item, chunk))
        }))
    });
    // Each chunk ends with its own timeout error; the caller hears of the timeout once.
    let mut timed_out = false;
    futures::stream::select_all(chunks).filter(move |item| {
        let repeat = matches!(item, Err(ClientError::Timeout)) && std::mem::replace(&mut timed_out, true);
        std::future::ready(!repeat)
    })
}

/// One chunk of ids and the stream (if open) that reports them.
struct Chunk {
    client: Client,
    /// Ids not reported yet.
    pending: BTreeSet<u64>,
    deadline: Instant,
    stream: Option<Streaming<pb::TaskInfo>>,
    node: usize,
    backoff: Backoff,
    /// Set after a final error: the chunk yields nothing more.
    done: bool,
    /// Told when the first attempt to open a stream ends.
    opened: Option<oneshot::Sender<()>>,
}

impl Chunk {
    /// The next report of this chunk, or `None` when every id was reported or it failed.
    async fn next(&mut self) -> Option<Result<TaskInfo>> {
        while !self.done && !self.pending.is_empty() {
            let give_up_at = self.deadline + DEADLINE_GRACE;
            if self.stream.is_none() {
                let opening = self.open().await;
                if let Some(opened) = self.opened.take() {
                    let _ = opened.send(());
                }
                match opening {
                    Ok(stream) => self.stream = Some(stream),
                    Err(Step::Retry(failure)) => {
                        if let Err(e) = self.retry(failure).await {
                            return Some(self.fail(e));
                        }
                        continue;
                    }
                    Err(Step::Fail(e)) => return Some(self.fail(e)),
                }
            }
            let stream = self.stream.as_mut()?;
            let failure = match tokio::time::timeout_at(give_up_at, stream.message()).await {
                Err(_) => return Some(self.fail(ClientError::Timeout)),
                Ok(Ok(Some(info))) => {
                    // Ids not asked for, or already reported, are ignored.
                    if self.pending.remove(&info.id) {
                        self.backoff.reset(Instant::now());
                        return Some(Ok(TaskInfo::from(info)));
                    }
                    continue;
                }
                Ok(Ok(None)) => format!("stream ended with {} ids unreported", self.pending.len()),
                Ok(Err(status)) if is_transient(&status) => describe(&status),
                Ok(Err(status)) => return Some(self.fail(final_error(&status, None))),
            };
            self.stream = None;
            if let Err(e) = self.retry(failure).await {
                return Some(self.fail(e));
            }
        }
        None
    }

    /// Opens a stream for the pending ids on the current node, with the time left.
    async fn open(&mut self) -> std::result::Result<Streaming<pb::TaskInfo>, Step> {
        let now = Instant::now();
        let Some(left) = self.deadline.checked_duration_since(now).filter(|d| !d.is_zero()) else {
            return Err(Step::Fail(ClientError::Timeout));
        };
        // A live node answers at once (it only confirms its read index first).
        let config = self.client.config();
        let open_timeout = config.first_response_timeout.min(config.request_timeout);
        let request = pb::WaitResultsRequest {
            ids: self.pending.iter().copied().collect(),
            // Whole ms, rounded up: 0 would mean "no limit".
            timeout_ms: u64::try_from(left.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX),
        };
        // The grpc deadline covers the whole stream, so it is the wait's, not a request's.
        let mut grpc = self.client.grpc(self.node);
        let call = grpc.wait_results(with_timeout(request, left + DEADLINE_GRACE));
        match tokio::time::timeout(open_timeout, call).await {
            Ok(Ok(reply)) => Ok(reply.into_inner()),
            Ok(Err(status)) if is_transient(&status) => Err(Step::Retry(describe(&status))),
            Ok(Err(status)) => Err(Step::Fail(final_error(&status, None))),
            Err(_) => Err(Step::Retry(format!("no reply within {open_timeout:?}"))),
        }
    }

    /// Books a transient failure and waits out the backoff (never past the deadline).
    async fn retry(&mut self, failure: String) -> Result<()> {
        let next = self.client.retry_after(self.node, &mut self.backoff, failure);
        match tokio::time::timeout_at(self.deadline, next).await {
            Ok(next) => {
                self.node = next?;
                Ok(())
            }
            Err(_) => Err(ClientError::Timeout),
        }
    }

    fn fail(&mut self, e: ClientError) -> Result<TaskInfo> {
        self.done = true;
        self.stream = None;
        Err(e)
    }
}

/// What to do after a failed attempt to open a stream.
enum Step {
    Retry(String),
    Fail(ClientError),
}
