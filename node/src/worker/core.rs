//! [`PoolCore`]: every decision of a worker pool, with no IO, no runtime and no clock.
//!
//! The core is fed events and answers with [`Decision`]s, which its shell carries out (the
//! actix [`super::supervisor::Supervisor`] today; a remote worker's stream session next, where
//! "run" sends the grant down the stream, "abort" tells the worker, a result message is
//! [`PoolCore::finished`], and a broken stream is a drain with no grace). Time enters only as
//! events: the shell owns the timers ([`Decision::After`]) and the periodic ticks, and says
//! what time it is before each event ([`PoolCore::at`]): the core measures its round trips and
//! run times, and bounds its buffered leases, on that time.
//!
//! - **Events in**: [`PoolCore::replied`] (the outcome of a proposal, matched by its
//!   [`Token`]), [`PoolCore::applied`] (what the local replica's apply did for this pool, or a
//!   resync after a snapshot), [`PoolCore::finished`] (a run ended, or was aborted),
//!   [`PoolCore::heartbeat_tick`], [`PoolCore::idle_poll`], [`PoolCore::work_signal`],
//!   [`PoolCore::drain`] and [`PoolCore::timer`] (retry due, grace over, flush deadline).
//! - **Decisions out**: propose a typed op or a `Complete` + `Lease` pair in one entry
//!   ([`Proposal`]), run a grant, abort a run, call back after a delay, drained (with its
//!   report), stats changed.
//!
//! **Capacity.** The runner has `slots` (worker actors, or a remote worker's declared
//! concurrency); the pool holds at most `slots + allowance` tasks, the allowance being its
//! lease-ahead (`core/prefetch.rs`: sized by the bandwidth-delay product under `auto`), and the
//! buffered grants wait for a slot (`core/buffer.rs`: when they start, when they go back
//! instead). Spoken for are the running and buffered tasks, the standing capacity the replica
//! last reported, and what a `Lease` not yet settled may still add (`core/tickets.rs`). A
//! `Lease` asks for the rest, so grants never outnumber the capacity it was asked under (an
//! allowance that fell since keeps what it was granted); a grant beyond the slots and the most
//! lease-ahead holds (a lease whose reply failed and that applied after all) is released at
//! once, never run.
//!
//! **Grants.** Every `Lease` carries a ticket. Its grants come with its reply; a lease that left
//! standing capacity is also reported by the replica's apply, with its grants, and the pool takes
//! them from whichever comes first. Grants to standing capacity come only from the apply, and count
//! only once the replica has shown one of this run's leases (it applies in log order: what it
//! reports before is an earlier run's, replayed late). A filled lease is settled by its reply, so a
//! busy pool hears no events. Taking every grant from the apply alone was tried and not kept: in
//! one run of `sim bench --nodes 3` it cost ~9% of throughput, because a follower applies after the
//! leader's reply (a single run on a shared machine, not yet an interleaved comparison in
//! docs/BENCHMARKS.md). A grant heard of from the replica runs only if the replica still shows it
//! as this pool's lease (a replayed apply), never twice, and only after this run's `ReleasePool`
//! committed (grants before it belong to an earlier run).
//!
//! **Proposals** go through one outbox with one backoff (`core/outbox.rs`). Completions go out
//! with a `Lease` for the capacity they freed in the same entry, paced by the commit round: at
//! once when none of their entries is in flight (a lone finished task waits for nothing), else
//! when the newest in flight is answered or one smoothed round trip old, whichever is first,
//! up to [`PIPELINE`] in flight; what finishes meanwhile is folded into the next entry, and a
//! `Lease` alone waits for it too. So a busy pool writes about one completion entry per round,
//! each carrying more, not up to [`PIPELINE`]: a node's CPU is mostly per entry
//! (docs/BENCHMARKS.md, "Issue 15 — a round-paced completion outbox"). Releases and
//! heartbeats have one in flight each. Standing capacity is renewed by every lease (an idle
//! pool proposes a `Lease` of its free capacity, possibly 0, once per heartbeat interval
//! without one).
//!
//! **The runner's queue** (`core/queued.rs`): a runner that queues (a remote worker whose
//! Hello says `queue_ahead`, [`CoreConfig::runner_queue`]) is handed lease-ahead while runs are
//! short ([`Decision::Queue`]), so that a slot it frees starts the next task without waiting
//! for the stream; the core counts what it queued as held, models which of it runs (the runner
//! starts what it holds in the order sent), and takes it back ([`Decision::TakeBack`]) when it
//! would wait behind long runs, when its lease runs short, or on drain.
//!
//! **Drain** (`core/drain.rs`): stop leasing, release the buffered tasks, let running ones
//! finish for the grace, then abort them and release their leases; clear the standing
//! capacity once no lease is in flight; drained when every lease and the `ClearStanding` were
//! seen applied (no grant is still on its way) and everything owed is accepted, or at the
//! flush deadline.
//!
//! Files: `leasing.rs` (free capacity, leases, grants), `prefetch.rs` (the lease-ahead rule),
//! `buffer.rs`, `runs.rs` (runs ending, heartbeats), `tickets.rs`, `outbox.rs`, `drain.rs`,
//! `queued.rs`, `resume.rs`, `revoke.rs` (an operator's `cancel --terminate`); `tests.rs`, `ahead_tests.rs` and `queued_tests.rs` (step by step) and `proptests.rs` (random
//! event orders against the real state machine).

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::collections::VecDeque;
use std::time::Duration;

use tracing::debug;
use tracing::info;
use tracing::warn;

use super::pool::PoolStats;
use crate::error::ProposeError;
use crate::queue::Completion;
use crate::queue::CompletionResult;
use crate::queue::Grant;
use crate::queue::LeaseRef;
use crate::queue::Outcome;
use crate::queue::Response;
use crate::queue::ops;

#[cfg(test)]
mod ahead_tests;
mod buffer;
mod drain;
mod leasing;
mod outbox;
mod prefetch;
#[cfg(test)]
mod proptests;
mod queued;
#[cfg(test)]
mod queued_tests;
mod resume;
mod revoke;
mod runs;
#[cfg(test)]
mod tests;
mod tickets;

pub use super::pool::DrainReport;
use buffer::Buffered;
use drain::DrainState;
use outbox::Outbox;
pub use outbox::Proposal;
use outbox::one;
use outbox::pair;
use prefetch::Pacer;
pub use prefetch::Prefetch;
pub use prefetch::PrefetchError;
use queued::Queued;
// What the replica tells a pool: the core's input, defined where it is produced.
pub use crate::replica::PoolApplied;
pub use crate::replica::PoolEvent;
use outbox::Sent;
use tickets::Tickets;

/// Most completion (and lease) proposals in flight at once. The next completion entry waits
/// for the previous one's answer, or one round trip at most (`PoolCore::completion_wait`),
/// so a busy pool has about one in flight; more only when answers come later than the
/// measured round trip. Beyond this, batches grow instead of entries.
pub const PIPELINE: usize = 4;

/// What the core needs to know about its pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreConfig {
    /// The pool's name in the queue's commands (their `worker` field).
    pub pool: String,
    /// Queues to lease from, in order of preference; empty means all.
    pub queues: Vec<String>,
    /// Lease length of each grant and heartbeat extension.
    pub lease_ms: u64,
    /// Tasks the runner runs at once.
    pub slots: usize,
    /// Tasks held beyond the slots (buffered, standing, asked for): `core/prefetch.rs`.
    pub prefetch: Prefetch,
    /// A buffered grant starts only while its lease has this much left (plus a round trip):
    /// the heartbeat interval, so that a heartbeat extends it before it ends.
    pub min_lease_to_start: Duration,
    /// Most completions (or releases) in one command; also the most tasks held ahead.
    pub max_batch: usize,
    /// Tasks the runner itself queues beyond its slots, starting them in the order it got them
    /// (a remote worker's `Hello.queue_ahead`): lease-ahead is handed to it, up to this many,
    /// while runs are short (`core/queued.rs`). 0: the runner runs what it is given at once,
    /// and lease-ahead waits here.
    pub runner_queue: usize,
    /// After the drain's grace, how long to keep proposing what the log does not accept.
    pub drain_flush_timeout: Duration,
    /// This run's first lease ticket: above any ticket an earlier run of the pool (same name)
    /// used, so that a replayed apply of its lease is never taken for one of this run's. See
    /// [`first_ticket`].
    pub first_ticket: u64,
}

/// A first ticket above every earlier run's, from the log's time on the local replica when
/// the pool starts: runs are apart by more than a millisecond of log time, and no run leases
/// 2^20 times per millisecond.
pub fn first_ticket(log_now_ms: u64) -> u64 {
    log_now_ms.saturating_mul(1 << 20).max(1)
}

/// Matches a proposal's reply to the proposal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Token(u64);

/// A callback the core asked for with [`Decision::After`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// A failed proposal's backoff has passed: send what is owed again.
    Retry,
    /// The drain's grace is over: abort what still runs.
    GraceOver,
    /// The drain's flush deadline passed: give up on what the log did not accept.
    FlushDeadline,
    /// Tasks wait for busy slots: see whether any run ended since (`core/buffer.rs`).
    Stall,
    /// Completions wait for the previous completion entry (`PoolCore::completion_wait`): send
    /// them if it is still not answered.
    Pace,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunResult {
    /// The attempt has an outcome to record (success, failure, panic, time limit).
    Finished(Outcome),
    /// Stopped before it finished, on request or because the runner is going away: the lease
    /// is released, not failed.
    Aborted,
}

/// What the shell must do.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Propose this as one log entry; hand its outcome to [`PoolCore::replied`] with the token.
    Propose(Token, Proposal),
    /// Run this grant on a free slot; its end comes back through [`PoolCore::finished`].
    Run(Grant),
    /// Hand this grant to the runner's own queue (only with [`CoreConfig::runner_queue`]): it
    /// starts it when a slot frees, after what it already holds. Its end comes back through
    /// [`PoolCore::finished`], as a run's does (`Aborted` if it is given back unstarted).
    Queue(Grant),
    /// Ask the runner to give back this queued grant if it has not started it. Either answer
    /// comes back through [`PoolCore::finished`]: `Aborted` (given back), or its outcome (it had
    /// started). A runner that is gone answers nothing: a drain's grace aborts it.
    TakeBack(LeaseRef),
    /// Stop the run of this lease (or drop it from the runner's queue); it still comes back
    /// through [`PoolCore::finished`].
    Abort(LeaseRef),
    /// Call [`PoolCore::timer`] with this timer after this long.
    After(Duration, Timer),
    /// The drain is over: answer whoever asked. The pool decides nothing more.
    Drained(DrainReport),
    /// The pool's stats changed.
    Stats(PoolStats),
    /// What the log answered to these completions and releases (only from a core made
    /// [`PoolCore::with_acks`]: a remote worker is told).
    Acked(Vec<(LeaseRef, Acked)>),
}

/// The log's answer to one completion or release.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acked {
    Completed(CompletionResult),
    /// Whether the lease was released (false: it was not current any more).
    Released(bool),
}

#[derive(Debug)]
struct Running {
    /// The abort was decided already.
    aborted: bool,
    /// When it started (the core's time).
    started: Duration,
}

/// A pool's state and decisions (see the module doc).
#[derive(Debug)]
pub struct PoolCore {
    cfg: CoreConfig,
    /// Set once the leases of an earlier run of this pool (same name) are released; no lease
    /// is taken before, so the release cannot hit this run's own leases.
    recovered: bool,
    /// `Some`: recover by releasing these leases (and the standing capacity) instead of every
    /// lease of the name: a resuming remote worker keeps the rest (`core/resume.rs`).
    resume_release: Option<Vec<LeaseRef>>,
    /// Report the log's answers to completions and releases ([`Decision::Acked`]).
    acks: bool,
    /// Granted, waiting for a slot.
    buffered: VecDeque<Buffered>,
    /// Handed to the runner's queue and not started by the core's count, in the order sent.
    queued: VecDeque<Queued>,
    running: BTreeMap<LeaseRef, Running>,
    /// Running leases the log no longer holds for us (a heartbeat was refused, or revoked):
    /// aborted, and their result dropped.
    lost: BTreeSet<LeaseRef>,
    /// Leases an operator revoked lately (`core/revoke.rs`).
    revocations: revoke::Revocations,
    tickets: Tickets,
    /// This pool's standing capacity as its replica last reported it.
    standing: usize,
    /// Work may be leasable: the signal changed, the last lease came back full, the idle poll
    /// saw work, or a retry is due. Cleared when a `Lease` is proposed.
    work_hint: bool,
    /// A `Lease` was proposed since the last heartbeat tick (which renews standing capacity).
    leased_since_tick: bool,
    outbox: Outbox,
    drain: Option<DrainState>,
    /// The time of the event being handled, as the shell last said ([`PoolCore::at`]).
    now: Duration,
    /// Round trips, run times, and the lease-ahead allowance they give.
    pacer: Pacer,
    /// Runs ended so far (finished or aborted).
    runs_ended: u64,
    /// A stall timer is set: `runs_ended` when it was.
    stall: Option<u64>,
    /// A [`Timer::Pace`] is set.
    pacing: bool,
    /// A `ClearAndLease` was proposed and its apply not yet seen.
    restanding: bool,
    /// The replica has applied one of this run's leases: grants to standing capacity it
    /// reports from now on are this run's (`core/leasing.rs`).
    replica_caught_up: bool,
    /// How far the log's clock is ahead of the core's at most, in ms, as last measured
    /// (`core/buffer.rs`).
    log_ahead_ms: Option<i64>,
    /// Counters; the rest of [`PoolStats`] is derived in [`PoolCore::stats`].
    stats: PoolStats,
    published: Option<PoolStats>,
    out: VecDeque<Decision>,
}

impl PoolCore {
    /// A pool that has not started: its first decision releases an earlier run's leases.
    pub fn new(cfg: CoreConfig) -> Self {
        Self::start(cfg, None, Vec::new())
    }

    /// `resume_release`: see the field; `running`: leases the runner already runs.
    fn start(cfg: CoreConfig, resume_release: Option<Vec<LeaseRef>>, running: Vec<LeaseRef>) -> Self {
        assert!(cfg.slots >= 1, "a pool runs at least one task");
        let stats = PoolStats {
            workers: cfg.slots,
            ..PoolStats::default()
        };
        let first_ticket = cfg.first_ticket;
        let pacer =
            Pacer::new(cfg.prefetch, cfg.slots, cfg.max_batch.max(1)).queuing_runner(cfg.runner_queue > 0);
        let mut core = Self {
            cfg,
            recovered: false,
            resume_release,
            acks: false,
            buffered: VecDeque::new(),
            queued: VecDeque::new(),
            running: running
                .into_iter()
                .map(|l| {
                    let running = Running {
                        aborted: false,
                        started: Duration::ZERO,
                    };
                    (l, running)
                })
                .collect(),
            lost: BTreeSet::new(),
            revocations: revoke::Revocations::default(),
            tickets: Tickets::starting_at(first_ticket),
            standing: 0,
            work_hint: true,
            leased_since_tick: false,
            outbox: Outbox::default(),
            drain: None,
            now: Duration::ZERO,
            pacer,
            runs_ended: 0,
            stall: None,
            pacing: false,
            restanding: false,
            replica_caught_up: false,
            log_ahead_ms: None,
            stats,
            published: None,
            out: VecDeque::new(),
        };
        core.settle();
        core
    }

    /// Report the log's answer to every completion and release ([`Decision::Acked`]).
    pub fn with_acks(mut self) -> Self {
        self.acks = true;
        self
    }

    /// The shell's time (any fixed origin, never going back) for the events that follow:
    /// `core.at(now).finished(..)`. Time moves only through this.
    pub fn at(&mut self, now: Duration) -> &mut Self {
        self.now = self.now.max(now);
        self
    }

    /// The next decision to carry out, oldest first.
    pub fn next_decision(&mut self) -> Option<Decision> {
        self.out.pop_front()
    }

    /// A snapshot of the pool.
    pub fn stats(&self) -> PoolStats {
        PoolStats {
            busy: self.running.len(),
            in_flight: self.buffered.len()
                + self.queued.len()
                + self.running.len()
                + self.outbox.completions_held()
                + self.outbox.releases_held(),
            draining: self.drain.is_some(),
            standing: self.standing,
            buffered: self.buffered.len() + self.queued.len(),
            lease_ahead: self.pacer.allowance(),
            ..self.stats
        }
    }

    // ---- events ----

    /// The outcome of the proposal sent with `token`.
    pub fn replied(&mut self, token: Token, reply: Result<Vec<Response>, ProposeError>) {
        let Some((sent, sent_at)) = self.outbox.answered(token) else {
            warn!(?token, "reply to no proposal in flight");
            return;
        };
        // Every entry the pool proposes takes one commit round trip. Releases and heartbeats
        // count too: after faults stretched the estimate past a lease, a pool whose grants all
        // go back as too short to start proposes nothing else, and only its releases' answers
        // bring the estimate down (`sim dst --seed 52`: 3 s, ~200 releases of one task).
        let commit_round_trip = matches!(
            sent,
            Sent::Lease { .. }
                | Sent::ClearAndLease { .. }
                | Sent::Complete(_)
                | Sent::CompleteAndLease(..)
                | Sent::Release(_)
                | Sent::Heartbeat(_)
        );
        if commit_round_trip && reply.is_ok() {
            self.pacer.round_trip(self.now.saturating_sub(sent_at));
        }
        let result = match &sent {
            Sent::ReleasePool => one::<ops::ReleasePool>(reply).map(|released| {
                if released > 0 {
                    info!(pool = %self.cfg.pool, released, "released the leases of an earlier run");
                }
                self.recovered = true;
            }),
            Sent::Resume => self.resumed(reply),
            Sent::Lease { ticket } => {
                one::<ops::Lease>(reply).map(|grants| self.lease_granted(*ticket, grants))
            }
            Sent::ClearAndLease { ticket } => pair::<ops::ClearStanding, ops::Lease>(reply)
                .map(|(_, grants)| self.lease_granted(*ticket, grants)),
            Sent::Complete(batch) => one::<ops::Complete>(reply).map(|r| self.completed(batch, &r)),
            Sent::CompleteAndLease(batch, ticket) => {
                pair::<ops::Complete, ops::Lease>(reply).map(|(r, grants)| {
                    self.completed(batch, &r);
                    self.lease_granted(*ticket, grants);
                })
            }
            Sent::Release(batch) => one::<ops::Release>(reply).map(|flags| {
                let released = flags.iter().filter(|f| **f).count();
                self.stats.released_total += released as u64;
                if let Some(d) = &mut self.drain {
                    d.report.released += released;
                }
                debug!(count = batch.len(), released, "released leases");
                if self.acks {
                    let acks = batch.iter().zip(flags).map(|(l, f)| (*l, Acked::Released(f)));
                    self.out.push_back(Decision::Acked(acks.collect()));
                }
            }),
            Sent::Heartbeat(leases) => one::<ops::Heartbeat>(reply).map(|extended| {
                let mut kept = BTreeSet::new();
                for (lease, ok) in leases.iter().zip(extended) {
                    if ok {
                        kept.insert(*lease);
                    } else {
                        self.lease_lost(*lease);
                    }
                }
                self.extended(&kept, sent_at);
            }),
            Sent::ClearStanding => one::<ops::ClearStanding>(reply).map(|_| {
                // Done once the replica applied it: the grants before it are heard of then.
                if let Some(d) = &mut self.drain {
                    d.clear_committed = true;
                }
            }),
        };
        match result {
            Ok(()) if !matches!(sent, Sent::Heartbeat(_)) => self.outbox.succeeded(),
            Ok(()) => {}
            // The next tick tries again; a lease outlives several missed heartbeats.
            Err(e) if matches!(sent, Sent::Heartbeat(_)) => warn!(error = %e, "heartbeat failed"),
            Err(e) => self.failed(sent, e),
        }
        self.settle();
    }

    /// Heartbeat interval: extend every lease held, end stale tickets, renew standing capacity.
    pub fn heartbeat_tick(&mut self) {
        if !self.is_done() {
            self.heartbeat();
            self.tickets.sweep();
            self.renew_standing();
        }
        self.settle();
    }

    /// Idle poll (a fallback for a missed work signal): `shows_work` if the local replica
    /// shows leasable work (or, with no ticker, a timer due).
    pub fn idle_poll(&mut self, shows_work: bool) {
        if shows_work && !self.is_done() {
            self.work_hint = true;
            self.maybe_lease();
            // No room to lease, but standing capacity: an entry that applies due timers grants
            // what came due to it (the node's ticker does this too; a local backend has none).
            if self.work_hint && self.standing > 0 && self.outbox.leases_in_flight() == 0 {
                self.leased_since_tick = false;
                self.renew_standing();
            }
        }
        self.settle();
    }

    /// A remote worker's stream round trip, measured apart from any task (a ping answered):
    /// lease-ahead covers it too (`core/prefetch.rs`).
    pub fn stream_round_trip(&mut self, took: Duration) {
        self.pacer.stream_round_trip(took);
    }

    /// Tasks may have become leasable.
    pub fn work_signal(&mut self) {
        self.work_hint = true;
        self.settle();
    }

    /// A timer asked for with [`Decision::After`] fired.
    pub fn timer(&mut self, timer: Timer) {
        match timer {
            Timer::Retry => {
                self.outbox.retry_due();
                self.work_hint = true;
            }
            Timer::GraceOver => self.grace_over(),
            Timer::FlushDeadline => {
                if let Some(d) = &mut self.drain {
                    d.flush_expired = true;
                }
            }
            Timer::Stall => self.stall_check(),
            Timer::Pace => self.pacing = false,
        }
        self.settle();
    }

    // ---- decisions ----

    /// After every event: hand buffered grants to free slots (or give them back), propose
    /// what is owed, see whether the drain is over, publish the stats.
    fn settle(&mut self) {
        if !self.is_done() {
            self.dispatch();
            self.flush();
            self.check_drain();
        }
        let now = self.stats();
        if self.published != Some(now) {
            self.published = Some(now);
            self.out.push_back(Decision::Stats(now));
        }
    }

    fn propose(&mut self, sent: Sent, proposal: Proposal) {
        let token = self.outbox.send(sent, self.now);
        self.out.push_back(Decision::Propose(token, proposal));
    }

    /// Propose what is owed and may go out now: at most one proposal of each kind per event.
    fn flush(&mut self) {
        if !self.outbox.may_send() {
            return;
        }
        if !self.recovered && !self.outbox.recovering() {
            self.recover();
        }
        let expired = self.drain.as_ref().is_some_and(|d| d.flush_expired);
        if !expired && !self.outbox.completions.is_empty() && self.outbox.completes_in_flight() < PIPELINE {
            match self.completion_wait() {
                None => self.flush_completions(),
                Some(wait) if !self.pacing => {
                    self.pacing = true;
                    self.out.push_back(Decision::After(wait, Timer::Pace));
                }
                Some(_) => {}
            }
        }
        self.maybe_restand();
        self.maybe_lease();
        if !expired && !self.outbox.releases.is_empty() && self.outbox.releases_in_flight() == 0 {
            let n = self.outbox.releases.len().min(self.cfg.max_batch.max(1));
            let batch: Vec<LeaseRef> = self.outbox.releases.drain(..n).collect();
            let op = ops::Release {
                pool: self.cfg.pool.clone(),
                leases: batch.clone(),
            };
            self.propose(Sent::Release(batch), Proposal::Release(op));
        }
    }

    /// How long the completions owed wait before they go out (`None`: now). At once when no
    /// completion entry is in flight (an idle pool's one finished task waits for nothing), when
    /// a full batch is owed, while draining, or before a round trip is measured; else until the
    /// newest entry in flight is answered or one smoothed round trip old, whichever is first.
    /// So a busy pool writes about one completion entry per commit round, each carrying what
    /// finished in it, and still up to [`PIPELINE`] when answers come late.
    fn completion_wait(&self) -> Option<Duration> {
        if self.drain.is_some() || self.outbox.completions.len() >= self.cfg.max_batch.max(1) {
            return None;
        }
        let due = self.outbox.newest_complete_at()? + self.pacer.rtt()?;
        (due > self.now).then(|| due - self.now)
    }

    /// Propose everything finished so far as one `Complete` (up to the batch cap), with the
    /// `Lease` of the capacity it frees in the same entry (`Complete` first), so a busy pool
    /// writes one entry per round instead of two, and leases no more than it can hold.
    fn flush_completions(&mut self) {
        let n = self.outbox.completions.len().min(self.cfg.max_batch.max(1));
        let batch: Vec<Completion> = self.outbox.completions.drain(..n).collect();
        let complete = ops::Complete {
            pool: self.cfg.pool.clone(),
            completions: batch.clone(),
        };
        match self.lease_room() {
            Some(max) => {
                let (lease, ticket) = self.lease_op(max);
                let proposal = Proposal::CompleteAndLease(complete, lease);
                self.propose(Sent::CompleteAndLease(batch, ticket), proposal);
            }
            None => self.propose(Sent::Complete(batch), Proposal::Complete(complete)),
        }
    }

    // ---- reactions ----

    /// A retried proposal failed: owe it again after the backoff.
    fn failed(&mut self, sent: Sent, e: ProposeError) {
        warn!(error = %e, proposal = sent.name(), "proposal failed; retrying");
        match &sent {
            Sent::Lease { ticket } | Sent::CompleteAndLease(_, ticket) => self.tickets.forget(*ticket),
            Sent::ClearAndLease { ticket } => {
                self.tickets.forget(*ticket);
                self.restanding = false;
            }
            _ => {}
        }
        if let Some(delay) = self.outbox.failed(sent)
            && !self.is_done()
        {
            self.out.push_back(Decision::After(delay, Timer::Retry));
        }
    }
}
