//! [`Supervisor`]: the actix shell around the pool's [`PoolCore`]. It starts the worker
//! actors, feeds the core its events (replies, the replica's pool events, finished runs, the
//! work signal, ticks, timers, `Drain`) and carries out its decisions: proposals run on the
//! tokio runtime through the [`Backend`], grants go to idle worker actors as [`Run`], aborts
//! fire the run's abort signal, timers become `run_later`. Every event is stamped with the
//! time since the supervisor started (tokio's clock: paused in tests, simulated in the sim).
//! Every decision is the core's; see `core.rs` for what they are and why.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_stream::wrappers::WatchStream;
use tracing::debug;
use tracing::error;
use tracing::info;

use super::backend::Backend;
use super::core::CoreConfig;
use super::core::Decision;
use super::core::PoolCore;
use super::core::RunResult;
use super::core::Token;
use super::core::first_ticket;
use super::pool::DrainReport;
use super::pool::PoolConfig;
use super::pool::PoolStats;
use super::registry::TaskRegistry;
use super::worker::Finished;
use super::worker::Report;
use super::worker::Run;
use super::worker::Worker;
use crate::error::ProposeError;
use crate::queue::Grant;
use crate::queue::LeaseRef;
use crate::queue::Response;
use crate::replica::PoolEvent;

/// Stop leasing, let running tasks finish for up to `grace`, then abort and release the rest
/// and flush everything owed to the log. Answered when done; the supervisor then stops.
#[derive(Message)]
#[rtype(result = "DrainReport")]
pub struct Drain {
    pub grace: Duration,
}

/// Stop at once, without draining (the handle was dropped).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop;

/// A worker actor running a task.
struct Busy {
    worker: usize,
    /// Taken when the abort is sent.
    abort: Option<oneshot::Sender<()>>,
}

pub struct Supervisor {
    cfg: PoolConfig,
    core: PoolCore,
    registry: Arc<TaskRegistry>,
    backend: Arc<dyn Backend>,
    runtime: Handle,
    workers: Vec<Addr<Worker>>,
    idle: Vec<usize>,
    busy: BTreeMap<LeaseRef, Busy>,
    drain_replies: Vec<oneshot::Sender<DrainReport>>,
    stats_tx: watch::Sender<PoolStats>,
    /// The origin of the core's time.
    epoch: Instant,
}

impl Supervisor {
    pub fn new(
        cfg: PoolConfig,
        registry: Arc<TaskRegistry>,
        backend: Arc<dyn Backend>,
        runtime: Handle,
        stats_tx: watch::Sender<PoolStats>,
    ) -> Self {
        let core = PoolCore::new(CoreConfig {
            pool: cfg.worker_name.clone(),
            queues: cfg.queues.clone(),
            lease_ms: cfg.lease_ms,
            slots: cfg.workers,
            prefetch: cfg.prefetch,
            min_lease_to_start: Duration::from_millis(cfg.heartbeat_interval_ms),
            max_batch: cfg.max_completion_batch,
            runner_queue: 0,
            drain_flush_timeout: Duration::from_millis(cfg.drain_flush_timeout_ms),
            first_ticket: first_ticket(backend.log_now_ms()),
        });
        Self {
            cfg,
            core,
            registry,
            backend,
            runtime,
            workers: Vec::new(),
            idle: Vec::new(),
            busy: BTreeMap::new(),
            drain_replies: Vec::new(),
            stats_tx,
            epoch: Instant::now(),
        }
    }

    /// The core, told the time of the event about to be fed to it.
    fn core(&mut self) -> &mut PoolCore {
        let now = self.epoch.elapsed();
        self.core.at(now)
    }

    pub fn observable_state(&self) -> PoolStats {
        self.core.stats()
    }

    /// Carry out every decision the core has made.
    fn execute(&mut self, ctx: &mut Context<Self>) {
        while let Some(decision) = self.core.next_decision() {
            match decision {
                Decision::Propose(token, proposal) => self.propose(token, proposal.into_commands(), ctx),
                // A local pool queues nothing at its runner (`runner_queue` 0): were it asked
                // to, a grant with no idle worker is given back, and a take-back is answered
                // by the run's own end.
                Decision::Run(grant) | Decision::Queue(grant) => self.run(grant, ctx),
                Decision::TakeBack(_) => {}
                Decision::Abort(lease) => {
                    if let Some(abort) = self.busy.get_mut(&lease).and_then(|b| b.abort.take()) {
                        let _ = abort.send(());
                    }
                }
                Decision::After(delay, timer) => {
                    ctx.run_later(delay, move |act, ctx| {
                        act.core().timer(timer);
                        act.execute(ctx);
                    });
                }
                Decision::Drained(report) => {
                    for reply in self.drain_replies.drain(..) {
                        let _ = reply.send(report);
                    }
                    // The stopped actor drops the workers with it.
                    ctx.stop();
                }
                // Only a core made `with_acks` reports them (a remote worker's).
                Decision::Acked(_) => {}
                Decision::Stats(stats) => {
                    self.stats_tx
                        .send_if_modified(|s| std::mem::replace(s, stats) != stats);
                }
            }
        }
    }

    /// Propose on the tokio runtime (the node's proposer lives there); the reply comes back
    /// to the core here.
    fn propose(&self, token: Token, cmds: Vec<crate::queue::Command>, ctx: &mut Context<Self>) {
        debug!(target: crate::trace::TIMELINE, commands = cmds.len(), "pool proposes");
        let proposal = self.runtime.spawn(self.backend.propose_many(cmds));
        let reply = async move {
            let reply: Result<Vec<Response>, ProposeError> =
                proposal.await.unwrap_or(Err(ProposeError::ShuttingDown));
            reply
        };
        ctx.spawn(reply.into_actor(self).map(move |reply, act, ctx| {
            act.core().replied(token, reply);
            act.execute(ctx);
        }));
    }

    fn run(&mut self, grant: Grant, ctx: &mut Context<Self>) {
        let lease = grant.lease;
        debug!(target: crate::trace::TIMELINE, task = lease.task, "run sent to a worker");
        let Some(worker) = self.idle.pop() else {
            // The core never runs more than `slots` at once: give the lease back all the same.
            error!(task = lease.task, "no idle worker for a grant");
            self.core().finished(lease, RunResult::Aborted);
            return;
        };
        let (abort_tx, abort_rx) = oneshot::channel();
        self.busy.insert(
            lease,
            Busy {
                worker,
                abort: Some(abort_tx),
            },
        );
        // The result comes back as a `Finished` message; if the worker actor is gone (the
        // system is stopping) it comes back `Aborted` and the lease is handed back.
        let report = Report::new(worker, lease, ctx.address().recipient());
        self.workers[worker].do_send(Run {
            grant,
            abort: abort_rx,
            report,
        });
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // `Drain`, `Stop` and the workers' `Finished` (one per running task, sent with
        // `do_send`, which the capacity does not bound) are sent here.
        ctx.set_mailbox_capacity(16);
        let limit = Duration::from_millis(self.cfg.default_time_limit_ms);
        for id in 0..self.cfg.workers {
            let worker = Worker::new(id, self.registry.clone(), self.runtime.clone(), limit);
            self.workers.push(worker.start());
        }
        // Popped from the back: worker 0 is used first and most, the rest only under load.
        self.idle = (0..self.cfg.workers).rev().collect();
        ctx.add_stream(WatchStream::from_changes(self.backend.work_signal()));
        ctx.add_stream(UnboundedReceiverStream::new(
            self.backend.pool_events(&self.cfg.worker_name),
        ));
        // A fallback for a missed signal; it writes a `Lease` only when the replica shows work.
        ctx.run_interval(Duration::from_millis(self.cfg.idle_poll_ms.max(1)), |act, ctx| {
            let shows_work = act.backend.may_have_work(&act.cfg.queues);
            act.core().idle_poll(shows_work);
            act.execute(ctx);
        });
        ctx.run_interval(
            Duration::from_millis(self.cfg.heartbeat_interval_ms.max(1)),
            |act, ctx| {
                act.core().heartbeat_tick();
                act.execute(ctx);
            },
        );
        info!(worker = %self.cfg.worker_name, workers = self.cfg.workers, queues = ?self.cfg.queues, "worker pool started");
        self.execute(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        // Workers outlive us while a task runs: ask them to stop now (their leases expire).
        for busy in self.busy.values_mut() {
            if let Some(abort) = busy.abort.take() {
                let _ = abort.send(());
            }
        }
    }
}

impl Handler<Finished> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: Finished, ctx: &mut Self::Context) {
        debug!(target: crate::trace::TIMELINE, task = msg.lease.task, "run ended");
        if let Some(busy) = self.busy.remove(&msg.lease) {
            self.idle.push(busy.worker);
        }
        self.core().finished(msg.lease, msg.result);
        self.execute(ctx);
    }
}

impl Handler<Stop> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl StreamHandler<u64> for Supervisor {
    fn handle(&mut self, _generation: u64, ctx: &mut Self::Context) {
        self.core().work_signal();
        self.execute(ctx);
    }

    /// The replica went away: keep running on the idle poll rather than stopping (the default).
    fn finished(&mut self, _ctx: &mut Self::Context) {
        debug!("work signal closed; relying on the idle poll");
    }
}

impl StreamHandler<PoolEvent> for Supervisor {
    fn handle(&mut self, event: PoolEvent, ctx: &mut Self::Context) {
        debug!(target: crate::trace::TIMELINE, "pool told");
        let now = self.epoch.elapsed();
        let (backend, pool) = (&self.backend, &self.cfg.worker_name);
        self.core
            .at(now)
            .applied(event, |lease| backend.holds(pool, lease));
        self.execute(ctx);
    }

    /// The replica went away (the node is stopping): leases still work, keep running.
    fn finished(&mut self, _ctx: &mut Self::Context) {
        debug!("pool events closed");
    }
}

impl Handler<Drain> for Supervisor {
    type Result = ResponseFuture<DrainReport>;

    fn handle(&mut self, msg: Drain, ctx: &mut Self::Context) -> Self::Result {
        if self.core.is_done() {
            return Box::pin(async { DrainReport::default() });
        }
        let (tx, rx) = oneshot::channel();
        self.drain_replies.push(tx);
        self.core().drain(msg.grace);
        self.execute(ctx);
        Box::pin(async move { rx.await.unwrap_or_default() })
    }
}
