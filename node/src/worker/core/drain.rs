//! The drain: stop leasing, give back what will not run here, let running tasks finish for
//! the grace, then abort them and give their leases back; drop the pool's standing capacity;
//! done once every lease it proposed was seen applied (its grants released) and the log
//! accepted everything owed, or at the flush deadline (whatever is left then
//! is `unflushed`: those leases expire and their tasks run again elsewhere).
//!
//! The drain's clear is told from a restand's by its entry (`replica::Cleared`): a restand's
//! clear heard of late must not end the drain while grants after it are still on their way.
//!
//! A remote worker whose stream broke is drained with no grace: its runs (and what it queued)
//! are aborted at once and everything it held is released. A worker that drains on its own
//! gives back what it queued; a node that drains asks for it back (`core/queued.rs`).

use std::time::Duration;

use tracing::error;
use tracing::info;

use super::Decision;
use super::DrainReport;
use super::PoolCore;
use super::Proposal;
use super::Sent;
use super::Timer;
use crate::queue::ops;

#[derive(Debug, Default)]
pub(super) struct DrainState {
    pub(super) report: DrainReport,
    /// Past the flush deadline: give up proposing what the log does not accept.
    pub(super) flush_expired: bool,
    /// The `ClearStanding`'s reply came back: it committed.
    pub(super) clear_committed: bool,
    /// The local replica applied it: every grant to the standing capacity has been heard of.
    pub(super) standing_cleared: bool,
    /// Drained: the pool decides nothing more.
    done: bool,
}

impl PoolCore {
    /// Stop leasing, let running tasks finish for up to `grace`, then abort and release the
    /// rest, and flush everything owed to the log. [`Decision::Drained`] says when it is over.
    /// A second call changes nothing (the first drain's report answers both).
    pub fn drain(&mut self, grace: Duration) {
        if self.drain.is_some() {
            return;
        }
        info!(
            running = self.running.len(),
            grace_ms = grace.as_millis() as u64,
            "draining"
        );
        self.drain = Some(DrainState::default());
        // Granted but not started: give them back now, another pool can run them at once.
        let unstarted = self.buffered.drain(..).map(|b| b.grant.lease);
        self.outbox.releases.extend(unstarted);
        // Queued at the runner: released once it gives them back (aborted at the grace's end).
        self.take_back_queued();
        let flush_deadline = grace.saturating_add(self.cfg.drain_flush_timeout);
        self.out.push_back(Decision::After(grace, Timer::GraceOver));
        self.out
            .push_back(Decision::After(flush_deadline, Timer::FlushDeadline));
        self.settle();
    }

    /// The replica applied the drain's `ClearStanding` (a lone one: a restand's comes with a
    /// `Lease` and is not this; `resync`: its state was replaced, maybe past it).
    pub(super) fn standing_cleared(&mut self, resync: bool) {
        let clearing = self.outbox.clearing();
        if let Some(d) = &mut self.drain
            && (d.clear_committed || (clearing && !resync))
        {
            d.standing_cleared = true;
        }
    }

    /// Whether the drain is over (nothing more will be decided).
    pub fn is_done(&self) -> bool {
        self.drain.as_ref().is_some_and(|d| d.done)
    }

    pub(super) fn grace_over(&mut self) {
        if self.drain.is_none() || self.is_done() {
            return;
        }
        if !self.running.is_empty() {
            info!(
                running = self.running.len(),
                "grace is over; aborting running tasks"
            );
        }
        for (lease, running) in &mut self.running {
            if !std::mem::replace(&mut running.aborted, true) {
                self.out.push_back(Decision::Abort(*lease));
            }
        }
        self.abort_queued();
    }

    /// Clear the standing capacity once no lease is in flight to add more; finish the drain
    /// once everything is settled, or the flush deadline passed.
    pub(super) fn check_drain(&mut self) {
        let Some(d) = &self.drain else { return };
        let must_clear = !d.standing_cleared;
        let leasing = self.outbox.leases_in_flight() > 0;
        let sent = d.clear_committed || self.outbox.clearing();
        if must_clear && !sent && !d.flush_expired && !leasing && self.outbox.may_send() {
            let op = ops::ClearStanding {
                pool: self.cfg.pool.clone(),
            };
            self.propose(Sent::ClearStanding, Proposal::ClearStanding(op));
        }
        let (completions, releases) = (self.outbox.completions_held(), self.outbox.releases_held());
        // A lease answered but not yet seen applied still brings grants (to release).
        let granting = !self.tickets.is_empty();
        let settled = self.running.is_empty()
            && self.queued.is_empty()
            && !leasing
            && !granting
            && !must_clear
            && completions + releases == 0;
        let Some(d) = &mut self.drain else { return };
        if !settled && !d.flush_expired {
            return;
        }
        d.done = true;
        d.report.unflushed =
            completions + releases + self.running.len() + self.buffered.len() + self.queued.len();
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
        self.out.push_back(Decision::Drained(d.report));
    }
}
