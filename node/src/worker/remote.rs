//! Remote workers: a worker process connected over `WorkerService.Session` is a *pool*, the same
//! [`PoolCore`] as the node's own, whose runner is the stream (docs/WORKERS.md). [`Session`] is
//! that runner: a tokio task that feeds the core the worker's messages, the replica's pool
//! events, the work signal, ticks and timers, and carries out its decisions:
//!
//! - **Run** a grant: send it down the stream (the grants of one event go in one `Tasks`);
//! - **Propose**: through the [`Backend`] (the node's proposer: a follower forwards to the
//!   leader, like a local pool); completions the worker sends are the core's finished runs;
//! - **Acked** (the log's answer to completions and releases): `Acks` to the worker. A stale
//!   answer is judged on the replica after a read barrier ([`results::stale_status`]): a
//!   repeat of the committed result is `ACCEPTED`, anything else `STALE`;
//! - **Abort**: tell the worker (it sends no result) and end the run as aborted.
//!
//! The core heartbeats every lease the session holds while it runs. The session ends:
//! - when the stream breaks, a ping goes unanswered for [`SessionSettings::missed_pings`]
//!   intervals, or the worker breaks the protocol (a `WorkerError`, then an error status):
//!   the core drains with no grace, so every lease is released at once;
//! - when the worker drains (`Drain`): no more tasks, its answers are committed, `Drained`;
//! - when the node shuts down: a drain with the node's grace, then `UNAVAILABLE`.
//!
//! Progress reports are kept as each task's latest and written at most once a second
//! (`progress.rs`).
//!
//! Files: `inbound.rs` (the worker's messages), `decisions.rs` (carrying out the core's
//! decisions, time limits), `pings.rs` (keep-alive, and the stream's round trip for
//! lease-ahead), `results.rs` (what a result means and what it is answered; shared with the
//! unary `Complete`), `sessions.rs` (the names of the live sessions), `progress.rs`, `wire.rs`,
//! `tests.rs`.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use flotilla_proto::v1 as pb;
use flotilla_proto::v1::node_message::Msg as Out;
use futures::Stream;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use tokio::sync::mpsc;
use tokio::sync::watch;
use tokio::time::Instant;
use tonic::Status;
use tracing::debug;
use tracing::info;
use tracing::warn;

use super::backend::Backend;
use super::core::CoreConfig;
use super::core::PoolCore;
use super::core::Prefetch;
use super::core::Timer;
use super::core::Token;
use super::core::first_ticket;
use crate::error::ProposeError;
use crate::queue::LeaseRef;
use crate::queue::Response;
use crate::replica::Replica;

mod decisions;
mod inbound;
mod pings;
mod progress;
pub mod results;
pub mod sessions;
#[cfg(test)]
mod tests;
mod wire;

use progress::PROGRESS_FLUSH;
use progress::ProgressBuffer;
use results::Checked;
pub use sessions::Claim;
pub use sessions::Sessions;
use wire::message;
use wire::sleep_until;

/// Protocol version this node speaks (worker.proto).
pub const PROTOCOL_VERSION: u32 = 1;

/// How many ended leases a session remembers, to tell a late or repeated result (answered)
/// from a result for a task it never sent (a protocol error).
const REMEMBERED_ENDS: usize = 65_536;

/// A node's remote worker settings (the same for every session).
#[derive(Clone, Debug)]
pub struct SessionSettings {
    pub node_id: u64,
    pub lease_ms: u64,
    pub heartbeat_interval: Duration,
    pub idle_poll: Duration,
    pub ping_interval: Duration,
    /// Pings in a row without a pong before the stream counts as broken.
    pub missed_pings: u32,
    pub max_result_bytes: usize,
    /// Time limit of a task that sets none; the node aborts a run this long after sending it
    /// (plus [`TIME_LIMIT_SLACK`]).
    pub default_time_limit_ms: u64,
    /// How long a worker's own drain may take (its running tasks get this long).
    pub worker_drain_grace: Duration,
    pub drain_flush_timeout: Duration,
    pub max_batch: usize,
    /// Lease-ahead of a worker that states none in its Hello (the node's `--prefetch`).
    pub prefetch: Prefetch,
}

/// The worker's own time limit comes first; the node aborts this much later.
pub const TIME_LIMIT_SLACK: Duration = Duration::from_secs(1);

/// What reads the session does besides its backend: the replica (task views, leases of a
/// name), and a barrier after which it reflects everything committed before.
#[derive(Clone)]
pub struct SessionNode {
    pub backend: Arc<dyn Backend>,
    pub replica: Arc<Replica>,
    pub barrier: Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>,
}

/// A worker's Hello, validated (`grpc/worker_service.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    pub name: String,
    /// In order of preference; never empty.
    pub queues: Vec<String>,
    /// At least 1, or 0 for a session that only resumes.
    pub concurrency: u32,
    pub resume: Vec<LeaseRef>,
    /// Tasks the node holds for it beyond `concurrency`; `None`: the node's setting.
    pub prefetch: Option<Prefetch>,
    /// Tasks it queues beyond `concurrency` (0: none): lease-ahead is sent down to it
    /// (`worker/core/queued.rs`).
    pub queue_ahead: u32,
}

/// Messages to the worker; an `Err` ends the stream with that status.
pub type Outbound = mpsc::UnboundedSender<Result<pb::NodeMessage, Status>>;

/// Why a session ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Reading the worker's messages.
    Open,
    /// The worker asked to drain: still reading (its answers), `Drained` at the end.
    WorkerDrain,
    /// The node shuts down: still reading, `UNAVAILABLE` at the end.
    NodeDrain,
    /// The stream is gone (or refused): releasing everything, reading nothing.
    Broken,
}

/// One worker session: the core and the stream's state.
pub struct Session<S> {
    settings: SessionSettings,
    node: SessionNode,
    core: PoolCore,
    name: String,
    queues: Vec<String>,
    inbound: S,
    out: Outbound,
    phase: Phase,
    /// Sent to the worker, not yet answered: its time-limit deadline, and the limit (a task
    /// queued at the worker counts it from its start).
    running: BTreeMap<LeaseRef, (Instant, Duration)>,
    deadlines: BTreeSet<(Instant, LeaseRef)>,
    /// Answered, not yet acked: what the worker answered.
    answering: BTreeMap<LeaseRef, Checked>,
    /// Ended here (aborted, answered) or resumed but no longer held: a result for one of
    /// these is answered, never a protocol error. Bounded, oldest forgotten first.
    ended: BTreeSet<LeaseRef>,
    ended_order: VecDeque<LeaseRef>,
    last_pong: Instant,
    nonce: u64,
    /// The ping whose pong measures the stream's round trip next (for lease-ahead), and when
    /// it was sent.
    probe: Option<(u64, Instant)>,
    drained: bool,
    /// The latest progress of running tasks, written at most once per [`PROGRESS_FLUSH`].
    progress: ProgressBuffer,
    /// The origin of the core's time.
    epoch: Instant,
    /// Held for as long as the session runs.
    _claim: Claim,
}

type Reply = (Token, Result<Vec<Response>, ProposeError>);

impl<S> Session<S>
where
    S: Stream<Item = Result<pb::WorkerMessage, Status>> + Unpin + Send,
{
    /// The session of an accepted Hello (its name claimed, Welcome sent). A resuming worker
    /// keeps the leases of `hello.resume` its name still holds; the others of its name are
    /// released, and results for the resumed ones it no longer holds are answered all the
    /// same (accepted if they are what committed).
    pub async fn open(
        settings: SessionSettings,
        node: SessionNode,
        hello: Hello,
        claim: Claim,
        (inbound, out): (S, Outbound),
    ) -> Self {
        let slots = (hello.concurrency as usize).max(1);
        let cfg = CoreConfig {
            pool: hello.name.clone(),
            queues: hello.queues.clone(),
            lease_ms: settings.lease_ms,
            slots,
            prefetch: hello.prefetch.unwrap_or(settings.prefetch),
            min_lease_to_start: settings.heartbeat_interval,
            max_batch: settings.max_batch,
            runner_queue: hello.queue_ahead as usize,
            drain_flush_timeout: settings.drain_flush_timeout,
            first_ticket: first_ticket(node.backend.log_now_ms()),
        };
        let (core, kept, gone) = if hello.resume.is_empty() {
            (PoolCore::new(cfg), Vec::new(), Vec::new())
        } else {
            if let Err(e) = (node.barrier)().await {
                warn!(error = %e, "read barrier failed; resuming from this replica");
            }
            let held: BTreeSet<LeaseRef> = node
                .replica
                .read(|q| q.leases_of(&hello.name))
                .into_iter()
                .collect();
            let (kept, gone): (Vec<LeaseRef>, Vec<LeaseRef>) =
                hello.resume.iter().partition(|l| held.contains(*l));
            let release = held.iter().filter(|l| !kept.contains(l)).copied().collect();
            (PoolCore::resuming(cfg, kept.clone(), release), kept, gone)
        };
        let now = Instant::now();
        let mut s = Self {
            core: core.with_acks(),
            name: hello.name,
            queues: hello.queues,
            inbound,
            out,
            phase: Phase::Open,
            running: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            answering: BTreeMap::new(),
            ended: BTreeSet::new(),
            ended_order: VecDeque::new(),
            last_pong: now,
            nonce: 0,
            probe: None,
            drained: false,
            progress: ProgressBuffer::new(now, PROGRESS_FLUSH),
            epoch: now,
            _claim: claim,
            node,
            settings,
        };
        let limit = Duration::from_millis(s.settings.default_time_limit_ms) + TIME_LIMIT_SLACK;
        for lease in kept {
            s.track(lease, now, limit);
        }
        for lease in gone {
            s.remember_end(lease);
        }
        if hello.concurrency == 0 {
            // Only delivers the results of what it resumed.
            s.phase = Phase::WorkerDrain;
            let grace = s.settings.worker_drain_grace;
            s.core().drain(grace);
        }
        s
    }

    /// Run until the session is over.
    pub async fn run(mut self, mut shutdown: watch::Receiver<Option<Duration>>) {
        let s = &self.settings;
        let mut heartbeat = tokio::time::interval(s.heartbeat_interval);
        let mut idle_poll = tokio::time::interval(s.idle_poll);
        let mut ping = tokio::time::interval(s.ping_interval);
        for i in [&mut heartbeat, &mut idle_poll, &mut ping] {
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        let mut pool_events = self.node.backend.pool_events(&self.name);
        let mut work = self.node.backend.work_signal();
        let mut proposals: FuturesUnordered<BoxFuture<'static, Reply>> = FuturesUnordered::new();
        let mut timers: FuturesUnordered<BoxFuture<'static, Timer>> = FuturesUnordered::new();
        info!(worker = %self.name, queues = ?self.queues, "worker session started");
        if let Some(grace) = *shutdown.borrow_and_update() {
            self.node_drain(grace);
        }
        self.execute(&mut proposals, &mut timers);
        // The time-limit timer is one Sleep for the session, moved when the first deadline
        // moves: a new one per loop turn registered and dropped a timer entry on every message.
        let limit_timer = tokio::time::sleep_until(Instant::now());
        tokio::pin!(limit_timer);
        let mut armed: Option<Instant> = None;
        while !self.drained {
            let reading = matches!(self.phase, Phase::Open | Phase::WorkerDrain | Phase::NodeDrain);
            let next_limit = self.deadlines.first().map(|(at, _)| *at);
            if next_limit != armed {
                if let Some(at) = next_limit {
                    limit_timer.as_mut().reset(at);
                }
                armed = next_limit;
            }
            tokio::select! {
                msg = self.inbound.next(), if reading => self.inbound_message(msg),
                Some((token, reply)) = proposals.next() => self.core().replied(token, reply),
                Some(timer) = timers.next() => self.core().timer(timer),
                Some(event) = pool_events.recv() => {
                    let now = self.epoch.elapsed();
                    let (node, name) = (&self.node, &self.name);
                    self.core.at(now).applied(event, |lease| node.backend.holds(name, lease));
                }
                Ok(()) = work.changed() => self.core().work_signal(),
                _ = heartbeat.tick() => {
                    self.probe_stream();
                    self.core().heartbeat_tick();
                }
                _ = idle_poll.tick() => {
                    let shows_work = self.node.backend.may_have_work(&self.queues);
                    self.core().idle_poll(shows_work);
                }
                _ = ping.tick(), if reading => self.ping(),
                () = &mut limit_timer, if armed.is_some() => {
                    armed = None;
                    self.time_limits();
                }
                () = sleep_until(self.progress.due()) => self.flush_progress(),
                Ok(()) = shutdown.changed() => {
                    if let Some(grace) = *shutdown.borrow_and_update() {
                        self.node_drain(grace);
                    }
                }
            }
            self.execute(&mut proposals, &mut timers);
        }
        let stats = self.core.stats();
        info!(
            worker = %self.name,
            phase = ?self.phase,
            leased = stats.leased_total,
            taken_back = stats.unbuffered_total,
            short_lease = stats.short_lease_released_total,
            "worker session ended"
        );
    }

    fn node_drain(&mut self, grace: Duration) {
        if matches!(self.phase, Phase::Open | Phase::WorkerDrain) {
            self.phase = Phase::NodeDrain;
            self.core().drain(grace);
        }
    }

    /// The stream is gone: release everything now.
    fn broken(&mut self, why: &str) {
        if self.phase == Phase::Broken {
            return;
        }
        info!(worker = %self.name, why, running = self.running.len(), "worker stream lost; releasing its tasks");
        self.phase = Phase::Broken;
        // The drain aborts every run at once; a drain under way has its grace cut short.
        self.core().drain(Duration::ZERO);
        self.core().timer(Timer::GraceOver);
    }

    /// A protocol error: say why, end the stream, release everything.
    fn refuse(&mut self, why: String) {
        warn!(worker = %self.name, error = %why, "worker protocol error; ending its stream");
        self.send(Out::Error(pb::WorkerError { message: why.clone() }));
        let _ = self.out.send(Err(Status::invalid_argument(why.clone())));
        self.broken(&why);
    }

    fn finish(&mut self) {
        self.drained = true;
        match self.phase {
            Phase::WorkerDrain => self.send(Out::Drained(pb::Drained {})),
            Phase::NodeDrain => {
                let why = "the node is shutting down; connect to another node";
                self.send(Out::Error(pb::WorkerError { message: why.into() }));
                let _ = self.out.send(Err(Status::unavailable(why)));
            }
            Phase::Open | Phase::Broken => {}
        }
    }

    // ---- bookkeeping ----

    /// The core, told the time of the event about to be fed to it.
    fn core(&mut self) -> &mut PoolCore {
        let now = self.epoch.elapsed();
        self.core.at(now)
    }

    fn send(&self, msg: Out) {
        // A closed stream is noticed on the inbound side.
        let _ = self.out.send(Ok(message(msg)));
    }

    /// Write the progress waiting, if due. Fire and forget: a report is only the latest
    /// word, fenced by its lease in the log; a lost one is replaced by the next.
    fn flush_progress(&mut self) {
        let Some(command) = self.progress.flush(Instant::now()) else {
            return;
        };
        let write = self.node.backend.propose_many(vec![command]);
        let worker = self.name.clone();
        tokio::spawn(async move {
            if let Err(e) = write.await {
                debug!(%worker, error = %e, "progress not written");
            }
        });
    }

    /// A task sent at `sent`, aborted `limit` later (time limit and slack) unless answered.
    fn track(&mut self, lease: LeaseRef, sent: Instant, limit: Duration) {
        let deadline = sent + limit;
        if let Some((old, _)) = self.running.insert(lease, (deadline, limit)) {
            self.deadlines.remove(&(old, lease));
        }
        self.deadlines.insert((deadline, lease));
    }

    fn untrack(&mut self, lease: LeaseRef) -> Option<Instant> {
        self.progress.forget(lease);
        let (at, _) = self.running.remove(&lease)?;
        self.deadlines.remove(&(at, lease));
        Some(at)
    }

    fn known_end(&self, lease: LeaseRef) -> bool {
        self.ended.contains(&lease)
    }

    fn remember_end(&mut self, lease: LeaseRef) {
        if self.ended.insert(lease) {
            self.ended_order.push_back(lease);
            if self.ended_order.len() > REMEMBERED_ENDS
                && let Some(old) = self.ended_order.pop_front()
            {
                self.ended.remove(&old);
            }
        }
    }
}
