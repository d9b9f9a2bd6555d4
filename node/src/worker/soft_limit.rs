//! The soft time limit: a signal a handler gets before its hard time limit (which fails the
//! attempt and aborts the handler), so it can stop cleanly, save what it has, or fail with its
//! own error. Like Celery's `soft_time_limit`.
//!
//! It travels as a submit header, [`SOFT_TIME_LIMIT_HEADER`] (milliseconds, decimal), not as a
//! task field: no log or snapshot format changes, and every worker (a node's pool, a remote
//! worker in any language) gets it with the task's other headers. The clock starts when the
//! attempt starts, like the hard limit's. A header that is not a number is ignored.
//!
//! In a Rust handler: [`soft_limit`] gives the running attempt's [`SoftLimit`]; await
//! [`SoftLimit::exceeded`] (in a `select!` beside the work) or poll
//! [`SoftLimit::is_exceeded`] between steps. Outside a handler, or for a task without the
//! header, it never fires.
//!
//! ```no_run
//! # use flotilla_node::worker::{soft_limit, TaskError};
//! # async fn crunch() -> u64 { 0 }
//! async fn handler(_: ()) -> Result<u64, TaskError> {
//!     tokio::select! {
//!         n = crunch() => Ok(n),
//!         () = soft_limit().exceeded() => Err(TaskError::fatal("gave up at the soft time limit")),
//!     }
//! }
//! ```

use std::time::Duration;

use tokio::time::Instant;

use crate::queue::Headers;

/// The header naming a task's soft time limit in milliseconds (set by the clients' submit
/// options: Rust `TaskRequest::soft_time_limit`, Python `soft_time_limit=`).
pub const SOFT_TIME_LIMIT_HEADER: &str = "flotilla-soft-time-limit-ms";

tokio::task_local! {
    static CURRENT: SoftLimit;
}

/// A running attempt's soft time limit (see the module doc). Cheap to copy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SoftLimit {
    deadline: Option<Instant>,
}

impl SoftLimit {
    /// The limit `headers` ask for, counted from `start`; none without the header (or with one
    /// that is not a number of milliseconds).
    pub fn from_headers(headers: &Headers, start: Instant) -> Self {
        let ms = headers
            .get(SOFT_TIME_LIMIT_HEADER)
            .and_then(|v| v.trim().parse::<u64>().ok());
        Self {
            deadline: ms.and_then(|ms| start.checked_add(Duration::from_millis(ms))),
        }
    }

    /// When it fires; `None`: never.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether it has fired.
    pub fn is_exceeded(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Resolves once it has fired; never, without one.
    pub async fn exceeded(self) {
        match self.deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    }

    /// Run `f` with this as the current attempt's soft limit.
    pub(crate) async fn scope<F: std::future::Future>(self, f: F) -> F::Output {
        CURRENT.scope(self, f).await
    }
}

/// The soft time limit of the attempt the calling handler runs (one that never fires outside a
/// handler's task, or for a task without it).
pub fn soft_limit() -> SoftLimit {
    CURRENT.try_with(|s| *s).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> Headers {
        [(SOFT_TIME_LIMIT_HEADER.to_string(), v.to_string())].into()
    }

    #[tokio::test(start_paused = true)]
    async fn it_fires_at_its_time_and_never_without_the_header() {
        let start = Instant::now();
        let soft = SoftLimit::from_headers(&headers("100"), start);
        assert!(!soft.is_exceeded());
        soft.exceeded().await;
        assert_eq!(start.elapsed(), Duration::from_millis(100));
        assert!(soft.is_exceeded());
        for none in [Headers::new(), headers("soon"), headers("-5")] {
            let soft = SoftLimit::from_headers(&none, start);
            assert_eq!(soft.deadline(), None);
            let never = tokio::time::timeout(Duration::from_secs(3600), soft.exceeded()).await;
            assert!(never.is_err());
        }
    }

    #[tokio::test]
    async fn a_handler_reads_its_own_and_outside_one_it_never_fires() {
        assert_eq!(soft_limit(), SoftLimit::default());
        let soft = SoftLimit::from_headers(&headers("5"), Instant::now());
        let inside = soft.scope(async { soft_limit() }).await;
        assert_eq!(inside, soft);
    }
}
