//! Operating a node: metrics, health and tracing (docs/OPERATIONS.md "Metrics, health,
//! tracing").
//!
//! - [`config`]: the flags (`--http-listen`, `--metrics-public`, `--otlp-endpoint`).
//! - [`metrics`]: [`Instruments`] (what the hot path updates: atomics and histograms handed to
//!   the log store, the proposer and the replica) and [`NodeMetrics`] (the registry, rendered
//!   as Prometheus text at scrape time).
//! - [`apply`]: per queue submits, outcomes, queue wait and run time, counted from the
//!   changes of task state each apply made (log time: the same on every replica).
//! - [`scrape`]: what is read only when scraped: tasks per queue and state, Raft's figures.
//! - [`health`]: serving = a member that knows a leader backed by a quorum (a read barrier),
//!   judged when asked; the gRPC health service and `/healthz` share it.
//! - [`http`]: the HTTP port (axum) and who may read what on it.
//! - [`dashboard`]: the web dashboard on that port (`/`, `/api/...`), calling the gRPC
//!   services' own functions (`grpc::OpsApi`, `QueueApi`, `ScheduleApi`).
//!
//! It sits beside `server`, which wires it: it reads `raft`, `replica` and `grpc` (the auth
//! layer; the dashboard calls the services), and
//! nothing below imports it (the lower layers take plain histogram handles).

pub mod apply;
pub mod config;
pub mod dashboard;
pub mod health;
pub mod http;
pub mod metrics;
pub mod scrape;
#[cfg(test)]
mod tests;

pub use config::ObserveConfig;
pub use health::HealthProbe;
pub use metrics::Instruments;
pub use metrics::NodeMetrics;
