//! The worker subsystem: actix actors that pull tasks from the replicated queue and run them.
//!
//! The pool runs its own actix `System` on its own OS thread, beside the node's tokio runtime;
//! task handlers and proposals run on that runtime, the actors only coordinate.
//!
//! - [`pool`]: [`WorkerPool::start`], [`PoolConfig`], and the [`PoolHandle`] (stats, drain).
//! - [`core`]: [`PoolCore`], the pool's decisions with no IO (leasing to capacity, tickets and
//!   standing capacity, lease-ahead, completions, releases, heartbeats, retries, drain):
//!   events in, decisions out. A remote worker's session is the same core with another runner.
//! - [`supervisor`]: the actix shell that carries the core's decisions out: worker actors,
//!   proposals through the [`Backend`], timers.
//! - [`worker`]: a worker actor: one task at a time, under a time limit and an abort signal.
//! - [`mod@soft_limit`]: the soft time limit a handler hears before the hard one (a header).
//! - [`remote`]: a remote worker's session: the same core, run by a gRPC stream.
//! - [`registry`]: [`TaskRegistry`] of async handlers with serde-typed arguments and results.
//! - [`builtins`]: `noop`, `echo`, `sleep`, `fail`.
//! - [`http`]: the `http` task (webhooks), limited to the hosts of `--http-allow`.
//! - [`backend`]: the [`Backend`] seam to the node (propose an entry; pool events, the work
//!   signal); [`node_backend`]: the node's implementation (proposer and replica).
//! - [`testing`]: [`testing::LocalBackend`] and wrappers, for tests and the simulator.

pub mod backend;
pub mod builtins;
pub mod core;
pub mod http;
pub mod node_backend;
pub mod pool;
pub mod registry;
pub mod remote;
pub mod soft_limit;
pub mod supervisor;
pub mod testing;
#[allow(clippy::module_inception)] // `worker::worker` is the worker actor of the worker subsystem
pub mod worker;

#[cfg(test)]
mod tests;

pub use backend::Backend;
pub use builtins::register_builtins;
pub use core::PoolCore;
pub use core::Prefetch;
pub use node_backend::NodeBackend;
pub use pool::DrainReport;
pub use pool::PoolConfig;
pub use pool::PoolHandle;
pub use pool::PoolStats;
pub use pool::WorkerError;
pub use pool::WorkerPool;
pub use registry::TaskError;
pub use registry::TaskRegistry;
pub use soft_limit::SOFT_TIME_LIMIT_HEADER;
pub use soft_limit::SoftLimit;
pub use soft_limit::soft_limit;
pub use worker::TaskRun;
pub use worker::current_headers;
pub use worker::current_run;
