//! [`TaskInfo`] and [`TaskState`]: a task as the cluster reports it.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Result;
use crate::task::TaskId;

/// Lifecycle state of a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Waiting for its ETA or countdown.
    Scheduled,
    /// A workflow task waiting for its parents: it becomes pending (or scheduled, if its own
    /// ETA is ahead) when they decide it, or is cancelled. A node that predates this state
    /// reports such a task as `Scheduled`.
    Waiting,
    /// Ready to be leased by a worker.
    Pending,
    /// Held by a worker under a lease.
    Leased,
    /// Failed; waiting out its backoff before it is pending again.
    Retrying,
    /// Finished with a result (final).
    Succeeded,
    /// Failed with no retries left (final).
    Dead,
    /// Cancelled before it ran (final).
    Cancelled,
    /// The id is unknown or its result expired (final; only reported by waits).
    NotFound,
    /// A state this client does not know (a newer server, or unspecified).
    Unknown,
}

impl TaskState {
    /// Whether the task will not change any more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskState::Succeeded | TaskState::Dead | TaskState::Cancelled | TaskState::NotFound
        )
    }

    /// The lowercase name, e.g. `"pending"` or `"not_found"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Scheduled => "scheduled",
            TaskState::Waiting => "waiting",
            TaskState::Pending => "pending",
            TaskState::Leased => "leased",
            TaskState::Retrying => "retrying",
            TaskState::Succeeded => "succeeded",
            TaskState::Dead => "dead",
            TaskState::Cancelled => "cancelled",
            TaskState::NotFound => "not_found",
            TaskState::Unknown => "unknown",
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A task as the cluster holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskInfo {
    /// Task id.
    pub id: TaskId,
    /// Task name (empty when `state` is [`TaskState::NotFound`]).
    pub name: String,
    /// Queue it is on.
    pub queue: String,
    /// Current state.
    pub state: TaskState,
    /// Attempts started so far (1 for the first run).
    pub attempt: u32,
    /// Retries allowed after the first attempt.
    pub max_retries: u32,
    /// The handler's JSON result (empty unless `state` is [`TaskState::Succeeded`]).
    pub result: Bytes,
    /// The last failure message, when an attempt failed.
    pub error: Option<String>,
    /// Submit time, ms since the Unix epoch (the leader's clock).
    pub created_unix_ms: u64,
    /// Time of the last state change, ms since the Unix epoch.
    pub updated_unix_ms: u64,
}

impl TaskInfo {
    /// A report for an id the cluster does not know.
    pub(crate) fn not_found(id: TaskId) -> Self {
        TaskInfo {
            id,
            name: String::new(),
            queue: String::new(),
            state: TaskState::NotFound,
            attempt: 0,
            max_retries: 0,
            result: Bytes::new(),
            error: None,
            created_unix_ms: 0,
            updated_unix_ms: 0,
        }
    }

    /// Decodes the JSON result as `T`.
    pub fn result_json<T: DeserializeOwned>(&self) -> Result<T> {
        Ok(serde_json::from_slice(&self.result)?)
    }

    /// The result as a JSON value, or `None` when there is none.
    pub fn result_value(&self) -> Option<Result<serde_json::Value>> {
        (!self.result.is_empty()).then(|| self.result_json())
    }

    /// Submit time.
    pub fn created_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.created_unix_ms)
    }

    /// Time of the last state change.
    pub fn updated_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.updated_unix_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_decode_as_json() {
        let mut t = TaskInfo::not_found(TaskId(3));
        assert!(t.result_value().is_none());
        t.result = Bytes::from_static(br#"{"sum": 5}"#);
        #[derive(serde::Deserialize)]
        struct Sum {
            sum: u32,
        }
        assert_eq!(t.result_json::<Sum>().unwrap().sum, 5);
        assert_eq!(t.result_value().unwrap().unwrap()["sum"], 5);
        t.result = Bytes::from_static(b"{oops");
        assert!(matches!(
            t.result_json::<Sum>(),
            Err(crate::ClientError::Serialization(_))
        ));
    }

    #[test]
    fn final_states_and_names() {
        let finals: Vec<_> = [
            TaskState::Scheduled,
            TaskState::Waiting,
            TaskState::Pending,
            TaskState::Leased,
            TaskState::Retrying,
            TaskState::Succeeded,
            TaskState::Dead,
            TaskState::Cancelled,
            TaskState::NotFound,
        ]
        .into_iter()
        .filter(|s| s.is_final())
        .map(TaskState::as_str)
        .collect();
        assert_eq!(finals, ["succeeded", "dead", "cancelled", "not_found"]);
        assert_eq!(
            serde_json::to_string(&TaskState::NotFound).unwrap(),
            r#""not_found""#
        );
    }
}
