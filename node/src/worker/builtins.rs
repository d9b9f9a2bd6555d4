//! Built-in tasks for trying a cluster out and benchmarking it: `noop`, `echo`, `sleep`, `fail`.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::registry::TaskError;
use super::registry::TaskRegistry;

/// Arguments of `sleep`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SleepArgs {
    pub ms: u64,
}

/// Arguments of `fail`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailArgs {
    pub message: String,
}

/// Register every built-in task.
pub fn register_builtins(registry: &mut TaskRegistry) {
    // `noop` ignores whatever it is given: it measures the queue's overhead, nothing else.
    registry.register("noop", |_: Value| async { Ok::<_, TaskError>(()) });
    // Raw, so the result is the argument bytes exactly (key order and spacing kept).
    registry.register_raw("echo", |args| async move { Ok::<_, TaskError>(args) });
    registry.register("sleep", |args: SleepArgs| async move {
        tokio::time::sleep(Duration::from_millis(args.ms)).await;
        Ok::<_, TaskError>(())
    });
    registry.register("fail", |args: FailArgs| async move {
        Err::<(), _>(TaskError::new(args.message))
    });
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::queue::Outcome;

    fn registry() -> TaskRegistry {
        let mut r = TaskRegistry::new();
        register_builtins(&mut r);
        r
    }

    async fn run(name: &str, args: &'static str) -> Outcome {
        registry().call(name, Bytes::from_static(args.as_bytes())).await
    }

    #[tokio::test]
    async fn noop_returns_null_whatever_its_arguments() {
        assert_eq!(
            run("noop", "").await,
            Outcome::Success(Bytes::from_static(b"null"))
        );
        assert_eq!(
            run("noop", "[1,2]").await,
            Outcome::Success(Bytes::from_static(b"null"))
        );
    }

    #[tokio::test]
    async fn echo_returns_its_arguments() {
        let args = r#"{"z": [1, "two", null], "a": {"c": true}}"#;
        assert_eq!(
            run("echo", args).await,
            Outcome::Success(Bytes::from_static(args.as_bytes()))
        );
        assert_eq!(
            run("echo", "").await,
            Outcome::Success(Bytes::from_static(b"null"))
        );
    }

    #[tokio::test]
    async fn sleep_waits_the_given_time() {
        let start = tokio::time::Instant::now();
        assert_eq!(
            run("sleep", r#"{"ms":50}"#).await,
            Outcome::Success(Bytes::from_static(b"null"))
        );
        assert!(start.elapsed() >= Duration::from_millis(50));
    }

    #[tokio::test]
    async fn sleep_rejects_missing_ms() {
        let Outcome::Failure { error, retry: false } = run("sleep", "{}").await else {
            panic!("expected a permanent failure");
        };
        assert!(error.contains("missing field `ms`"), "{error}");
    }

    #[tokio::test]
    async fn fail_fails_retryably_with_its_message() {
        assert_eq!(
            run("fail", r#"{"message":"boom"}"#).await,
            Outcome::Failure {
                error: "boom".into(),
                retry: true
            }
        );
    }

    #[test]
    fn all_builtins_are_registered() {
        assert!(registry().names().eq(["echo", "fail", "noop", "sleep"]));
    }
}
