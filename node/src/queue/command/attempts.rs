//! A task's attempt history as a reader sees it (`DescribeTask`), and how an attempt ended.
//! The history is recorded by the state machine (`state/attempts.rs`) once the cluster has
//! applied [`Command::RecordAttempts`](super::Command::RecordAttempts) (entry format 10).

use serde::Deserialize;
use serde::Serialize;

use super::UnixMs;

/// Most attempts one task's history keeps: the oldest is dropped when a 17th starts.
pub const MAX_ATTEMPT_HISTORY: usize = 16;

/// How one attempt ended. Part of the snapshot (format 11): append variants, never reorder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttemptEnd {
    /// The handler returned a result.
    Succeeded,
    /// The handler failed; `retryable: false` made the task dead at once (a retryable failure
    /// may still have made it dead: its retries were used up).
    Failed { retryable: bool },
    /// The lease ran out (the worker or its node was lost).
    LostLease,
    /// The pool gave the task back unrun or unfinished (a draining or restarted pool).
    Released,
    /// An operator cancelled the running task (`cancel --terminate`). `Cancel` never ends a
    /// running attempt (it leaves leased tasks alone), so this is the one way an attempt is
    /// cancelled.
    Revoked,
}

impl AttemptEnd {
    /// A short name for tables and JSON: `succeeded`, `failed`, `failed-fatal`, `lost-lease`,
    /// `released`, `revoked`.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptEnd::Succeeded => "succeeded",
            AttemptEnd::Failed { retryable: true } => "failed",
            AttemptEnd::Failed { retryable: false } => "failed-fatal",
            AttemptEnd::LostLease => "lost-lease",
            AttemptEnd::Released => "released",
            AttemptEnd::Revoked => "revoked",
        }
    }
}

/// One attempt of a task, as `DescribeTask` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptView {
    /// The attempt number (the lease's fencing token).
    pub attempt: u32,
    /// The pool that held it: a node's own pool (`node-N`) or a remote worker's name.
    pub holder: String,
    /// When it was granted (the log's clock).
    pub granted_ms: UnixMs,
    /// When it ended and how; `None` while it runs.
    pub ended: Option<(UnixMs, AttemptEnd)>,
}
