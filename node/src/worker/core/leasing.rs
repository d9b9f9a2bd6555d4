//! What the pool asks for and what it is given: the free capacity a `Lease` may ask for, the
//! leases (every one ticketed, see [`super::tickets`]), the renewal of standing capacity, and
//! the grants, from a lease's reply or the local replica's apply.

use std::time::Duration;

use tracing::debug;

use super::PIPELINE;
use super::PoolCore;
use super::Proposal;
use super::Sent;
use super::tickets::Settled;
use crate::queue::Grant;
use crate::queue::LeaseRef;
use crate::queue::ops;
use crate::replica::Cleared;
use crate::replica::PoolEvent;

impl PoolCore {
    /// What the local replica's apply did for this pool. `held` says whether the replica still
    /// shows a lease as this pool's current one (a replayed apply may grant what is gone).
    pub fn applied(&mut self, event: PoolEvent, held: impl Fn(LeaseRef) -> bool) {
        let held: &dyn Fn(LeaseRef) -> bool = &held;
        match event {
            PoolEvent::Applied(fx) => {
                if let Some(n) = fx.standing {
                    self.standing = n as usize;
                }
                // The replica applies in log order, and this run leases only after its
                // `ReleasePool` committed: once it shows one of this run's leases, every
                // grant it reports later is this run's.
                if fx.leases.iter().any(|(t, _)| *t >= self.cfg.first_ticket) {
                    self.replica_caught_up = true;
                }
                for (ticket, grants) in fx.leases {
                    match self.tickets.settle(ticket) {
                        Settled::Asked { max, asked_at } => {
                            self.hint_if_full(max, grants.len());
                            self.measure_log_clock(&grants, asked_at);
                            self.take_grants(grants, held, false, Some(asked_at));
                        }
                        // Taken from the reply already.
                        Settled::Granted => {}
                        // Its reply failed or it was given up on: maybe taken, maybe not.
                        Settled::Unknown => self.take_grants(grants, held, true, None),
                    }
                }
                if self.replica_caught_up {
                    self.take_grants(fx.grants, held, false, None);
                } else if !fx.grants.is_empty() {
                    // Applied before this run's first lease: an earlier run's standing capacity
                    // (a lagging replica replaying it after this run's `ReleasePool` was
                    // answered; `sim dst --seed 4`, no_late_start). That release gives them back.
                    debug!(
                        count = fx.grants.len(),
                        "dropped grants to an earlier run's standing capacity"
                    );
                    self.stats.stale_grants_total += fx.grants.len() as u64;
                }
                match fx.cleared {
                    // The drain's own (the only lone clear a pool proposes).
                    Some(Cleared::Alone) => {
                        self.restanding = false;
                        self.standing_cleared(false);
                    }
                    Some(Cleared::WithLease | Cleared::WithRelease) => self.restanding = false,
                    None => {}
                }
                for lease in fx.revoked {
                    self.revoked(lease);
                }
            }
            PoolEvent::Resync { standing } => {
                self.standing = standing as usize;
                self.tickets.resync();
                self.restanding = false;
                self.standing_cleared(true);
                // What stood may be gone: lease (and so stand) again.
                self.work_hint = true;
            }
        }
        self.settle();
    }

    /// A lease's reply brought `grants`: taken unless its apply was seen first.
    pub(super) fn lease_granted(&mut self, ticket: u64, grants: Vec<Grant>) {
        if let Some((max, asked_at)) = self.tickets.granted(ticket, grants.len()) {
            self.hint_if_full(max, grants.len());
            self.measure_log_clock(&grants, asked_at);
            // Fresh from the log: the local replica may not show them yet.
            self.take_grants(grants, &|_| true, false, Some(asked_at));
        }
    }

    /// A full batch means more may be waiting; a short one means the lease took it all (and
    /// later work is granted to the standing capacity it left).
    fn hint_if_full(&mut self, max: usize, granted: usize) {
        if max > 0 && granted >= max {
            self.work_hint = true;
        }
    }

    /// Tasks the pool may hold now: its slots and its lease-ahead allowance.
    pub(super) fn capacity(&self) -> usize {
        self.cfg.slots + self.pacer.allowance()
    }

    /// Everything spoken for: running, buffered, queued at the runner, standing, and what open
    /// leases may add.
    fn held(&self) -> usize {
        self.running.len() + self.buffered.len() + self.queued.len() + self.standing + self.tickets.held()
    }

    /// Capacity not yet spoken for: the most the next `Lease` may ask for.
    pub(super) fn free(&self) -> usize {
        self.capacity().saturating_sub(self.held())
    }

    /// Whether a grant still fits: the allowance may have fallen since it was asked for, and
    /// what was granted is kept (`core/buffer.rs`), but never beyond the slots and the most
    /// lease-ahead may hold.
    fn fits(&self) -> bool {
        self.held() < self.cfg.slots + self.pacer.max_allowance()
    }

    /// Whether a `Lease` may be proposed now (recovered, not draining, pipeline and retry
    /// allow it).
    pub(super) fn may_lease(&self) -> bool {
        self.recovered
            && self.drain.is_none()
            && self.outbox.leases_in_flight() < PIPELINE
            && self.outbox.may_send()
    }

    /// The `max` of a `Lease` that may be proposed now (free capacity), if one may.
    pub(super) fn lease_room(&self) -> Option<u32> {
        match self.free() {
            0 => None,
            _ if !self.may_lease() => None,
            free => Some(u32::try_from(free).unwrap_or(u32::MAX)),
        }
    }

    /// A ticketed `Lease` of `max` tasks, counted from now on.
    pub(super) fn lease_op(&mut self, max: u32) -> (ops::Lease, u64) {
        self.work_hint = false;
        self.leased_since_tick = true;
        let ticket = self.tickets.open(max as usize, self.now);
        let op = ops::Lease {
            pool: self.cfg.pool.clone(),
            queues: self.cfg.queues.clone(),
            max,
            lease_ms: self.cfg.lease_ms,
            standing_ticket: Some(ticket),
        };
        (op, ticket)
    }

    pub(super) fn lease(&mut self, max: u32) {
        let (op, ticket) = self.lease_op(max);
        self.propose(Sent::Lease { ticket }, Proposal::Lease(op));
    }

    pub(super) fn maybe_lease(&mut self) {
        // Completions owed carry the lease when they go out (`PoolCore::completion_wait`): a
        // lease alone now would be an entry more.
        if self.work_hint
            && self.outbox.completions.is_empty()
            && let Some(max) = self.lease_room()
        {
            self.lease(max);
        }
    }

    /// Lease-ahead ended (runs got longer than a round trip) while the pool stands for more
    /// than its slots: grants to that standing capacity would only be released again. Drop it,
    /// in one entry with a `Lease` of what is free counting it (0, so that the log never offers
    /// more than the capacity); the pool stands again for its free slots once it has seen the
    /// apply.
    pub(super) fn maybe_restand(&mut self) {
        if self.restanding || self.standing == 0 || !self.may_lease() || self.pacer.allowance() > 0 {
            return;
        }
        if self.held() <= self.cfg.slots {
            return;
        }
        debug!(standing = self.standing, "lease-ahead ended; standing for less");
        let max = u32::try_from(self.free()).unwrap_or(u32::MAX);
        let (lease, ticket) = self.lease_op(max);
        // Stand again once the replica shows the clear.
        self.work_hint = true;
        let clear = ops::ClearStanding {
            pool: self.cfg.pool.clone(),
        };
        self.restanding = true;
        self.propose(
            Sent::ClearAndLease { ticket },
            Proposal::ClearAndLease(clear, lease),
        );
    }

    /// Keep standing capacity from expiring while the pool is idle: a `Lease` of the free
    /// capacity, often 0, when none was proposed since the last heartbeat tick.
    pub(super) fn renew_standing(&mut self) {
        let quiet = !std::mem::take(&mut self.leased_since_tick);
        if quiet && self.standing > 0 && self.may_lease() {
            let max = u32::try_from(self.free()).unwrap_or(u32::MAX);
            self.lease(max);
        }
    }

    /// Grants to take: buffered where they fit, released where they do not (a lease that
    /// applied after its reply failed, or an allowance that fell since it was asked for),
    /// dropped where the replica no longer shows them as ours, or (`maybe_taken`: a lease whose
    /// ticket ended unseen) where the pool already has them. `since`: when the `Lease` that
    /// granted them was proposed, if it is known (their leases began after).
    pub(super) fn take_grants(
        &mut self,
        grants: Vec<Grant>,
        held: &dyn Fn(LeaseRef) -> bool,
        maybe_taken: bool,
        since: Option<Duration>,
    ) {
        if grants.is_empty() {
            return;
        }
        if !self.recovered {
            // An earlier run's (replayed): this run's `ReleasePool` gives them back.
            debug!(count = grants.len(), "dropped grants from before this run");
            return;
        }
        for grant in grants {
            if maybe_taken && self.has(grant.lease) {
                continue;
            }
            if self.revocations.contains(grant.lease) {
                // Revoked before its lease's reply came: never run it (`core/revoke.rs`).
                debug!(task = grant.lease.task, "dropped a revoked grant");
                continue;
            }
            if !held(grant.lease) {
                // Released, expired or completed since (a replayed apply): someone else's now.
                debug!(task = grant.lease.task, "dropped a grant no longer held");
                self.stats.stale_grants_total += 1;
                continue;
            }
            self.stats.leased_total += 1;
            let full = !self.fits();
            if self.drain.is_some() || full {
                if full {
                    debug!(task = grant.lease.task, "granted beyond capacity; releasing it");
                }
                self.outbox.releases.push(grant.lease);
            } else {
                self.buffer(grant, since);
            }
        }
    }

    /// Whether the pool holds `lease` (buffered, running, or owing its completion or release).
    fn has(&self, lease: LeaseRef) -> bool {
        self.running.contains_key(&lease)
            || self.lost.contains(&lease)
            || self.buffered.iter().any(|b| b.grant.lease == lease)
            || self.is_queued(lease)
            || self.outbox.owes(lease)
    }
}
