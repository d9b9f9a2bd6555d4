//! [`Worker`]: an actor that runs one task at a time.
//!
//! The handler itself runs on the tokio runtime (so CPU-heavy handlers run in parallel and
//! cannot stall the actix thread); the actor awaits it under the time limit and an abort
//! signal. `Run` is handled with an [`AtomicResponse`], which holds the actor's mailbox
//! (`ctx.wait`) until the task is over: a worker never holds more than one task. The result
//! goes back to the supervisor as a [`Finished`] message (not as the answer to a `send`): an
//! answer is a future the supervisor's context polls on every wake-up, one per running task,
//! which with many workers cost more than the rest of the pool (docs/BENCHMARKS.md, "CPU per
//! task with many workers").

use std::any::Any;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::debug;
use tracing::error;
use tracing::warn;

pub use super::core::RunResult;
use super::registry::TaskRegistry;
use crate::queue::Grant;
use crate::queue::Headers;
use crate::queue::LeaseRef;
use crate::queue::Outcome;

/// Run one granted task; its result is sent to `report` when it is over.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Run {
    pub grant: Grant,
    /// Fires (sends `()`) to abort the task: the pool is draining and the grace is over.
    /// Dropping the sender does not abort.
    pub abort: oneshot::Receiver<()>,
    pub report: Report,
}

/// A task's result, sent by its worker to the supervisor.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Finished {
    pub worker: usize,
    pub lease: LeaseRef,
    pub result: RunResult,
}

/// Where a run's result goes. Exactly one [`Finished`] is sent per `Run`: the result, or
/// [`RunResult::Aborted`] if the run is dropped unfinished (the worker actor is gone: the
/// system is stopping, or the `Run` was never delivered), so the lease is handed back.
pub struct Report {
    worker: usize,
    lease: LeaseRef,
    to: Option<Recipient<Finished>>,
}

impl Report {
    pub fn new(worker: usize, lease: LeaseRef, to: Recipient<Finished>) -> Self {
        Self {
            worker,
            lease,
            to: Some(to),
        }
    }

    fn send(mut self, result: RunResult) {
        if let Some(to) = self.to.take() {
            to.do_send(Finished {
                worker: self.worker,
                lease: self.lease,
                result,
            });
        }
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        // A supervisor that stopped first dropped its own bookkeeping: nothing to say then.
        if let Some(to) = self.to.take().filter(Recipient::connected) {
            error!(
                worker = self.worker,
                task = self.lease.task,
                attempt = self.lease.attempt,
                "worker did not answer"
            );
            to.do_send(Finished {
                worker: self.worker,
                lease: self.lease,
                result: RunResult::Aborted,
            });
        }
    }
}

/// A snapshot of a worker for tests and stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerState {
    pub id: usize,
    pub running: Option<LeaseRef>,
    pub runs_total: u64,
}

pub struct Worker {
    id: usize,
    registry: Arc<TaskRegistry>,
    runtime: Handle,
    default_time_limit: Duration,
    running: Option<LeaseRef>,
    runs_total: u64,
}

impl Worker {
    pub fn new(
        id: usize,
        registry: Arc<TaskRegistry>,
        runtime: Handle,
        default_time_limit: Duration,
    ) -> Self {
        Self {
            id,
            registry,
            runtime,
            default_time_limit,
            running: None,
            runs_total: 0,
        }
    }

    pub fn observable_state(&self) -> WorkerState {
        WorkerState {
            id: self.id,
            running: self.running,
            runs_total: self.runs_total,
        }
    }
}

impl Actor for Worker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // The supervisor sends `Run` only to an idle worker: one message is all it ever holds.
        ctx.set_mailbox_capacity(1);
    }
}

impl Handler<Run> for Worker {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: Run, _ctx: &mut Self::Context) -> Self::Result {
        let lease = msg.grant.lease;
        self.running = Some(lease);
        let limit = msg
            .grant
            .time_limit_ms
            .map(Duration::from_millis)
            .unwrap_or(self.default_time_limit);
        debug!(worker = self.id, task = lease.task, attempt = lease.attempt, name = %msg.grant.name, "task started");
        let run = execute(&self.registry, &self.runtime, &msg.grant, limit, msg.abort);
        let report = msg.report;
        AtomicResponse::new(Box::pin(run.into_actor(self).map(move |result, act, _| {
            act.running = None;
            act.runs_total += 1;
            report.send(result);
        })))
    }
}

/// Aborts the handler's tokio task when dropped, so a handler never outlives the attempt that
/// owns it (a stopped actix system drops the awaiting future, not the task).
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

use super::soft_limit::SoftLimit;

tokio::task_local! {
    static CURRENT_RUN: TaskRun;
    static CURRENT_HEADERS: Arc<Headers>;
}

/// Which task, and which attempt of it, a handler is running for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskRun {
    pub task: u64,
    /// 1 for the first run; a retry or a re-lease after a lost lease gets the next number.
    pub attempt: u32,
}

/// The run the calling handler serves (`None` outside a handler's task): lets a handler tell
/// a retry from a first run, or tag its result with its attempt.
pub fn current_run() -> Option<TaskRun> {
    CURRENT_RUN.try_with(|run| *run).ok()
}

/// The submit headers of the task the calling handler runs (empty outside a handler's task,
/// or when the task has none): trace context, a caller's own metadata.
pub fn current_headers() -> Arc<Headers> {
    CURRENT_HEADERS.try_with(Arc::clone).unwrap_or_default()
}

/// Run `grant`'s handler on `runtime` for at most `limit`, or until `abort` fires.
pub fn execute(
    registry: &TaskRegistry,
    runtime: &Handle,
    grant: &Grant,
    limit: Duration,
    abort: oneshot::Receiver<()>,
) -> impl Future<Output = RunResult> + 'static {
    let run = TaskRun {
        task: grant.lease.task,
        attempt: grant.lease.attempt,
    };
    let headers = Arc::new(grant.headers.clone());
    // With trace export on and a trace context in the headers: the attempt's span, current in
    // the handler too (its own spans and outgoing calls join the caller's trace).
    let span = crate::trace::run_span(&grant.headers, &grant.name, run.task, run.attempt);
    // The soft time limit (a header) is counted from the attempt's start, like the hard one.
    let soft = SoftLimit::from_headers(&grant.headers, tokio::time::Instant::now());
    let call = CURRENT_RUN.scope(
        run,
        CURRENT_HEADERS.scope(
            headers,
            soft.scope(registry.call(&grant.name, grant.args.clone())),
        ),
    );
    let mut task = AbortOnDrop(match &span {
        Some(span) => runtime.spawn(tracing::Instrument::instrument(call, span.clone())),
        None => runtime.spawn(call),
    });
    let lease = grant.lease;
    let attempt = async move {
        let aborted = async {
            if abort.await.is_err() {
                // The sender went away without asking: that is not an abort.
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            joined = tokio::time::timeout(limit, &mut task.0) => match joined {
                Ok(Ok(outcome)) => RunResult::Finished(outcome),
                Ok(Err(e)) if e.is_panic() => {
                    let error = format!("task panicked: {}", panic_message(e.into_panic().as_ref()));
                    warn!(task = lease.task, attempt = lease.attempt, %error, "task panicked");
                    RunResult::Finished(Outcome::Failure { error, retry: true })
                }
                Ok(Err(_)) => {
                    warn!(task = lease.task, attempt = lease.attempt, "task cancelled: runtime shutting down");
                    RunResult::Aborted
                }
                Err(_) => {
                    let error = format!("time limit of {} ms exceeded", limit.as_millis());
                    warn!(task = lease.task, attempt = lease.attempt, %error, "task timed out");
                    RunResult::Finished(Outcome::Failure { error, retry: true })
                }
            },
            () = aborted => {
                debug!(task = lease.task, attempt = lease.attempt, "task aborted");
                RunResult::Aborted
            }
        }
        // `task` drops here: a timed-out or aborted handler is aborted on the runtime.
    };
    async move {
        let Some(span) = span else {
            return attempt.await;
        };
        let result = tracing::Instrument::instrument(attempt, span.clone()).await;
        crate::trace::record_outcome(&span, &result);
        result
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "non-string panic payload"
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::sync::atomic::Ordering;

    use bytes::Bytes;

    use super::*;
    use crate::queue::LeaseRef;
    use crate::worker::builtins::register_builtins;
    use crate::worker::registry::TaskError;

    fn grant(name: &str, args: &'static str, time_limit_ms: Option<u64>) -> Grant {
        Grant {
            lease: LeaseRef { task: 1, attempt: 1 },
            name: name.into(),
            queue: "default".into(),
            args: Bytes::from_static(args.as_bytes()),
            time_limit_ms,
            lease_deadline_ms: 0,
            headers: Headers::new(),
        }
    }

    fn registry() -> TaskRegistry {
        let mut r = TaskRegistry::new();
        register_builtins(&mut r);
        r.register("panic", |_: ()| async {
            if true {
                panic!("handler blew up");
            }
            Ok::<(), TaskError>(())
        });
        r
    }

    fn no_abort() -> oneshot::Receiver<()> {
        // The sender is dropped at once: that must not count as an abort.
        oneshot::channel().1
    }

    #[tokio::test]
    async fn finished_task_gives_its_outcome() {
        let run = execute(
            &registry(),
            &Handle::current(),
            &grant("echo", "[1]", None),
            Duration::from_secs(5),
            no_abort(),
        );
        assert_eq!(
            run.await,
            RunResult::Finished(Outcome::Success(Bytes::from_static(b"[1]")))
        );
    }

    #[tokio::test]
    async fn a_handler_reads_its_task_headers() {
        let mut r = TaskRegistry::new();
        r.register("headers", |_: ()| async {
            Ok::<_, TaskError>(current_headers().get("traceparent").cloned())
        });
        let mut g = grant("headers", "", None);
        let limit = Duration::from_secs(5);
        assert_eq!(
            execute(&r, &Handle::current(), &g, limit, no_abort()).await,
            RunResult::Finished(Outcome::Success(Bytes::from_static(b"null")))
        );
        g.headers.insert("traceparent".into(), "00-ab".into());
        assert_eq!(
            execute(&r, &Handle::current(), &g, limit, no_abort()).await,
            RunResult::Finished(Outcome::Success(Bytes::from_static(b"\"00-ab\"")))
        );
        assert!(current_headers().is_empty(), "outside a handler");
    }

    #[tokio::test]
    async fn time_limit_of_the_grant_wins_over_the_default_and_fails_retryably() {
        let g = grant("sleep", r#"{"ms":5000}"#, Some(200));
        let limit = Duration::from_millis(g.time_limit_ms.unwrap());
        let start = tokio::time::Instant::now();
        let result = execute(&registry(), &Handle::current(), &g, limit, no_abort()).await;
        assert_eq!(
            result,
            RunResult::Finished(Outcome::Failure {
                error: "time limit of 200 ms exceeded".into(),
                retry: true
            })
        );
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(200) && elapsed < Duration::from_secs(2),
            "{elapsed:?}"
        );
    }

    #[tokio::test]
    async fn timed_out_handler_is_aborted_on_the_runtime() {
        let finished = Arc::new(AtomicBool::new(false));
        let mut r = TaskRegistry::new();
        let flag = finished.clone();
        r.register("slow", move |_: ()| {
            let flag = flag.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                flag.store(true, Ordering::SeqCst);
                Ok::<(), TaskError>(())
            }
        });
        let result = execute(
            &r,
            &Handle::current(),
            &grant("slow", "", None),
            Duration::from_millis(20),
            no_abort(),
        );
        assert!(matches!(
            result.await,
            RunResult::Finished(Outcome::Failure { retry: true, .. })
        ));
        // Proving a negative takes a wait: well past the handler's own 100 ms.
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(
            !finished.load(Ordering::SeqCst),
            "the aborted handler ran to its end"
        );
    }

    #[tokio::test]
    async fn a_handler_hears_its_soft_time_limit_before_the_hard_one() {
        use crate::worker::soft_limit::SOFT_TIME_LIMIT_HEADER;
        use crate::worker::soft_limit::soft_limit;
        let mut r = TaskRegistry::new();
        r.register("patient", |_: ()| async {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(60)) => Ok("finished"),
                () = soft_limit().exceeded() => Err(TaskError::fatal("stopped at the soft limit")),
            }
        });
        let mut g = grant("patient", "", None);
        g.headers.insert(SOFT_TIME_LIMIT_HEADER.into(), "50".into());
        let start = tokio::time::Instant::now();
        let result = execute(&r, &Handle::current(), &g, Duration::from_secs(5), no_abort()).await;
        assert_eq!(
            result,
            RunResult::Finished(Outcome::Failure {
                error: "stopped at the soft limit".into(),
                retry: false
            })
        );
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(50) && elapsed < Duration::from_secs(2),
            "{elapsed:?}"
        );
        // Without the header the hard limit is all there is.
        g.headers.clear();
        let result = execute(&r, &Handle::current(), &g, Duration::from_millis(100), no_abort()).await;
        assert_eq!(
            result,
            RunResult::Finished(Outcome::Failure {
                error: "time limit of 100 ms exceeded".into(),
                retry: true
            })
        );
    }

    #[tokio::test]
    async fn panic_fails_retryably_with_the_message() {
        let result = execute(
            &registry(),
            &Handle::current(),
            &grant("panic", "", None),
            Duration::from_secs(5),
            no_abort(),
        );
        assert_eq!(
            result.await,
            RunResult::Finished(Outcome::Failure {
                error: "task panicked: handler blew up".into(),
                retry: true
            })
        );
    }

    #[tokio::test]
    async fn abort_signal_stops_the_task() {
        let (tx, rx) = oneshot::channel();
        let run = execute(
            &registry(),
            &Handle::current(),
            &grant("sleep", r#"{"ms":60000}"#, None),
            Duration::from_secs(120),
            rx,
        );
        tx.send(()).unwrap();
        assert_eq!(run.await, RunResult::Aborted);
    }
}
