//! [`TaskRegistry`]: task handlers by name. A handler is an async Rust function with serde-typed
//! arguments and result; the registry stores it type-erased, taking the task's raw JSON bytes
//! and giving back the attempt's [`Outcome`], so the worker never needs to know the types.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::queue::Outcome;

/// Why a handler failed. Retryable unless built with [`TaskError::fatal`]: most failures
/// (a timeout talking to something, a busy resource) are worth another attempt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TaskError {
    message: String,
    retryable: bool,
    /// Retry after this long instead of the task's backoff ([`TaskError::retry_after`]).
    retry_delay_ms: Option<u64>,
}

impl TaskError {
    /// A failure worth retrying (while the task has retries left).
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
            retry_delay_ms: None,
        }
    }

    /// A failure worth retrying after `delay` rather than after the task's backoff (a rate
    /// limit's `Retry-After`); the queue caps the delay at an hour.
    pub fn retry_after(message: impl Into<String>, delay: std::time::Duration) -> Self {
        Self {
            retry_delay_ms: Some(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)),
            ..Self::new(message)
        }
    }

    /// A failure that another attempt cannot fix: the task becomes dead at once.
    pub fn fatal(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
            retry_delay_ms: None,
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// The attempt's outcome for this failure.
    pub(crate) fn into_outcome(self) -> Outcome {
        match self.retry_delay_ms {
            Some(delay_ms) if self.retryable => Outcome::RetryAfter {
                error: self.message,
                delay_ms,
            },
            _ => Outcome::Failure {
                error: self.message,
                retry: self.retryable,
            },
        }
    }
}

impl From<String> for TaskError {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}

impl From<&str> for TaskError {
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}

/// The future a type-erased handler returns.
pub type HandlerFuture = BoxFuture<'static, Outcome>;

type ErasedHandler = Arc<dyn Fn(Bytes) -> HandlerFuture + Send + Sync>;

/// Handlers by task name. Built once at startup, then shared read-only (`Arc`) by the workers.
#[derive(Default, Clone)]
pub struct TaskRegistry {
    // BTreeMap: `names()` is sorted, so listings and error messages are stable.
    handlers: BTreeMap<String, ErasedHandler>,
}

impl std::fmt::Debug for TaskRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskRegistry")
            .field("names", &self.handlers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl TaskRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Register `handler` under `name`; a later registration of the same name replaces it.
    ///
    /// Arguments are decoded from the task's JSON (empty bytes decode as `null`, so tasks
    /// taking `()` or an `Option` need no arguments); the result is encoded as JSON.
    pub fn register<A, R, F, Fut>(&mut self, name: impl Into<String>, handler: F) -> &mut Self
    where
        A: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, TaskError>> + Send + 'static,
    {
        let name = name.into();
        let task_name: Arc<str> = Arc::from(name.as_str());
        let handler = Arc::new(handler);
        let erased: ErasedHandler = Arc::new(move |args: Bytes| {
            let task_name = task_name.clone();
            let handler = handler.clone();
            async move {
                let raw: &[u8] = if args.is_empty() { b"null" } else { &args };
                let args: A = match serde_json::from_slice(raw) {
                    Ok(args) => args,
                    Err(e) => {
                        return Outcome::Failure {
                            error: format!("invalid arguments for task '{task_name}': {e}"),
                            retry: false,
                        };
                    }
                };
                match handler(args).await {
                    Ok(result) => match serde_json::to_vec(&result) {
                        Ok(bytes) => Outcome::Success(Bytes::from(bytes)),
                        // The handler's own type cannot be encoded: retrying runs into it again.
                        Err(e) => Outcome::Failure {
                            error: format!("could not encode the result of task '{task_name}': {e}"),
                            retry: false,
                        },
                    },
                    Err(e) => e.into_outcome(),
                }
            }
            .boxed()
        });
        self.handlers.insert(name, erased);
        self
    }

    /// Register a handler that takes the raw JSON argument bytes and returns raw JSON result
    /// bytes, for handlers that pass data through or decode it themselves. Empty arguments are
    /// given as `null`, like to typed handlers. The result is not checked to be JSON.
    pub fn register_raw<F, Fut>(&mut self, name: impl Into<String>, handler: F) -> &mut Self
    where
        F: Fn(Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Bytes, TaskError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let erased: ErasedHandler = Arc::new(move |args: Bytes| {
            let args = if args.is_empty() {
                Bytes::from_static(b"null")
            } else {
                args
            };
            handler(args)
                .map(|result| match result {
                    Ok(bytes) => Outcome::Success(bytes),
                    Err(e) => e.into_outcome(),
                })
                .boxed()
        });
        self.handlers.insert(name.into(), erased);
        self
    }

    pub fn contains(&self, name: &str) -> bool {
        self.handlers.contains_key(name)
    }

    /// Registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.handlers.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.handlers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.handlers.is_empty()
    }

    /// The attempt as a future: decoding, the handler and encoding all happen when it is
    /// polled, so they run wherever it is spawned (the tokio runtime), not on the caller.
    /// An unknown name fails at once and for good: the gRPC layer refuses unknown names at
    /// submit, this is the second line for tasks submitted to a node with other handlers.
    pub fn call(&self, name: &str, args: Bytes) -> HandlerFuture {
        match self.handlers.get(name) {
            Some(handler) => handler(args),
            None => {
                let error = format!("unknown task name '{name}'");
                futures::future::ready(Outcome::Failure { error, retry: false }).boxed()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize)]
    struct Add {
        a: i64,
        b: i64,
    }

    fn registry() -> TaskRegistry {
        let mut r = TaskRegistry::new();
        r.register(
            "add",
            |args: Add| async move { Ok::<_, TaskError>(args.a + args.b) },
        )
        .register("unit", |_: ()| async { Ok::<_, TaskError>("done") })
        .register("flaky", |_: ()| async {
            Err::<(), _>(TaskError::new("try again"))
        })
        .register("broken", |_: ()| async {
            Err::<(), _>(TaskError::fatal("cannot work"))
        });
        r
    }

    fn run(r: &TaskRegistry, name: &str, args: &'static str) -> Outcome {
        futures::executor::block_on(r.call(name, Bytes::from_static(args.as_bytes())))
    }

    #[test]
    fn typed_arguments_and_result_round_trip_as_json() {
        assert_eq!(
            run(&registry(), "add", r#"{"a":2,"b":40}"#),
            Outcome::Success(Bytes::from_static(b"42"))
        );
    }

    #[test]
    fn empty_arguments_decode_as_null() {
        assert_eq!(
            run(&registry(), "unit", ""),
            Outcome::Success(Bytes::from_static(b"\"done\""))
        );
    }

    #[test]
    fn bad_arguments_fail_for_good_with_the_decode_message() {
        let Outcome::Failure { error, retry } = run(&registry(), "add", r#"{"a":"x"}"#) else {
            panic!("expected a failure");
        };
        assert!(!retry);
        assert!(
            error.starts_with("invalid arguments for task 'add': invalid type: string"),
            "{error}"
        );
    }

    #[test]
    fn unknown_name_fails_for_good_naming_it() {
        assert_eq!(
            run(&registry(), "nope", ""),
            Outcome::Failure {
                error: "unknown task name 'nope'".into(),
                retry: false
            }
        );
    }

    #[test]
    fn a_retry_delay_asks_for_its_own_retry_time() {
        let mut r = TaskRegistry::new();
        r.register("limited", |_: ()| async {
            Err::<(), _>(TaskError::retry_after("429", std::time::Duration::from_secs(30)))
        });
        assert_eq!(
            run(&r, "limited", ""),
            Outcome::RetryAfter {
                error: "429".into(),
                delay_ms: 30_000
            }
        );
    }

    #[test]
    fn task_errors_keep_their_retry_flag() {
        let r = registry();
        assert_eq!(
            run(&r, "flaky", ""),
            Outcome::Failure {
                error: "try again".into(),
                retry: true
            }
        );
        assert_eq!(
            run(&r, "broken", ""),
            Outcome::Failure {
                error: "cannot work".into(),
                retry: false
            }
        );
    }

    #[test]
    fn names_are_sorted_and_contains_matches() {
        let r = registry();
        assert!(r.names().eq(["add", "broken", "flaky", "unit"]));
        assert!(r.contains("add"));
        assert!(!r.contains("nope"));
    }
}
