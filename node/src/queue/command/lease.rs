//! Leases and what names one: the fencing token ([`LeaseRef`]), a grant, a completion and
//! its outcome, progress reports, and what a revoke did.

use bytes::Bytes;
use serde::Deserialize;
use serde::Serialize;

use super::Headers;
use super::TaskId;
use super::UnixMs;

/// Most bytes of a [`Command::Revoke`](super::Command::Revoke) reason, checked where it enters (the gRPC edge).
pub const MAX_REVOKE_REASON_LEN: usize = 256;

/// What [`Command::Revoke`](super::Command::Revoke) did to one task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Revoked {
    /// It was waiting (scheduled, pending, retrying): cancelled before it ran.
    Cancelled,
    /// It was running: cancelled, its lease fenced, its pool told to abort it.
    Terminated,
    /// Final already, or unknown: nothing changed.
    Unchanged,
}

/// Most bytes of one progress report: a session writes the latest of each running task to
/// the log at most once per flush interval, so this bounds what a chatty worker costs.
pub const MAX_PROGRESS_BYTES: usize = 4 * 1024;

/// Progress of one attempt, as the worker sent it (JSON, at most [`MAX_PROGRESS_BYTES`],
/// checked where it enters).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressReport {
    pub lease: LeaseRef,
    pub data: Bytes,
}

/// Identifies one attempt of one task: the fencing token of a lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LeaseRef {
    pub task: TaskId,
    pub attempt: u32,
}

/// The result of one attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    pub lease: LeaseRef,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The handler returned this JSON result.
    Success(Bytes),
    /// The attempt failed. `retry: false` makes the task dead at once (bad arguments, unknown
    /// task name): retrying cannot help.
    Failure { error: String, retry: bool },
    /// The attempt failed retryably, and the worker asks for the retry after `delay_ms`
    /// (capped at [`MAX_BACKOFF_MS`](super::MAX_BACKOFF_MS) by `apply`) instead of the task's backoff: a rate limit's
    /// `Retry-After`. Entry format 4.
    RetryAfter { error: String, delay_ms: u64 },
}

impl Outcome {
    /// `(error, retryable)` of a failure; `None` for a success.
    pub fn failure(&self) -> Option<(&str, bool)> {
        match self {
            Outcome::Success(_) => None,
            Outcome::Failure { error, retry } => Some((error, *retry)),
            Outcome::RetryAfter { error, .. } => Some((error, true)),
        }
    }
}

/// A task handed to a worker by a `Lease`. Its encoding (`command/wire.rs`) keeps the bytes of
/// a grant without headers as they were before headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub lease: LeaseRef,
    pub name: String,
    pub queue: String,
    pub args: Bytes,
    pub time_limit_ms: Option<u64>,
    /// When the lease runs out unless heartbeated.
    pub lease_deadline_ms: UnixMs,
    /// The task's submit headers.
    pub headers: Headers,
}

/// Outcome of one completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompletionResult {
    /// Recorded: it changed the task's state.
    Accepted,
    /// The lease was not the task's current one (or the task is gone): nothing changed.
    Stale,
}
