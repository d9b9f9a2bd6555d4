//! A task's attempt history, as [`Client::describe_task`](crate::Client::describe_task) gives
//! it in [`TaskDetail::attempts`](crate::TaskDetail::attempts).

use flotilla_proto::v1 as pb;
use serde::Serialize;

/// One attempt of a task: which pool ran it, when, and how it ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Attempt {
    /// The attempt number (1, 2, ...).
    pub attempt: u32,
    /// The pool that held it: `node-N` (node N's own workers) or a remote worker's name.
    pub holder: String,
    /// When it was granted (ms since the Unix epoch).
    pub granted_unix_ms: u64,
    /// When it ended; `None` while it runs.
    pub ended_unix_ms: Option<u64>,
    /// How it ended; `None` while it runs.
    pub end: Option<AttemptEnd>,
}

/// How an attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttemptEnd {
    /// The handler returned a result.
    Succeeded,
    /// The handler failed retryably.
    Failed,
    /// The handler failed and asked not to be retried.
    FailedFatal,
    /// The lease ran out: the worker or its node was lost.
    LostLease,
    /// The pool gave it back unfinished.
    Released,
    /// An operator cancelled it while it ran.
    Revoked,
}

impl AttemptEnd {
    /// The name `flotilla get` shows: `succeeded`, `failed`, `failed-fatal`, `lost-lease`,
    /// `released`, `revoked`.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptEnd::Succeeded => "succeeded",
            AttemptEnd::Failed => "failed",
            AttemptEnd::FailedFatal => "failed-fatal",
            AttemptEnd::LostLease => "lost-lease",
            AttemptEnd::Released => "released",
            AttemptEnd::Revoked => "revoked",
        }
    }
}

impl From<pb::Attempt> for Attempt {
    fn from(a: pb::Attempt) -> Self {
        let end = match pb::AttemptEnd::try_from(a.end).unwrap_or(pb::AttemptEnd::Unspecified) {
            pb::AttemptEnd::Unspecified => None,
            pb::AttemptEnd::Succeeded => Some(AttemptEnd::Succeeded),
            pb::AttemptEnd::Failed => Some(AttemptEnd::Failed),
            pb::AttemptEnd::FailedFatal => Some(AttemptEnd::FailedFatal),
            pb::AttemptEnd::LostLease => Some(AttemptEnd::LostLease),
            pb::AttemptEnd::Released => Some(AttemptEnd::Released),
            pb::AttemptEnd::Revoked => Some(AttemptEnd::Revoked),
        };
        Attempt {
            attempt: a.attempt,
            holder: a.holder,
            granted_unix_ms: a.granted_unix_ms,
            ended_unix_ms: end.map(|_| a.ended_unix_ms),
            end,
        }
    }
}
