//! The runner's queue: lease-ahead handed to a runner that queues ([`CoreConfig::runner_queue`],
//! a remote worker whose Hello says `queue_ahead`).
//!
//! Held here, a task leased ahead still waits for the stream once per slot: the worker's result
//! goes up, the next task comes down (a stream round trip, ~1 ms for a Python worker), and only
//! then does the slot run again. Held by the worker, it starts the moment a slot frees. So for a
//! runner that queues, while lease-ahead is on (`auto`, runs short: `core/prefetch.rs`), grants
//! go down once the slots are full ([`Decision::Queue`]), at most `runner_queue` of them; the
//! rest of the allowance waits here as before. A fixed prefetch keeps its buffer here.
//!
//! - **What runs.** The runner starts what it holds in the order it was sent, as its slots free
//!   (worker.proto, `Hello.queue_ahead`). The core keeps the same order: when a run ends, the
//!   oldest queued grant counts as started, and its run time is measured from then. A result for
//!   one still counted as queued (the runner's count ran ahead of the core's) ends it all the
//!   same, as a finished run.
//! - **Taken back** ([`Decision::TakeBack`]): the runner gives the grant back unstarted (an
//!   `Aborted` end, and the core releases it) or, if it had started it, answers its outcome; the
//!   core holds the lease until one of the two comes, so a task taken back never also runs
//!   elsewhere. When: the stall rule (`core/buffer.rs`: every slot busy and no run ended within
//!   two round trips), a lease that would run short before the task starts, and the drain.
//! - **Aborted** ([`Decision::Abort`]): its lease was lost or revoked (nothing owed), or the
//!   drain's grace is over, which is at once when the runner is gone (a broken stream): then
//!   no answer can come, and the lease is released.
//! - Held like a buffered grant: heartbeated, counted against the pool's capacity.
//!
//! [`CoreConfig::runner_queue`]: super::CoreConfig::runner_queue

use std::time::Duration;

use tracing::debug;

use super::Decision;
use super::PoolCore;
use super::RunResult;
use super::Running;
use crate::queue::LeaseRef;

/// A grant in the runner's queue, not started by the core's count.
#[derive(Debug)]
pub(super) struct Queued {
    pub(super) lease: LeaseRef,
    /// The pool's bound on when its lease ends, as for a buffered grant (`core/buffer.rs`).
    pub(super) alive_until: Duration,
    /// Asked back: waiting for the runner's answer; never counted as started meanwhile.
    pub(super) taking_back: bool,
    /// Aborted: its end is on its way; never counted as started.
    pub(super) aborted: bool,
}

impl Queued {
    fn waiting(&self) -> bool {
        !self.taking_back && !self.aborted
    }
}

impl PoolCore {
    /// Whether `lease` was handed to the runner's queue and has not started by the core's count
    /// (a remote session counts a task's time limit from its start).
    pub fn is_queued(&self, lease: LeaseRef) -> bool {
        self.queued.iter().any(|q| q.lease == lease)
    }

    /// Tasks running by the core's count (queued ones not included): what `flotilla workers`
    /// shows as a remote worker's busy.
    pub fn started(&self) -> usize {
        self.running.len()
    }

    /// When the core counted `lease` started (its time: since the core's origin), if it runs.
    pub fn started_at(&self, lease: LeaseRef) -> Option<Duration> {
        self.running.get(&lease).map(|r| r.started)
    }

    /// Queued grants the runner holds beyond its slots (not counting ones on their way back).
    pub(super) fn queued_waiting(&self) -> usize {
        self.queued.iter().filter(|q| q.waiting()).count()
    }

    /// Free slots take the oldest queued grants first: the runner starts them in that order.
    pub(super) fn start_queued(&mut self) {
        while self.running.len() < self.cfg.slots {
            let Some(at) = self.queued.iter().position(Queued::waiting) else {
                return;
            };
            let Some(q) = self.queued.remove(at) else { return };
            let started = self.now;
            self.running.insert(
                q.lease,
                Running {
                    aborted: false,
                    started,
                },
            );
        }
    }

    /// Take back queued grants whose lease would run short before they start (`start_by`: the
    /// same bound as a buffered grant's); then, while lease-ahead is on and every slot is busy,
    /// hand buffered grants to the runner's queue.
    pub(super) fn queue_ahead(&mut self, start_by: Duration) {
        for q in &mut self.queued {
            if q.waiting() && q.alive_until < start_by {
                debug!(
                    task = q.lease.task,
                    attempt = q.lease.attempt,
                    "lease too short to start; taking it back"
                );
                q.taking_back = true;
                self.stats.short_lease_released_total += 1;
                self.out.push_back(Decision::TakeBack(q.lease));
            }
        }
        let on = self.cfg.runner_queue > 0
            && self.drain.is_none()
            && self.pacer.is_auto()
            && self.pacer.allowance() > 0;
        if !on || self.running.len() < self.cfg.slots {
            return;
        }
        while self.queued.len() < self.cfg.runner_queue {
            let Some(b) = self.buffered.pop_front() else {
                return;
            };
            let lease = b.grant.lease;
            if b.alive_until < start_by {
                self.release_short(b);
                continue;
            }
            self.queued.push_back(Queued {
                lease,
                alive_until: b.alive_until,
                taking_back: false,
                aborted: false,
            });
            self.out.push_back(Decision::Queue(b.grant));
        }
    }

    /// Ask for every queued grant back (the stall rule, the drain). How many were asked.
    pub(super) fn take_back_queued(&mut self) -> usize {
        let mut asked = 0;
        for q in self.queued.iter_mut().filter(|q| q.waiting()) {
            q.taking_back = true;
            asked += 1;
            self.out.push_back(Decision::TakeBack(q.lease));
        }
        asked
    }

    /// The drain's grace is over: abort what is still queued (the runner is gone, or slow to
    /// answer); each comes back `Aborted` and is released.
    pub(super) fn abort_queued(&mut self) {
        for q in self.queued.iter_mut().filter(|q| !q.aborted) {
            q.aborted = true;
            self.out.push_back(Decision::Abort(q.lease));
        }
    }

    /// The log no longer holds a queued grant's lease for us (lost, revoked): drop it at the
    /// runner; nothing is owed for it. False if it is not queued.
    pub(super) fn queued_lost(&mut self, lease: LeaseRef) -> bool {
        let Some(q) = self.queued.iter_mut().find(|q| q.lease == lease) else {
            return false;
        };
        self.lost.insert(lease);
        if !std::mem::replace(&mut q.aborted, true) {
            self.out.push_back(Decision::Abort(lease));
        }
        true
    }

    /// A queued grant ended (given back, aborted, or run after all): out of the queue. False if
    /// it is not queued.
    pub(super) fn unqueue(&mut self, lease: LeaseRef, result: &RunResult) -> bool {
        let Some(at) = self.queued.iter().position(|q| q.lease == lease) else {
            return false;
        };
        self.queued.remove(at);
        if matches!(result, RunResult::Finished(_)) {
            debug!(
                task = lease.task,
                attempt = lease.attempt,
                "a queued task ran before the core counted it started"
            );
        }
        true
    }

    /// The queued grants' leases to heartbeat (not the lost ones).
    pub(super) fn queued_leases(&self) -> impl Iterator<Item = LeaseRef> + '_ {
        self.queued
            .iter()
            .map(|q| q.lease)
            .filter(|l| !self.lost.contains(l))
    }
}
