//! [`TaskRequest`]: a task to submit, built fluently; [`TaskId`] and [`Submitted`] for replies.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::entropy;
use crate::error::Result;

/// The header carrying a task's soft time limit in milliseconds (the node's
/// `flotilla_node::worker::SOFT_TIME_LIMIT_HEADER`; the Python SDK's too).
pub const SOFT_TIME_LIMIT_HEADER: &str = "flotilla-soft-time-limit-ms";

/// A task id, assigned by the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(pub u64);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for TaskId {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(TaskId)
    }
}

/// The outcome of one submitted task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Submitted {
    /// The task's id (the earlier task's id when `duplicate`).
    pub id: TaskId,
    /// True when the idempotency key had been seen and no new task was created.
    pub duplicate: bool,
}

/// A task to submit. Build one with [`crate::Client::task`] (or [`TaskRequest::new`]), then
/// chain setters; unset fields keep the server's defaults.
///
/// Every request carries an idempotency key from the moment it is built: a fresh random one
/// unless [`TaskRequest::idempotency_key`] sets another. Submitting the same request twice
/// (e.g. after an error whose reply was lost) therefore never creates a second task.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskRequest {
    pub(crate) name: String,
    pub(crate) queue: String,
    pub(crate) args: Bytes,
    pub(crate) priority: u8,
    pub(crate) eta_unix_ms: u64,
    pub(crate) countdown_ms: u64,
    pub(crate) max_retries: u32,
    pub(crate) retry_backoff_ms: u64,
    pub(crate) time_limit_ms: u64,
    pub(crate) idempotency_key: String,
    pub(crate) result_ttl_ms: u64,
    pub(crate) headers: std::collections::BTreeMap<String, String>,
    pub(crate) concurrency_key: String,
}

impl TaskRequest {
    /// A request for the registered task `name`, with a random idempotency key from this
    /// thread's generator. [`crate::Client::task`] uses the client's (seedable) generator instead.
    pub fn new(name: impl Into<String>) -> Self {
        Self::with_key(name, entropy::thread_idempotency_key())
    }

    /// Made inside a trace, the request carries its context (see [`crate::trace_context`]).
    pub(crate) fn with_key(name: impl Into<String>, idempotency_key: String) -> Self {
        let mut headers = std::collections::BTreeMap::new();
        crate::trace_context::inject_current(&mut headers);
        TaskRequest {
            name: name.into(),
            queue: String::new(),
            args: Bytes::from_static(b"null"),
            priority: 0,
            eta_unix_ms: 0,
            countdown_ms: 0,
            max_retries: 0,
            retry_backoff_ms: 0,
            time_limit_ms: 0,
            idempotency_key,
            result_ttl_ms: 0,
            headers,
            concurrency_key: String::new(),
        }
    }

    /// Arguments, serialized as JSON (the task handler deserializes them). Default: `null`.
    pub fn args<T: Serialize + ?Sized>(self, args: &T) -> Result<Self> {
        Ok(self.args_json(serde_json::to_vec(args)?))
    }

    /// Arguments as an already-encoded JSON document; cheap to reuse across many requests.
    pub fn args_json(mut self, json: impl Into<Bytes>) -> Self {
        self.args = json.into();
        self
    }

    /// The queue to put the task on (default: the server's "default" queue).
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// Higher runs first within a queue (default 0).
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = priority;
        self
    }

    /// Run no earlier than `at` (replaces any countdown). Times before the epoch mean now.
    pub fn eta(mut self, at: SystemTime) -> Self {
        self.eta_unix_ms = at.duration_since(UNIX_EPOCH).map(millis_ceil).unwrap_or(0);
        self.countdown_ms = 0;
        self
    }

    /// Run no earlier than `delay` after the cluster accepts the task (replaces any eta).
    pub fn countdown(mut self, delay: Duration) -> Self {
        self.countdown_ms = millis_ceil(delay);
        self.eta_unix_ms = 0;
        self
    }

    /// Retries after the first failed attempt (default 0: fail once and be dead).
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// Base delay before a retry; it doubles with each attempt (default: the node's).
    pub fn retry_backoff(mut self, backoff: Duration) -> Self {
        self.retry_backoff_ms = millis_ceil(backoff);
        self
    }

    /// Hard limit on one attempt's run time (default: the node's).
    pub fn time_limit(mut self, limit: Duration) -> Self {
        self.time_limit_ms = millis_ceil(limit);
        self
    }

    /// A soft time limit: the handler is told when it passes (a Rust handler through
    /// `flotilla_node::worker::soft_limit()`, a Python one by `SoftTimeLimitExceeded` raised in
    /// it), before the hard [`TaskRequest::time_limit`] fails the attempt. Sent as the header
    /// [`SOFT_TIME_LIMIT_HEADER`].
    pub fn soft_time_limit(self, limit: Duration) -> Self {
        self.header(SOFT_TIME_LIMIT_HEADER, millis_ceil(limit).max(1).to_string())
    }

    /// Replace the generated idempotency key with the caller's own.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = key.into();
        self
    }

    /// A header handed to the worker with the task (trace context, metadata of the caller's
    /// own); not interpreted by the cluster. The node takes up to 64 headers of 16 KiB in all.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// A concurrency key (a tenant id, say): `key:` limits count the tasks carrying it, and
    /// pending tasks of different keys are granted in fair turns (docs/LIMITS.md). At most
    /// 256 bytes.
    pub fn concurrency_key(mut self, key: impl Into<String>) -> Self {
        self.concurrency_key = key.into();
        self
    }

    /// How long the result is kept after the task ends (default: the node's).
    pub fn result_ttl(mut self, ttl: Duration) -> Self {
        self.result_ttl_ms = millis_ceil(ttl);
        self
    }

    /// The task name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The idempotency key this request will be submitted with.
    pub fn key(&self) -> &str {
        &self.idempotency_key
    }

    /// The encoded JSON arguments.
    pub fn args_bytes(&self) -> &Bytes {
        &self.args
    }
}

/// Whole milliseconds, rounded up: on the wire 0 means "default" or "now", so a non-zero
/// duration must not become 0, and a delay is never shortened.
fn millis_ceil(d: Duration) -> u64 {
    let ms = d.as_nanos().div_ceil(1_000_000);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setters_fill_the_request() {
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let r = TaskRequest::new("email.send")
            .args(&serde_json::json!({"to": "a@b"}))
            .unwrap()
            .queue("mail")
            .priority(5)
            .countdown(Duration::from_secs(9))
            .eta(at)
            .max_retries(3)
            .retry_backoff(Duration::from_millis(250))
            .time_limit(Duration::from_micros(1))
            .idempotency_key("k1")
            .result_ttl(Duration::from_secs(60));
        assert_eq!(r.name(), "email.send");
        assert_eq!(&r.args[..], br#"{"to":"a@b"}"#);
        assert_eq!((r.queue.as_str(), r.priority), ("mail", 5));
        assert_eq!((r.eta_unix_ms, r.countdown_ms), (1_700_000_000_123, 0));
        assert_eq!((r.max_retries, r.retry_backoff_ms), (3, 250));
        assert_eq!(r.time_limit_ms, 1, "a non-zero limit must not become the default");
        assert_eq!((r.key(), r.result_ttl_ms), ("k1", 60_000));
        let r = r.countdown(Duration::from_millis(1500));
        assert_eq!((r.eta_unix_ms, r.countdown_ms), (0, 1500));
    }

    #[test]
    fn a_soft_time_limit_is_a_header_in_whole_milliseconds() {
        let r = TaskRequest::new("x").soft_time_limit(Duration::from_micros(1_500));
        assert_eq!(r.headers[SOFT_TIME_LIMIT_HEADER], "2");
        let r = TaskRequest::new("x").soft_time_limit(Duration::ZERO);
        assert_eq!(
            r.headers[SOFT_TIME_LIMIT_HEADER], "1",
            "a zero limit is sent as 1 ms"
        );
    }

    #[test]
    fn new_requests_get_distinct_keys_and_null_args() {
        let (a, b) = (TaskRequest::new("noop"), TaskRequest::new("noop"));
        assert_ne!(a.key(), b.key());
        assert_eq!(a.key().len(), 32);
        assert_eq!(&a.args_bytes()[..], b"null");
    }

    #[test]
    fn task_ids_parse_and_print() {
        assert_eq!("42".parse::<TaskId>().unwrap(), TaskId(42));
        assert!("x".parse::<TaskId>().is_err());
        assert_eq!(TaskId(7).to_string(), "7");
    }
}
