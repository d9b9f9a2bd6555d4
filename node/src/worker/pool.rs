//! [`WorkerPool`]: starting the pool (its own actix System on its own OS thread), its config,
//! and the [`PoolHandle`] the rest of the node keeps: stats, drain, and clean stop on drop.

use std::future::Future;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use actix::prelude::*;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tracing::error;

use super::backend::Backend;
use super::core::Prefetch;
use super::registry::TaskRegistry;
use super::supervisor::Drain;
use super::supervisor::Stop;
use super::supervisor::Supervisor;
use crate::network::peer::NodeWorker;
use crate::network::peer::WorkerKind;

/// How a node's worker pool runs. Names carry units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// This pool's name in the queue's commands (the `worker` field), e.g. `node-1`.
    pub worker_name: String,
    /// Worker actors: tasks run at once.
    pub workers: usize,
    /// Tasks held beyond the workers, waiting for one (`core/prefetch.rs`).
    pub prefetch: Prefetch,
    /// Queues to lease from, in order of preference; empty means all.
    pub queues: Vec<String>,
    /// Lease length of each grant and heartbeat extension.
    pub lease_ms: u64,
    /// How often running leases are heartbeated; below `lease_ms` (a third of it leaves room
    /// for two lost heartbeats). Set it too when changing `lease_ms`.
    pub heartbeat_interval_ms: u64,
    /// Time limit of an attempt whose task does not set one.
    pub default_time_limit_ms: u64,
    /// Most completions (or releases) in one command.
    pub max_completion_batch: usize,
    /// Fallback re-check for work when no signal came (e.g. a lease expired elsewhere).
    pub idle_poll_ms: u64,
    /// After the drain's grace, how long to keep retrying completions and releases the log
    /// does not accept (e.g. no leader) before giving up on them.
    pub drain_flush_timeout_ms: u64,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            worker_name: "worker".into(),
            workers: thread::available_parallelism().map_or(1, |n| n.get()),
            prefetch: Prefetch::Auto,
            queues: Vec::new(),
            lease_ms: 30_000,
            // lease_ms / 3
            heartbeat_interval_ms: 10_000,
            default_time_limit_ms: 300_000,
            max_completion_batch: 1024,
            idle_poll_ms: 1000,
            drain_flush_timeout_ms: 10_000,
        }
    }
}

impl PoolConfig {
    pub fn validate(&self) -> Result<(), WorkerError> {
        let invalid = |why: &str| Err(WorkerError::Config(why.into()));
        if self.workers == 0 {
            return invalid("workers must be at least 1");
        }
        if self.lease_ms == 0 {
            return invalid("lease_ms must be positive");
        }
        if self.heartbeat_interval_ms == 0 || self.heartbeat_interval_ms >= self.lease_ms {
            return invalid("heartbeat_interval_ms must be positive and below lease_ms");
        }
        if self.max_completion_batch == 0 {
            return invalid("max_completion_batch must be at least 1");
        }
        if self.idle_poll_ms == 0 {
            return invalid("idle_poll_ms must be positive");
        }
        if u32::try_from(self.workers).is_err() {
            return invalid("workers must fit in a u32");
        }
        Ok(())
    }
}

/// A snapshot of the pool (the supervisor's observable state).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub workers: usize,
    /// Workers running a task now.
    pub busy: usize,
    /// Leases this pool holds: waiting for a worker, running, or finished with the completion
    /// (or release) not yet accepted by the log. Zero means everything is accounted for.
    pub in_flight: usize,
    pub leased_total: u64,
    pub succeeded_total: u64,
    /// Failed attempts (handler error, panic, time limit, bad arguments, unknown name).
    pub failed_total: u64,
    /// Completions accepted by the log (stale ones included).
    pub completed_total: u64,
    /// Completions the queue ignored because the lease was no longer current.
    pub stale_total: u64,
    /// Leases given back without spending an attempt (drain).
    pub released_total: u64,
    pub draining: bool,
    /// Standing capacity this pool holds in the state machine, as its replica reports it.
    pub standing: usize,
    /// Grants to standing capacity dropped because the replica no longer showed them as
    /// this pool's (a replayed apply).
    pub stale_grants_total: u64,
    /// Granted tasks waiting for a free worker (lease-ahead).
    pub buffered: usize,
    /// Tasks the pool may hold beyond its workers now (its lease-ahead allowance).
    pub lease_ahead: usize,
    /// Buffered tasks released unstarted because their lease would run short first.
    pub short_lease_released_total: u64,
    /// Buffered tasks released unstarted because runs held them up (a stall).
    pub unbuffered_total: u64,
}

/// What a drain did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// Tasks that finished during the grace period (their results were recorded).
    pub finished: usize,
    /// Leases given back (aborted tasks and granted ones never started).
    pub released: usize,
    /// Tasks still running when the grace ran out.
    pub aborted: usize,
    /// Completions or releases the log had not accepted by the flush deadline (the leases
    /// will expire and the tasks run again elsewhere).
    pub unflushed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("invalid worker pool config: {0}")]
    Config(String),
    #[error("could not spawn the worker thread: {0}")]
    Spawn(#[from] std::io::Error),
    #[error("the worker thread died while starting")]
    Startup,
}

pub struct WorkerPool;

impl WorkerPool {
    /// Start the pool on a new OS thread running its own actix `System` (one cannot be created
    /// inside a tokio runtime). Handlers and proposals run on `runtime`.
    pub fn start(
        cfg: PoolConfig,
        registry: Arc<TaskRegistry>,
        backend: Arc<dyn Backend>,
        runtime: Handle,
    ) -> Result<PoolHandle, WorkerError> {
        cfg.validate()?;
        let (started_tx, started_rx) = std::sync::mpsc::sync_channel(1);
        let thread = thread::Builder::new()
            .name(format!("{}-workers", cfg.worker_name))
            .spawn(move || {
                let system = System::new();
                let started = system.block_on(async move {
                    let (supervisor, stats) = launch(cfg, registry, backend, runtime);
                    (supervisor, stats, System::current())
                });
                if started_tx.send(started).is_err() {
                    return;
                }
                if let Err(e) = system.run() {
                    error!(error = %e, "worker system failed");
                }
            })?;
        let (supervisor, stats, system) = started_rx.recv().map_err(|_| WorkerError::Startup)?;
        Ok(PoolHandle {
            supervisor,
            stats,
            owned: Some((system, thread)),
        })
    }

    /// Start the pool's actors on the current actix context (a `System` or a `LocalSet`), as
    /// the simulator needs: one thread, the caller's runtime. Dropping the handle stops them.
    pub fn start_local(
        cfg: PoolConfig,
        registry: Arc<TaskRegistry>,
        backend: Arc<dyn Backend>,
        runtime: Handle,
    ) -> Result<PoolHandle, WorkerError> {
        cfg.validate()?;
        let (supervisor, stats) = launch(cfg, registry, backend, runtime);
        Ok(PoolHandle {
            supervisor,
            stats,
            owned: None,
        })
    }
}

fn launch(
    cfg: PoolConfig,
    registry: Arc<TaskRegistry>,
    backend: Arc<dyn Backend>,
    runtime: Handle,
) -> (Addr<Supervisor>, watch::Receiver<PoolStats>) {
    let (stats_tx, stats_rx) = watch::channel(PoolStats {
        workers: cfg.workers,
        ..PoolStats::default()
    });
    (
        Supervisor::new(cfg, registry, backend, runtime, stats_tx).start(),
        stats_rx,
    )
}

/// The running pool. Drain it for a clean stop; dropping it stops the actors at once (running
/// handlers are aborted, their leases expire on their own).
pub struct PoolHandle {
    supervisor: Addr<Supervisor>,
    stats: watch::Receiver<PoolStats>,
    /// The System and its thread, when the pool has its own.
    owned: Option<(System, thread::JoinHandle<()>)>,
}

/// The pool as `flotilla workers` shows it: what it was started with, and its live stats.
#[derive(Clone)]
pub struct PoolView {
    pub node_id: crate::types::NodeId,
    pub name: String,
    pub queues: Vec<String>,
    started: tokio::time::Instant,
    stats: watch::Receiver<PoolStats>,
}

impl PoolView {
    /// The pool now.
    pub fn worker(&self) -> NodeWorker {
        let stats = *self.stats.borrow();
        NodeWorker {
            node_id: self.node_id,
            name: self.name.clone(),
            kind: WorkerKind::Pool,
            queues: self.queues.clone(),
            concurrency: u32::try_from(stats.workers).unwrap_or(u32::MAX),
            busy: u32::try_from(stats.busy).unwrap_or(u32::MAX),
            connected_ms_ago: self.started.elapsed().as_millis() as u64,
            last_seen_ms_ago: 0,
        }
    }
}

impl PoolHandle {
    /// A view of the pool for `flotilla workers`, started now under `name` on `queues`.
    pub fn view(&self, node_id: crate::types::NodeId, name: String, queues: Vec<String>) -> PoolView {
        PoolView {
            node_id,
            name,
            queues,
            started: tokio::time::Instant::now(),
            stats: self.stats.clone(),
        }
    }

    pub fn stats(&self) -> PoolStats {
        *self.stats.borrow()
    }

    /// Stats as they change, to await a condition (`wait_for`) rather than poll.
    pub fn watch_stats(&self) -> watch::Receiver<PoolStats> {
        self.stats.clone()
    }

    /// Stop leasing, let running tasks finish for up to `grace`, abort and release the rest,
    /// flush results, then stop the pool. Callable from any runtime; a second call (or one
    /// after the pool stopped) reports nothing more.
    pub fn drain(&self, grace: Duration) -> impl Future<Output = DrainReport> + Send + 'static {
        let supervisor = self.supervisor.clone();
        let system = self.owned.as_ref().map(|(system, _)| system.clone());
        async move {
            let report = supervisor.send(Drain { grace }).await.unwrap_or_default();
            if let Some(system) = system {
                system.stop();
            }
            report
        }
    }
}

impl Drop for PoolHandle {
    fn drop(&mut self) {
        self.supervisor.do_send(Stop);
        if let Some((system, thread)) = self.owned.take() {
            system.stop();
            if thread.thread().id() != thread::current().id() && thread.join().is_err() {
                error!("worker thread panicked");
            }
        }
    }
}
