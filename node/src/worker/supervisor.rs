//! [`Supervisor`]: the pool's one coordinating actor. It owns the worker actors and every
//! conversation with the log: leasing batches sized to free capacity, heartbeating running
//! leases, batching completions, releasing what it will not run, and draining.
//!
//! Completions go out as soon as a task finishes, together with a `Lease` for the capacity
//! they freed (one entry), with up to `PIPELINE` such proposals in flight: a worker that
//! finishes does not wait for another worker's entry to commit before it asks for its next
//! task. Leases in flight count against free capacity, so the pool never asks for more than
//! it can run. Beyond the pipeline, whatever happens while proposals are in flight (tasks
//! finishing, new work signalled) is folded into the next one: that is where batching comes
//! from, with no timers adding latency. Releases and heartbeats have one in flight each.
//!
//! **Standing capacity.** When the backend reports this pool's events on its local replica
//! ([`Backend::worker_events`]), every `Lease` carries a ticket and what it does not fill stays
//! in the state machine as the pool's standing capacity; a task that becomes pending later is
//! granted to it inside the entry that made it pending, and the pool hears of the grant from
//! its replica's apply (no `Lease` entry on the task's path). Spoken for, so never leased
//! again, are: running and buffered tasks, the standing capacity the replica last reported,
//! and per lease not yet both answered and seen applied on the replica, what it may still add
//! (all it asks for until either; then the unfilled part until the replica shows it, or the
//! grants until the reply brings them; a filled lease is settled by its reply, and the replica
//! reports nothing for it, so the busy path carries no events). So grants never outnumber
//! free workers. A grant heard of this way runs only if the replica still shows it as this
//! pool's current lease, and only after this run's `ReleaseWorker` committed. Standing
//! capacity is renewed by every lease (an idle pool proposes a `Lease` of its free capacity,
//! possibly 0, once per heartbeat interval without one), and a drain clears it
//! (`ClearStanding`) once its leases in flight settled.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::sync::watch;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_stream::wrappers::WatchStream;
use tracing::debug;
use tracing::error;
use tracing::info;
use tracing::warn;

use super::backend::Backend;
use super::pool::DrainReport;
use super::pool::PoolConfig;
use super::pool::PoolStats;
use super::registry::TaskRegistry;
use super::worker::Finished;
use super::worker::Report;
use super::worker::Run;
use super::worker::RunResult;
use super::worker::Worker;
use crate::error::ProposeError;
use crate::queue::Command;
use crate::queue::Completion;
use crate::queue::CompletionResult;
use crate::queue::Grant;
use crate::queue::LeaseRef;
use crate::queue::Outcome;
use crate::queue::Response;
use crate::replica::WorkerEvent;

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

/// Retry delays for a failed proposal: doubling from 10 ms up to 1 s, reset on success.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    const MIN: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);

    fn new() -> Self {
        Self { next: Self::MIN }
    }

    fn next(&mut self) -> Duration {
        let delay = self.next;
        self.next = (delay * 2).min(Self::MAX);
        delay
    }

    fn reset(&mut self) {
        self.next = Self::MIN;
    }
}

/// Most completion (and lease) proposals in flight at once. Two workers finishing one after
/// the other each get their next task one commit later instead of two; beyond this, batches
/// grow instead of entries.
pub(crate) const PIPELINE: usize = 4;

/// A task a worker is running.
struct Running {
    worker: usize,
    /// Taken when the abort is sent.
    abort: Option<oneshot::Sender<()>>,
}

/// One kind of proposal that is batched and retried: completions or releases.
struct Outbox<T> {
    queued: Vec<T>,
    /// Items of the proposals in flight; put back at the front if one fails.
    in_flight: usize,
    /// Proposals in flight.
    proposals: usize,
    retry_pending: bool,
    backoff: Backoff,
}

impl<T> Outbox<T> {
    fn new() -> Self {
        Self {
            queued: Vec::new(),
            in_flight: 0,
            proposals: 0,
            retry_pending: false,
            backoff: Backoff::new(),
        }
    }

    /// A proposal failed: put its items back in front and hold further proposals until the
    /// returned backoff has passed (the caller schedules the retry).
    fn requeue(&mut self, batch: Vec<T>) -> Duration {
        self.queued.splice(0..0, batch);
        self.retry_pending = true;
        self.backoff.next()
    }

    /// Whether another proposal must wait: `cap` are in flight, or a retry is due.
    fn busy(&self, cap: usize) -> bool {
        self.proposals >= cap || self.retry_pending
    }

    fn sent(&mut self, items: usize) {
        self.in_flight += items;
        self.proposals += 1;
    }

    fn answered(&mut self, items: usize) {
        self.in_flight = self.in_flight.saturating_sub(items);
        self.proposals = self.proposals.saturating_sub(1);
    }

    fn held(&self) -> usize {
        self.queued.len() + self.in_flight
    }
}

#[derive(Default)]
struct DrainState {
    replies: Vec<oneshot::Sender<DrainReport>>,
    report: DrainReport,
    /// Past this, give up flushing what the log does not accept.
    flush_expired: bool,
    /// A `ClearStanding` is in flight / has committed.
    clearing: bool,
    standing_cleared: bool,
}

/// A `Lease` this pool proposed, kept until both its reply and (with standing capacity) its
/// apply on the local replica were seen: until then it holds part of the pool's capacity.
struct Ticket {
    max: usize,
    /// Grants in the reply, once answered.
    answered: Option<usize>,
    /// Grants the local replica's apply reported, once seen.
    seen: Option<usize>,
    /// Answered and still not seen at a heartbeat tick: dropped at the next one (a safety net;
    /// `Resync` covers the one known way to miss an apply, a snapshot install).
    old: bool,
}

impl Ticket {
    /// Capacity this lease may still add beyond what the pool already counts.
    fn holds(&self) -> usize {
        match (self.answered, self.seen) {
            // Anything up to `max`, as grants or standing capacity.
            (None, None) => self.max,
            // Grants buffered; the rest becomes standing capacity once the replica shows it.
            (Some(granted), None) => self.max.saturating_sub(granted),
            // The rest is in the reported standing capacity; the grants come with the reply.
            (None, Some(granted)) => granted,
            (Some(_), Some(_)) => 0,
        }
    }
}

pub struct Supervisor {
    cfg: PoolConfig,
    registry: Arc<TaskRegistry>,
    backend: Arc<dyn Backend>,
    runtime: Handle,
    workers: Vec<Addr<Worker>>,
    idle: Vec<usize>,
    /// Granted, waiting for an idle worker. Counts against free capacity.
    buffered: VecDeque<Grant>,
    running: BTreeMap<LeaseRef, Running>,
    /// Leases the log no longer holds for us (a heartbeat was refused): aborted, not completed.
    lost: BTreeSet<LeaseRef>,

    /// Set once the leases of an earlier run of this pool (same worker name) are released;
    /// no lease is taken before, so the release cannot hit this run's own leases.
    recovered: bool,
    /// `Lease` proposals in flight.
    leases_in_flight: usize,
    /// Leases not yet settled (see [`Ticket`]), by ticket.
    tickets: BTreeMap<u64, Ticket>,
    next_ticket: u64,
    /// Whether this pool hears its replica's events, and so leaves standing capacity.
    events: bool,
    /// This pool's standing capacity as its replica last reported it.
    standing: usize,
    /// A `Lease` was proposed since the last heartbeat tick (which renews standing capacity).
    leased_since_tick: bool,
    lease_retry_pending: bool,
    lease_backoff: Backoff,
    /// Work may be leasable: the signal changed, the last lease came back full, the idle poll
    /// fired, or a lease failed. Cleared when a `Lease` is proposed.
    work_hint: bool,

    completions: Outbox<Completion>,
    releases: Outbox<LeaseRef>,
    heartbeat_in_flight: bool,

    draining: Option<DrainState>,
    stats: PoolStats,
    stats_tx: watch::Sender<PoolStats>,
}

impl Supervisor {
    pub fn new(
        cfg: PoolConfig,
        registry: Arc<TaskRegistry>,
        backend: Arc<dyn Backend>,
        runtime: Handle,
        stats_tx: watch::Sender<PoolStats>,
    ) -> Self {
        let stats = PoolStats {
            workers: cfg.workers,
            ..PoolStats::default()
        };
        Self {
            cfg,
            registry,
            backend,
            runtime,
            workers: Vec::new(),
            idle: Vec::new(),
            buffered: VecDeque::new(),
            running: BTreeMap::new(),
            lost: BTreeSet::new(),
            recovered: false,
            leases_in_flight: 0,
            tickets: BTreeMap::new(),
            next_ticket: 1,
            events: false,
            standing: 0,
            leased_since_tick: false,
            lease_retry_pending: false,
            lease_backoff: Backoff::new(),
            work_hint: true,
            completions: Outbox::new(),
            releases: Outbox::new(),
            heartbeat_in_flight: false,
            draining: None,
            stats,
            stats_tx,
        }
    }

    pub fn observable_state(&self) -> PoolStats {
        PoolStats {
            busy: self.running.len(),
            in_flight: self.buffered.len()
                + self.running.len()
                + self.completions.held()
                + self.releases.held(),
            draining: self.draining.is_some(),
            standing: self.standing,
            ..self.stats
        }
    }

    fn publish(&mut self) {
        let now = self.observable_state();
        self.stats_tx.send_if_modified(|s| {
            let changed = *s != now;
            *s = now;
            changed
        });
    }

    /// Capacity not yet spoken for (running, granted, standing, or what a lease not yet
    /// settled may add): the most the next `Lease` may ask for.
    fn free(&self) -> usize {
        let leasing: usize = self.tickets.values().map(Ticket::holds).sum();
        self.workers
            .len()
            .saturating_sub(self.running.len() + self.buffered.len() + self.standing + leasing)
    }

    /// Propose one command (see [`Self::on_runtime`]).
    fn propose(
        &self,
        cmd: Command,
    ) -> impl ActorFuture<Self, Output = Result<Response, ProposeError>> + use<> {
        self.on_runtime(self.backend.propose(cmd))
    }

    /// Run a proposal on the tokio runtime (the node's proposer lives there), await it here.
    fn on_runtime<T: Send + 'static>(
        &self,
        proposal: futures::future::BoxFuture<'static, Result<T, ProposeError>>,
    ) -> impl ActorFuture<Self, Output = Result<T, ProposeError>> + use<T> {
        let proposal = self.runtime.spawn(proposal);
        async move { proposal.await.unwrap_or(Err(ProposeError::ShuttingDown)) }.into_actor(self)
    }

    /// Release whatever an earlier run of this pool still holds: that process is gone, so its
    /// tasks should run now rather than when their leases expire. Retried until it commits.
    fn recover(&mut self, ctx: &mut Context<Self>) {
        let cmd = Command::ReleaseWorker {
            worker: self.cfg.worker_name.clone(),
        };
        ctx.spawn(self.propose(cmd).map(|res, act, ctx| match res {
            Ok(Response::ReleasedWorker(released)) => {
                if released > 0 {
                    info!(worker = %act.cfg.worker_name, released, "released the leases of an earlier run");
                }
                act.recovered = true;
                act.lease_backoff.reset();
                act.maybe_lease(ctx);
                act.check_drain(ctx);
            }
            other => {
                warn!(result = ?other.err(), "releasing an earlier run's leases failed; retrying");
                ctx.run_later(act.lease_backoff.next(), |act, ctx| act.recover(ctx));
            }
        }));
    }

    /// The `max` of a `Lease` that may be proposed now (free capacity), if one may.
    fn lease_room(&self) -> Option<u32> {
        if !self.recovered
            || self.draining.is_some()
            || self.leases_in_flight >= PIPELINE
            || self.lease_retry_pending
        {
            return None;
        }
        match self.free() {
            0 => None,
            free => Some(u32::try_from(free).unwrap_or(u32::MAX)),
        }
    }

    /// A `Lease` for `max` tasks, marked in flight (its reply goes to [`Self::on_lease_reply`]
    /// with the ticket returned).
    fn lease_command(&mut self, max: u32) -> (Command, u64) {
        self.work_hint = false;
        self.leases_in_flight += 1;
        self.leased_since_tick = true;
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.tickets.insert(
            ticket,
            Ticket {
                max: max as usize,
                answered: None,
                seen: None,
                old: false,
            },
        );
        let cmd = Command::Lease {
            worker: self.cfg.worker_name.clone(),
            queues: self.cfg.queues.clone(),
            max,
            lease_ms: self.cfg.lease_ms,
            standing_ticket: self.events.then_some(ticket),
        };
        (cmd, ticket)
    }

    fn maybe_lease(&mut self, ctx: &mut Context<Self>) {
        if !self.work_hint {
            return;
        }
        let Some(max) = self.lease_room() else { return };
        self.spawn_lease(max, ctx);
    }

    fn spawn_lease(&mut self, max: u32, ctx: &mut Context<Self>) {
        let (cmd, ticket) = self.lease_command(max);
        ctx.spawn(self.propose(cmd).map(move |res, act, ctx| {
            act.on_lease_reply(res, ticket, ctx);
            act.after_reply(ctx);
        }));
    }

    fn on_lease_reply(&mut self, res: Result<Response, ProposeError>, ticket: u64, ctx: &mut Context<Self>) {
        self.leases_in_flight = self.leases_in_flight.saturating_sub(1);
        let max = self.tickets.get(&ticket).map_or(0, |t| t.max);
        match res {
            Ok(Response::Leased(grants)) => {
                self.lease_backoff.reset();
                // Filled: it left no standing capacity (and the replica reports none). Else,
                // with events, the rest counts until the replica shows it.
                match self.tickets.get_mut(&ticket) {
                    Some(t) if self.events && t.seen.is_none() && grants.len() < max => {
                        t.answered = Some(grants.len())
                    }
                    _ => {
                        self.tickets.remove(&ticket);
                    }
                }
                // A full batch means more may be waiting; a short one means we took it all
                // (and, with standing capacity, later work is granted to us without asking).
                if max > 0 && grants.len() >= max {
                    self.work_hint = true;
                }
                self.on_grants(grants, ctx);
            }
            Ok(other) => {
                // Applied or not, the replica's reported standing capacity says what it left.
                self.tickets.remove(&ticket);
                error!(response = ?other, "unexpected response to lease");
                self.retry_lease_later(ctx);
            }
            Err(e) => {
                self.tickets.remove(&ticket);
                warn!(error = %e, "lease failed; retrying");
                self.retry_lease_later(ctx);
            }
        }
    }

    /// One apply on the local replica touched this pool.
    fn on_event(&mut self, event: WorkerEvent, ctx: &mut Context<Self>) {
        match event {
            WorkerEvent::Applied(fx) => {
                for (ticket, granted) in fx.leases {
                    match self.tickets.get_mut(&ticket) {
                        Some(t) if t.answered.is_none() => t.seen = Some(granted as usize),
                        // Settled, or a lease whose reply failed: the standing capacity it
                        // left is in `fx.standing` all the same.
                        _ => {
                            self.tickets.remove(&ticket);
                        }
                    }
                }
                if let Some(n) = fx.standing {
                    self.standing = n as usize;
                }
                self.on_standing_grants(fx.grants, ctx);
            }
            WorkerEvent::Resync { standing } => {
                self.standing = standing as usize;
                // Their applies may be inside the snapshot: never to be seen.
                self.tickets.retain(|_, t| t.answered.is_none());
            }
        }
        self.dispatch(ctx);
        self.maybe_lease(ctx);
        self.check_drain(ctx);
        self.publish();
    }

    /// Grants to this pool's standing capacity, from its replica's apply.
    fn on_standing_grants(&mut self, grants: Vec<Grant>, ctx: &mut Context<Self>) {
        if grants.is_empty() {
            return;
        }
        if !self.recovered {
            // An earlier run's (replayed): this run's `ReleaseWorker` gives them back.
            debug!(count = grants.len(), "dropped grants from before this run");
            return;
        }
        let (current, stale): (Vec<Grant>, Vec<Grant>) = grants
            .into_iter()
            .partition(|g| self.backend.holds(&self.cfg.worker_name, g.lease));
        if !stale.is_empty() {
            // Released, expired or completed since (a replayed apply): someone else's now.
            debug!(count = stale.len(), "dropped grants no longer held");
            self.stats.stale_grants_total += stale.len() as u64;
        }
        self.on_grants(current, ctx);
    }

    /// Heartbeat tick: drop tickets answered a tick ago whose apply the replica never reported.
    fn sweep_tickets(&mut self) {
        self.tickets.retain(|_, t| !(t.answered.is_some() && t.old));
        for t in self.tickets.values_mut() {
            t.old |= t.answered.is_some();
        }
    }

    /// Heartbeat tick: keep standing capacity from expiring while the pool is idle (a `Lease`
    /// of the free capacity, often 0, when none was proposed since the last tick).
    fn renew_standing(&mut self, ctx: &mut Context<Self>) {
        let quiet = !std::mem::take(&mut self.leased_since_tick);
        if !self.events
            || self.standing == 0
            || !quiet
            || !self.recovered
            || self.draining.is_some()
            || self.leases_in_flight >= PIPELINE
            || self.lease_retry_pending
        {
            return;
        }
        let max = u32::try_from(self.free()).unwrap_or(u32::MAX);
        self.spawn_lease(max, ctx);
    }

    /// What every proposal's reply ends with: follow-up proposals, drain, stats.
    fn after_reply(&mut self, ctx: &mut Context<Self>) {
        self.flush_completions(ctx);
        self.maybe_lease(ctx);
        self.check_drain(ctx);
        self.publish();
    }

    fn retry_lease_later(&mut self, ctx: &mut Context<Self>) {
        self.lease_retry_pending = true;
        ctx.run_later(self.lease_backoff.next(), |act, ctx| {
            act.lease_retry_pending = false;
            act.work_hint = true;
            act.maybe_lease(ctx);
        });
    }

    fn on_grants(&mut self, grants: Vec<Grant>, ctx: &mut Context<Self>) {
        if grants.is_empty() {
            return;
        }
        self.stats.leased_total += grants.len() as u64;
        debug!(count = grants.len(), "leased");
        if self.draining.is_some() {
            // Drain began while this lease was in flight: none of it will run here.
            self.releases.queued.extend(grants.iter().map(|g| g.lease));
            self.flush_releases(ctx);
        } else {
            self.buffered.extend(grants);
            self.dispatch(ctx);
        }
    }

    /// Hand buffered grants to idle workers.
    fn dispatch(&mut self, ctx: &mut Context<Self>) {
        while !self.buffered.is_empty() {
            let Some(worker) = self.idle.pop() else { return };
            let Some(grant) = self.buffered.pop_front() else {
                return;
            };
            let lease = grant.lease;
            let (abort_tx, abort_rx) = oneshot::channel();
            self.running.insert(
                lease,
                Running {
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

    fn on_finished(&mut self, lease: LeaseRef, result: RunResult, ctx: &mut Context<Self>) {
        if let Some(running) = self.running.remove(&lease) {
            self.idle.push(running.worker);
        }
        let lost = self.lost.remove(&lease);
        match result {
            _ if lost => {
                // Someone else may hold it now; a completion or release would be stale anyway.
                debug!(
                    task = lease.task,
                    attempt = lease.attempt,
                    "dropped the result of a lost lease"
                );
            }
            RunResult::Finished(outcome) => {
                match &outcome {
                    Outcome::Success(_) => self.stats.succeeded_total += 1,
                    Outcome::Failure { error, retry } => {
                        self.stats.failed_total += 1;
                        debug!(task = lease.task, attempt = lease.attempt, %error, retry, "task failed");
                    }
                }
                if let Some(d) = &mut self.draining {
                    d.report.finished += 1;
                }
                self.completions.queued.push(Completion { lease, outcome });
                self.flush_completions(ctx);
            }
            RunResult::Aborted => {
                if let Some(d) = &mut self.draining {
                    d.report.aborted += 1;
                }
                self.releases.queued.push(lease);
                self.flush_releases(ctx);
            }
        }
        self.dispatch(ctx);
        self.maybe_lease(ctx);
        self.check_drain(ctx);
        self.publish();
    }

    /// Propose everything finished so far as one `Complete` (up to the batch cap), unless one
    /// is already in flight: its answer triggers the next. The capacity the finished tasks
    /// freed is leased in the same entry (`Complete` first, then `Lease`), so a busy pool
    /// writes one entry per round instead of two, and leases no more than can run.
    fn flush_completions(&mut self, ctx: &mut Context<Self>) {
        let expired = self.draining.as_ref().is_some_and(|d| d.flush_expired);
        if self.completions.busy(PIPELINE) || self.completions.queued.is_empty() || expired {
            return;
        }
        let n = self
            .completions
            .queued
            .len()
            .min(self.cfg.max_completion_batch.max(1));
        let batch: Vec<Completion> = self.completions.queued.drain(..n).collect();
        self.completions.sent(n);
        let complete = Command::Complete {
            worker: self.cfg.worker_name.clone(),
            completions: batch.clone(),
        };
        let Some(max) = self.lease_room() else {
            ctx.spawn(self.propose(complete).map(move |res, act, ctx| {
                act.on_complete_reply(res, batch, ctx);
                act.after_reply(ctx);
            }));
            return;
        };
        let (lease, ticket) = self.lease_command(max);
        let reply = self.on_runtime(self.backend.propose_many(vec![complete, lease]));
        ctx.spawn(reply.map(move |res, act, ctx| {
            // One entry: both committed or neither (then both are retried, which is safe).
            let (complete_res, lease_res) = match res {
                Ok(responses) => match <[Response; 2]>::try_from(responses) {
                    Ok([c, l]) => (Ok(c), Ok(l)),
                    Err(other) => {
                        let e = ProposeError::Fatal(format!("{} responses to complete + lease", other.len()));
                        (Err(e.clone()), Err(e))
                    }
                },
                Err(e) => (Err(e.clone()), Err(e)),
            };
            act.on_complete_reply(complete_res, batch, ctx);
            act.on_lease_reply(lease_res, ticket, ctx);
            act.after_reply(ctx);
        }));
    }

    fn on_complete_reply(
        &mut self,
        res: Result<Response, ProposeError>,
        batch: Vec<Completion>,
        ctx: &mut Context<Self>,
    ) {
        self.completions.answered(batch.len());
        match res {
            Ok(resp) => {
                self.completions.backoff.reset();
                match resp {
                    Response::Completed(results) => {
                        let stale = results.iter().filter(|r| **r == CompletionResult::Stale).count();
                        self.stats.stale_total += stale as u64;
                        if stale > 0 {
                            debug!(stale, "stale completions ignored by the queue");
                        }
                    }
                    // Committed and applied all the same: retrying would not change it.
                    other => error!(response = ?other, "unexpected response to complete"),
                }
                self.stats.completed_total += batch.len() as u64;
            }
            Err(e) => {
                // Never dropped: a retry is safe, the queue fences completions by attempt.
                warn!(error = %e, count = batch.len(), "complete failed; retrying");
                let delay = self.completions.requeue(batch);
                ctx.run_later(delay, |act, ctx| {
                    act.completions.retry_pending = false;
                    act.flush_completions(ctx);
                    act.check_drain(ctx);
                });
            }
        }
    }

    /// Give leases back without spending an attempt; same batching and retrying as completions.
    fn flush_releases(&mut self, ctx: &mut Context<Self>) {
        let expired = self.draining.as_ref().is_some_and(|d| d.flush_expired);
        if self.releases.busy(1) || self.releases.queued.is_empty() || expired {
            return;
        }
        let n = self
            .releases
            .queued
            .len()
            .min(self.cfg.max_completion_batch.max(1));
        let batch: Vec<LeaseRef> = self.releases.queued.drain(..n).collect();
        self.releases.sent(n);
        let cmd = Command::Release {
            worker: self.cfg.worker_name.clone(),
            leases: batch.clone(),
        };
        ctx.spawn(self.propose(cmd).map(move |res, act, ctx| {
            act.releases.answered(batch.len());
            match res {
                Ok(resp) => {
                    act.releases.backoff.reset();
                    let released = match resp {
                        Response::Released(flags) => flags.iter().filter(|f| **f).count(),
                        other => {
                            error!(response = ?other, "unexpected response to release");
                            0
                        }
                    };
                    act.stats.released_total += released as u64;
                    if let Some(d) = &mut act.draining {
                        d.report.released += released;
                    }
                    debug!(count = batch.len(), released, "released leases");
                }
                Err(e) => {
                    warn!(error = %e, count = batch.len(), "release failed; retrying");
                    let delay = act.releases.requeue(batch);
                    ctx.run_later(delay, |act, ctx| {
                        act.releases.retry_pending = false;
                        act.flush_releases(ctx);
                        act.check_drain(ctx);
                    });
                }
            }
            act.flush_releases(ctx);
            act.check_drain(ctx);
            act.publish();
        }));
    }

    /// Extend every lease we hold (running or waiting for a worker) in one command.
    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        if self.heartbeat_in_flight {
            return;
        }
        let leases: Vec<LeaseRef> = self
            .running
            .keys()
            .copied()
            .filter(|l| !self.lost.contains(l))
            .chain(self.buffered.iter().map(|g| g.lease))
            .collect();
        if leases.is_empty() {
            return;
        }
        self.heartbeat_in_flight = true;
        let cmd = Command::Heartbeat {
            worker: self.cfg.worker_name.clone(),
            leases: leases.clone(),
            lease_ms: self.cfg.lease_ms,
        };
        ctx.spawn(self.propose(cmd).map(move |res, act, ctx| {
            act.heartbeat_in_flight = false;
            match res {
                Ok(Response::Heartbeated(extended)) => {
                    for (lease, ok) in leases.iter().zip(extended) {
                        if !ok {
                            act.on_lease_lost(*lease);
                        }
                    }
                }
                Ok(other) => error!(response = ?other, "unexpected response to heartbeat"),
                // The next tick tries again; a lease outlives several missed heartbeats.
                Err(e) => warn!(error = %e, "heartbeat failed"),
            }
            act.dispatch(ctx);
            act.maybe_lease(ctx);
            act.publish();
        }));
    }

    /// The queue refused to extend `lease` (it expired, or the task is gone): stop working on it.
    fn on_lease_lost(&mut self, lease: LeaseRef) {
        if let Some(running) = self.running.get_mut(&lease) {
            warn!(
                task = lease.task,
                attempt = lease.attempt,
                "lease lost; aborting the task"
            );
            self.lost.insert(lease);
            if let Some(abort) = running.abort.take() {
                let _ = abort.send(());
            }
        } else if let Some(at) = self.buffered.iter().position(|g| g.lease == lease) {
            warn!(
                task = lease.task,
                attempt = lease.attempt,
                "lease lost before the task started"
            );
            self.buffered.remove(at);
        }
    }

    fn start_drain(&mut self, grace: Duration, reply: oneshot::Sender<DrainReport>, ctx: &mut Context<Self>) {
        if let Some(d) = &mut self.draining {
            d.replies.push(reply);
            return;
        }
        info!(
            running = self.running.len(),
            grace_ms = grace.as_millis() as u64,
            "draining"
        );
        self.draining = Some(DrainState {
            replies: vec![reply],
            ..DrainState::default()
        });
        // Granted but not started: give them back now, another node can run them at once.
        let unstarted: Vec<LeaseRef> = self.buffered.drain(..).map(|g| g.lease).collect();
        self.releases.queued.extend(unstarted);
        self.flush_releases(ctx);
        ctx.run_later(grace, |act, _| {
            if !act.running.is_empty() {
                info!(
                    running = act.running.len(),
                    "grace is over; aborting running tasks"
                );
            }
            for running in act.running.values_mut() {
                if let Some(abort) = running.abort.take() {
                    let _ = abort.send(());
                }
            }
        });
        let flush_deadline = grace + Duration::from_millis(self.cfg.drain_flush_timeout_ms);
        ctx.run_later(flush_deadline, |act, ctx| {
            if let Some(d) = &mut act.draining {
                d.flush_expired = true;
            }
            act.check_drain(ctx);
        });
        self.check_drain(ctx);
        self.publish();
    }

    /// Drop this pool's standing capacity (draining): once no lease is in flight to add more.
    fn clear_standing(&mut self, ctx: &mut Context<Self>) {
        let Some(d) = &mut self.draining else { return };
        d.clearing = true;
        let cmd = Command::ClearStanding {
            worker: self.cfg.worker_name.clone(),
        };
        ctx.spawn(self.propose(cmd).map(|res, act, ctx| {
            if let Some(d) = &mut act.draining {
                d.clearing = false;
                match res {
                    Ok(_) => d.standing_cleared = true,
                    Err(e) => {
                        warn!(error = %e, "clearing standing capacity failed; retrying");
                        ctx.run_later(act.lease_backoff.next(), |act, ctx| act.check_drain(ctx));
                    }
                }
            }
            act.check_drain(ctx);
            act.publish();
        }));
    }

    fn check_drain(&mut self, ctx: &mut Context<Self>) {
        let Some(d) = &self.draining else { return };
        let must_clear = self.events && !d.standing_cleared;
        if must_clear && !d.clearing && !d.flush_expired && self.leases_in_flight == 0 {
            self.clear_standing(ctx);
        }
        let Some(d) = &self.draining else { return };
        let settled = self.running.is_empty()
            && self.leases_in_flight == 0
            && !must_clear
            && self.completions.held() == 0
            && self.releases.held() == 0;
        if !settled && !d.flush_expired {
            return;
        }
        let Some(mut d) = self.draining.take() else { return };
        d.report.unflushed =
            self.completions.held() + self.releases.held() + self.running.len() + self.buffered.len();
        if d.report.unflushed > 0 {
            error!(
                unflushed = d.report.unflushed,
                "drain deadline passed with results not accepted by the log"
            );
        }
        info!(
            finished = d.report.finished,
            released = d.report.released,
            aborted = d.report.aborted,
            "drained"
        );
        for reply in d.replies.drain(..) {
            let _ = reply.send(d.report);
        }
        // Keep answering stats as drained; the stopped actor drops the workers with it.
        self.draining = Some(DrainState {
            flush_expired: true,
            ..DrainState::default()
        });
        self.publish();
        ctx.stop();
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
        if let Some(events) = self.backend.worker_events(&self.cfg.worker_name) {
            self.events = true;
            ctx.add_stream(UnboundedReceiverStream::new(events));
        }
        // A fallback for a missed signal; it writes a `Lease` only when the replica shows work.
        ctx.run_interval(Duration::from_millis(self.cfg.idle_poll_ms.max(1)), |act, ctx| {
            if act.backend.may_have_work(&act.cfg.queues) {
                act.work_hint = true;
                act.maybe_lease(ctx);
                // No room to lease, but standing capacity: an entry that applies due timers
                // grants what came due to it (the node's ticker does this too; a local backend
                // has none).
                if act.work_hint && act.standing > 0 && act.leases_in_flight == 0 {
                    act.leased_since_tick = false;
                    act.renew_standing(ctx);
                }
            }
        });
        ctx.run_interval(
            Duration::from_millis(self.cfg.heartbeat_interval_ms.max(1)),
            |act, ctx| {
                act.heartbeat(ctx);
                act.sweep_tickets();
                act.renew_standing(ctx);
            },
        );
        info!(worker = %self.cfg.worker_name, workers = self.cfg.workers, queues = ?self.cfg.queues, "worker pool started");
        self.recover(ctx);
        self.publish();
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        // Workers outlive us while a task runs: ask them to stop now (their leases expire).
        for running in self.running.values_mut() {
            if let Some(abort) = running.abort.take() {
                let _ = abort.send(());
            }
        }
    }
}

impl Handler<Finished> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: Finished, ctx: &mut Self::Context) {
        self.on_finished(msg.lease, msg.result, ctx);
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
        self.work_hint = true;
        self.maybe_lease(ctx);
    }

    /// The replica went away: keep running on the idle poll rather than stopping (the default).
    fn finished(&mut self, _ctx: &mut Self::Context) {
        debug!("work signal closed; relying on the idle poll");
    }
}

impl StreamHandler<WorkerEvent> for Supervisor {
    fn handle(&mut self, event: WorkerEvent, ctx: &mut Self::Context) {
        self.on_event(event, ctx);
    }

    /// The replica went away (the node is stopping): leases still work, keep running.
    fn finished(&mut self, _ctx: &mut Self::Context) {
        debug!("worker events closed");
    }
}

impl Handler<Drain> for Supervisor {
    type Result = ResponseFuture<DrainReport>;

    fn handle(&mut self, msg: Drain, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.start_drain(msg.grace, tx, ctx);
        Box::pin(async move { rx.await.unwrap_or_default() })
    }
}
