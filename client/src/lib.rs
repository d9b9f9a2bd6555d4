//! flotilla-client: a typed async client for a Flotilla cluster, and the `flotilla` CLI.
//!
//! ```no_run
//! # async fn demo() -> Result<(), flotilla_client::ClientError> {
//! use std::time::Duration;
//! let client = flotilla_client::Client::connect(["127.0.0.1:7000", "127.0.0.1:7001"]).await?;
//! let task = client.task("echo").args(&serde_json::json!({"msg": "hi"}))?.queue("default");
//! let id = client.submit(task).await?;
//! let done = client.wait(id, Duration::from_secs(10)).await?;
//! let echoed: serde_json::Value = done.result_json()?;
//! # let _ = echoed; Ok(()) }
//! ```
//!
//! Module map:
//! - [`client`]: [`Client`], [`ClientBuilder`]; node rotation and the retry loop of unary calls
//!   (`client/mod.rs`), the builder and node endpoints (`client/builder.rs`), and the task and
//!   cluster calls (`client/calls.rs`: `submit_batch` splits and pipelines batches).
//!   [`ClientBuilder::tls`] takes a [`ClientTls`] (the CA of the nodes, and a client
//!   certificate if they ask for one).
//! - [`task`]: [`TaskRequest`] (the fluent builder; every request carries an idempotency key),
//!   [`TaskId`], [`Submitted`].
//! - [`info`]: [`TaskInfo`], [`TaskState`]: a task as the cluster reports it.
//! - [`cluster`]: [`ClusterStatus`], [`Member`], [`QueueStats`].
//! - `wait`: chunked, resumable `WaitResults` streams behind [`Client::wait_many`].
//! - `gather`: concurrent [`Client::submit`] calls of one client gathered into shared
//!   requests (sent at once when none is in flight, else together as the next one; each caller
//!   gets its own id or error).
//! - `wait_hub`: concurrent [`Client::wait`] calls of one client gathered into shared
//!   `WaitResults` streams, each caller woken with its own task.
//! - [`retry`]: [`RetryPolicy`]; which failures are transient and the backoff between attempts.
//! - [`error`]: [`ClientError`], and the one mapping from gRPC status codes.
//! - `convert`: `From` impls between wire (prost) and domain types.
//! - `entropy`: the seedable generator of idempotency keys and retry jitter.
//! - `token`: the token presented on every call ([`ClientBuilder::token`]).
//! - [`tokens`]: creating, listing and revoking API tokens (admin).
//! - [`schedules`]: periodic schedules (cron in a time zone, intervals): add (admin), list
//!   with next run times, pause, resume, remove.
//! - [`trace_context`]: a request made inside a trace carries its W3C `traceparent` as a header.
//! - [`limits`]: flow-control limits (rate, concurrency; per queue, task name, concurrency
//!   key): set and remove (admin), list with what they hold back.
//! - [`events`]: the events stream ([`Client::events`]): task, pool and leader events,
//!   filtered, resumable from a log position.
//! - [`workflow`]: workflows: [`workflow::chain`], [`workflow::group`], [`workflow::chord`]
//!   (nested freely), submitted as one entry and read back as one object.
//! - [`ops`]: operating tasks: list them (filtered, paged by cursor), describe one, retry
//!   dead ones, cancel running ones, pause, resume and purge queues.
//! - [`catalog`]: the task names a submit may use ([`TaskName`]), and declaring more (admin).
//! - [`workers`]: every pool and remote worker of the cluster ([`Client::workers`]), asked of
//!   any node, which asks every member.
//!
//! Why every task has an idempotency key: a submit whose reply is lost (node crash, timeout) is
//! retried, and the cluster may already have committed it. The key makes the retry return the
//! first task's id instead of enqueuing a second task.

pub mod attempts;
pub mod catalog;
pub mod client;
pub mod cluster;
mod convert;
mod entropy;
pub mod error;
pub mod events;
mod gather;
pub mod info;
pub mod limits;
pub mod ops;
pub mod retry;
pub mod schedules;
pub mod task;
mod token;
pub mod tokens;
pub mod trace_context;
mod wait;
mod wait_hub;
pub mod workers;
pub mod workflow;

pub use attempts::{Attempt, AttemptEnd};
pub use catalog::{ConnectedWorker, Declarer, TaskCatalogue, TaskName};
pub use client::{ChannelFactory, Client, ClientBuilder};
pub use cluster::{ClusterStatus, Member, QueueStats};
pub use error::{ClientError, Result};
pub use flotilla_tls::ClientTls;
pub use info::{TaskInfo, TaskState};
pub use limits::LimitInfo;
pub use ops::{Progress, RetryPage, RevokeOutcome, TaskDetail, TaskFilter, TaskPage};
pub use retry::RetryPolicy;
pub use schedules::{CatchUp, ScheduleAdded, ScheduleInfo, ScheduleRequest};
pub use task::{SOFT_TIME_LIMIT_HEADER, Submitted, TaskId, TaskRequest};
pub use tokens::{ApiToken, TokenRole};
pub use workers::{WorkerInfo, WorkerKind, Workers};
pub use workflow::{Canvas, WorkflowInfo, WorkflowState, WorkflowSubmitted};
