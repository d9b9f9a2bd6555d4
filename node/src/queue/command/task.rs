//! What a client submits ([`TaskSpec`], its headers) and what a task is to a reader: its
//! state, its view, the counts per queue.

use bytes::Bytes;
use serde::Deserialize;
use serde::Serialize;

use super::TaskId;
use super::UnixMs;

/// Headers given at submit and handed to the worker with each grant (trace context, Celery's
/// message headers): not interpreted by the cluster. Ordered, so every replica holds the same.
pub type Headers = std::collections::BTreeMap<String, String>;

/// Most headers one task may carry.
pub const MAX_HEADERS: usize = 64;

/// Most bytes one task's headers may take, names and values together: they are kept on every
/// replica with the task, and sent with every grant.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Why headers are refused at submit: over [`MAX_HEADERS`] or [`MAX_HEADER_BYTES`], or an empty
/// name. Checked where a submit enters (the gRPC edge), never by `apply`.
pub fn check_headers(headers: &Headers) -> Result<(), String> {
    if headers.len() > MAX_HEADERS {
        return Err(format!(
            "{} headers is over the limit of {MAX_HEADERS}",
            headers.len()
        ));
    }
    let bytes: usize = headers.iter().map(|(k, v)| k.len() + v.len()).sum();
    if bytes > MAX_HEADER_BYTES {
        return Err(format!(
            "headers of {bytes} bytes are over the limit of {MAX_HEADER_BYTES} bytes"
        ));
    }
    if headers.contains_key("") {
        return Err("a header name is empty".into());
    }
    Ok(())
}

/// A task to enqueue, as the client describes it. Its encoding (`command/wire.rs`) keeps the
/// bytes of entry format 1 for a spec without headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskSpec {
    pub name: String,
    /// Queue name; empty means [`DEFAULT_QUEUE`](super::DEFAULT_QUEUE).
    pub queue: String,
    /// JSON arguments for the handler.
    pub args: Bytes,
    /// Higher runs first within a queue.
    pub priority: u8,
    /// Earliest run time (absolute).
    pub eta_ms: Option<UnixMs>,
    /// Earliest run time relative to the applying entry's `now`.
    pub countdown_ms: Option<u64>,
    /// Retries after the first failed attempt.
    pub max_retries: u32,
    /// Base retry delay; attempt n (n ≥ 1) waits `backoff_ms * 2^(n-1)`, capped at
    /// [`MAX_BACKOFF_MS`].
    pub backoff_ms: u64,
    /// Hard limit of one attempt's run time, enforced by the worker.
    pub time_limit_ms: Option<u64>,
    /// Exactly-once enqueue: a key seen before returns the earlier task's id.
    pub idempotency_key: Option<String>,
    /// How long the task and its result are kept after it ends.
    pub result_ttl_ms: u64,
    /// Handed to the worker with each grant; bounded by [`check_headers`] at submit.
    pub headers: Headers,
    /// Concurrency key (a tenant id, say): limits of `key:` scopes apply to it, and keys take
    /// fair turns (`state/limits.rs`). At most [`MAX_CONCURRENCY_KEY_LEN`](super::MAX_CONCURRENCY_KEY_LEN) bytes, checked at
    /// the gRPC edge. Written in the log only when present (`command/wire.rs`).
    pub concurrency_key: Option<String>,
}

/// A task whose lease expires this many times (its worker died or was cut off each time) is
/// dead: it is probably what kills its workers. Lost leases do not use up `max_retries`, so a
/// node crash never costs a task one of its retries.
pub const MAX_LOST_LEASES: u8 = 5;

/// Upper bound of one retry delay.
pub const MAX_BACKOFF_MS: u64 = 60 * 60 * 1000;

/// What a submitted task became.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitted {
    pub id: TaskId,
    /// The idempotency key had been seen; no task was created.
    pub duplicate: bool,
}

/// Lifecycle state of a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TaskState {
    /// Waiting for its ETA.
    Scheduled,
    /// Ready to lease.
    Pending,
    /// Held by a worker.
    Leased,
    /// Failed, waiting out its backoff.
    Retrying,
    /// Final: finished with a result.
    Succeeded,
    /// Final: failed with no retries left, or not retryable.
    Dead,
    /// Final: cancelled before it ran, or while it ran (`Revoke`).
    Cancelled,
}

impl TaskState {
    /// Final states never change again (until the result expires and the task is purged).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskState::Succeeded | TaskState::Dead | TaskState::Cancelled
        )
    }
}

/// A read-only view of one task, for `GetTask`, `WaitResults` and tests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskView {
    pub id: TaskId,
    pub name: String,
    pub queue: String,
    pub state: TaskState,
    /// A workflow task waiting for its parents (its `state` is `Scheduled`): `WAITING` on the
    /// wire (`state/deps.rs`).
    pub waiting: bool,
    /// Attempts started so far.
    pub attempt: u32,
    pub max_retries: u32,
    pub result: Option<Bytes>,
    pub error: Option<String>,
    pub created_ms: UnixMs,
    pub updated_ms: UnixMs,
    /// The latest progress a worker reported, with its attempt and time.
    pub progress: Option<crate::queue::state::Progress>,
}

/// Counts of one queue's tasks by state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueCounts {
    pub scheduled: u64,
    pub pending: u64,
    pub leased: u64,
    pub retrying: u64,
    pub succeeded: u64,
    pub dead: u64,
    pub cancelled: u64,
    pub paused: bool,
}
