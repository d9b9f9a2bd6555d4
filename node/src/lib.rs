//! flotilla-node: one Flotilla node. The cluster's replicated Raft log *is* the task queue.
//!
//! Module map (data flows top to bottom on a submit, bottom to top on a result):
//!
//! - [`grpc`]: the two tonic services. `queue_service` serves clients (submit, get, wait,
//!   cancel, stats, status, tokens); `ops_service` serves operators (list and describe tasks,
//!   retry, cancel running tasks, pause/resume/purge queues); `raft_service` serves peers
//!   (openraft RPCs as bincode).
//!   `auth` decides who may call what before a body is read (tokens with roles, the peer
//!   proof). `status` maps every error to a gRPC code: the only place that builds a gRPC
//!   `Status`.
//! - [`proposer`]: coalesces concurrent writes into one log entry and forwards them to the
//!   leader when this node does not lead.
//! - [`raft`]: openraft glue. `log_store` is the durable log (raft-log WAL: group commit,
//!   checksums, torn-tail recovery); `state_machine` applies entries to the [`replica`] and
//!   builds/installs versioned snapshots.
//! - [`replica`]: this node's applied [`queue::QueueState`], plus the waiters woken by it.
//! - [`queue`]: the pure, deterministic state machine (no IO, no async, no clock).
//! - [`events`]: the events stream derived from each apply (task, pool and leader events),
//!   kept in a bounded ring that watchers read by `(log index, ordinal)` cursor.
//! - [`network`]: peer calls over tonic, with an injectable connector: `call` (deadline,
//!   identity, error shaping, once), `headers`, `raft_network` (openraft's traits only) and
//!   `peer` (forwarding, and the admin messages `cluster` carries out).
//! - [`worker`]: actix actors: a pool supervisor leasing batches, workers running registered
//!   handlers ([`worker::registry`]), heartbeats, time limits, drain on SIGTERM.
//! - [`cluster`]: the identity of a data directory and its secrets, joining, leader-run
//!   administration, API tokens through the log. `docs/SECURITY.md` says who may do what.
//! - [`leader`]: the node's duties beside calls: the leader's ticks, clearing a lost pool's
//!   standing capacity, hand-off on shutdown; every node's compaction by size.
//! - [`observe`]: metrics (Prometheus text on `--http-listen`), health (gRPC and `/healthz`)
//!   and tracing (W3C trace context from submit to run, OTLP export); the web dashboard on the
//!   same HTTP port (`observe::dashboard`: `/` and `/api/...`, calling the `grpc` services).
//! - [`server`]: `run_with` in five named steps (identity, Raft, services, serve, stop).
//! - [`encoding`]: the one bincode configuration; every decode of peer or disk bytes is
//!   size-limited there. Format versions: `docs/adr/002-format-versions.md`.
//! - [`secret`]: drawing, hashing and comparing secrets (tokens, the peer secret).
//! - [`trace`]: W3C trace context from submit to run (task headers) and the spans exported
//!   over OTLP with `--otlp-endpoint`; a leaf that `grpc` and `worker` use.
//! - [`config`], [`clock`], [`error`], [`types`]: shared pieces.
//!
//! Layers import downwards only: `encoding`, `secret` < `queue` < `events` < `replica` < `raft` < `network` < `proposer` <
//! `cluster` < `grpc`, `leader` < `observe` < `server` (`worker` sits beside `grpc`, on `replica`).

pub mod bugs;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod encoding;
pub mod error;
pub mod events;
pub mod grpc;
pub mod leader;
pub mod network;
pub mod observe;
pub mod proposer;
pub mod queue;
pub mod raft;
pub mod replica;
pub mod runtime;
pub mod secret;
pub mod server;
pub mod trace;
pub mod types;
pub mod worker;
