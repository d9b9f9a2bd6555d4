//! Standing capacity: what an idle pool asked for and did not get, kept in the state
//! machine so that a task becoming pending later is granted to it in the same apply, with no
//! `Lease` entry of its own on the task's path.
//!
//! A `Lease` carrying a `standing_ticket` leaves `max − granted` as standing capacity of its
//! pool, **added** to what the pool already stood for, and renews all of it: the pool's
//! standing capacity expires at `now + lease_ms` of its last ticketed `Lease` (a `max` of 0
//! renews without adding). Whenever tasks may have become pending (a command that made any
//! task pending, an un-pause, a ticketed lease, due timers) the machine grants pending tasks to
//! standing capacity one at a time: the pool whose capacity covers a queue with a pending
//! task and was granted to least recently (ties by pool name) takes the task its own `Lease
//! { max: 1 }` would take at that moment (its queues in its order, then priority, then id), as
//! an ordinary lease of `lease_ms`. So grants rotate over pools (round robin, deterministic),
//! and queue order and priority are exactly those of `Lease`. `ReleasePool` and
//! `ClearStanding` drop a pool's standing capacity. A pool learns of its grants from
//! [`ApplyEffects::pools`](super::ApplyEffects), on its own replica.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::Serialize;

use super::ApplyEffects;
use super::QueueState;
use super::queue_name;
use crate::queue::command::Grant;
use crate::queue::command::UnixMs;

/// Every pool's standing capacity, by pool name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Standing {
    /// Only pools with `n > 0`.
    pub(super) offers: BTreeMap<Box<str>, Offer>,
    /// Round robin: each grant gives its pool the next turn number; the lowest turn goes first.
    next_turn: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Offer {
    /// As in `Lease`: in order of preference; empty means every queue.
    pub(super) queues: Vec<Box<str>>,
    pub(super) n: u32,
    pub(super) lease_ms: u64,
    pub(super) expires_ms: UnixMs,
    /// Turn of the last grant (0: never granted).
    pub(super) turn: u64,
}

/// What one apply did to one pool's leases and standing capacity, for that pool's pool.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolEffects {
    /// Tasks granted to its standing capacity, in order: run them (after checking the lease is
    /// still current on this replica).
    pub grants: Vec<Grant>,
    /// `(ticket, tasks granted)` of each of its ticketed `Lease`s applied that left standing
    /// capacity (a filled one is settled by its reply).
    pub leases: Vec<(u64, u32)>,
    /// Its standing capacity after this apply, if the apply touched it.
    pub standing: Option<u32>,
    /// Its leases a `Revoke` ended in this apply, in order: abort those runs
    /// (`state/operator.rs`).
    pub revoked: Vec<crate::queue::command::LeaseRef>,
}

impl ApplyEffects {
    pub(super) fn pool(&mut self, pool: &str) -> &mut PoolEffects {
        if !self.pools.contains_key(pool) {
            self.pools.insert(pool.to_owned(), PoolEffects::default());
        }
        self.pools.get_mut(pool).expect("inserted above")
    }
}

impl Standing {
    fn is_empty(&self) -> bool {
        self.offers.is_empty()
    }

    /// A pool's standing capacity.
    pub(super) fn of(&self, pool: &str) -> u32 {
        self.offers.get(pool).map_or(0, |o| o.n)
    }
}

impl QueueState {
    /// After a ticketed `Lease` of `pool` that granted `granted` of `max`: add the rest to its
    /// standing capacity and renew it, then report to the pool.
    pub(super) fn stand(
        &mut self,
        pool: &str,
        queues: &[String],
        (max, granted): (u32, u32),
        lease_ms: u64,
        ticket: u64,
        effects: &mut ApplyEffects,
    ) {
        let add = max.saturating_sub(granted);
        let expires_ms = self.now_ms.saturating_add(lease_ms);
        let queues: Vec<Box<str>> = queues.iter().map(|q| q.as_str().into()).collect();
        let n = match self.standing.offers.get_mut(pool) {
            Some(o) => {
                o.n = o.n.saturating_add(add);
                (o.queues, o.lease_ms, o.expires_ms) = (queues, lease_ms, expires_ms);
                o.n
            }
            None if add > 0 => {
                let offer = Offer {
                    queues,
                    n: add,
                    lease_ms,
                    expires_ms,
                    turn: 0,
                };
                self.standing.offers.insert(pool.into(), offer);
                add
            }
            None => 0,
        };
        // A filled lease leaves nothing: its reply alone settles it, so the pool needs no
        // event (none on the busy path, where every lease is full).
        if add > 0 {
            let e = effects.pool(pool);
            e.leases.push((ticket, granted));
            e.standing = Some(n);
        }
    }

    /// Drop `pool`'s standing capacity (`ReleasePool`, `ClearStanding`).
    pub(super) fn clear_standing(&mut self, pool: &str, effects: &mut ApplyEffects) -> bool {
        let had = self.standing.offers.remove(pool).is_some();
        if had {
            effects.pool(pool).standing = Some(0);
        }
        had
    }

    /// A new leader's first entry (openraft's blank entry) drops every pool's standing
    /// capacity: the old leader may be dead, and the new one cannot know yet which pools are,
    /// so none is trusted until it leases again (a pool whose `Lease` is not filled stands
    /// again). Without this, the first tasks after a leader crash were granted to the dead
    /// leader's pool and waited out a whole lease.
    pub fn new_term(&mut self, effects: &mut ApplyEffects) {
        let pools: Vec<Box<str>> = self.standing.offers.keys().cloned().collect();
        for w in pools {
            self.clear_standing(&w, effects);
        }
    }

    /// Drop standing capacity not renewed by `now` (at the start of an apply, before timers).
    pub(super) fn expire_standing(&mut self, effects: &mut ApplyEffects) {
        let now = self.now_ms;
        if self.standing.offers.values().all(|o| o.expires_ms > now) {
            return;
        }
        let expired: Vec<Box<str>> = self
            .standing
            .offers
            .iter()
            .filter(|(_, o)| o.expires_ms <= now)
            .map(|(w, _)| w.clone())
            .collect();
        for w in expired {
            self.clear_standing(&w, effects);
        }
    }

    /// Whether some unpaused queue among `queues` (empty: every queue) has a pending task that
    /// no limit holds back (as far as a read can tell: a lane found held when granted is parked,
    /// so granting to it ends).
    fn covers_pending(&self, queues: &[Box<str>]) -> bool {
        let now = self.now_ms;
        let live = |q: u32| {
            self.idx.queues.get(q as usize).is_some_and(|d| {
                !d.paused
                    && (!d.pending.is_empty() || self.idx.flow.lanes.ring_live(q))
                    && self.idx.queue_open_now(q, now)
            })
        };
        if queues.is_empty() {
            return self.idx.queue_names.ids.values().any(|q| live(*q));
        }
        queues
            .iter()
            .any(|n| self.idx.queue_names.get(queue_name(n)).is_some_and(live))
    }

    /// Grant pending tasks to standing capacity until none is covered (see the module doc).
    pub(super) fn grant_standing(&mut self, effects: &mut ApplyEffects) {
        if self.standing.is_empty() {
            return;
        }
        loop {
            let next = self
                .standing
                .offers
                .iter()
                .filter(|(_, o)| self.covers_pending(&o.queues))
                .min_by_key(|(w, o)| (o.turn, *w))
                .map(|(w, o)| (w.clone(), o.queues.clone(), o.lease_ms));
            let Some((pool, queues, lease_ms)) = next else {
                return;
            };
            let queues: Vec<String> = queues.iter().map(|q| q.to_string()).collect();
            // Takes one task, or ends tasks whose attempts are exhausted until it can.
            let Some(grant) = self.lease(&pool, &queues, 1, lease_ms, effects).pop() else {
                continue;
            };
            self.standing.next_turn = self.standing.next_turn.saturating_add(1);
            let turn = self.standing.next_turn;
            let n = match self.standing.offers.get_mut(&pool) {
                Some(o) => {
                    o.n = o.n.saturating_sub(1);
                    o.turn = turn;
                    o.n
                }
                None => 0,
            };
            if n == 0 {
                self.standing.offers.remove(&pool);
            }
            // Granted, so not left for idle pools to lease.
            effects.became_pending = effects.became_pending.saturating_sub(1);
            let e = effects.pool(&pool);
            e.grants.push(grant);
            e.standing = Some(n);
        }
    }

    /// Standing capacity of `pool` on this replica.
    pub fn standing_capacity(&self, pool: &str) -> u32 {
        self.standing.of(pool)
    }

    /// The invariants of standing capacity: every offer is positive, and covers no pending task
    /// of an unpaused queue (it would have been granted).
    pub(super) fn check_standing(&self) -> Result<(), String> {
        for (w, o) in &self.standing.offers {
            if o.n == 0 {
                return Err(format!("pool {w} stands for 0 tasks"));
            }
            if self.covers_pending(&o.queues) {
                return Err(format!(
                    "pool {w} stands for {} tasks of {:?} while one is pending",
                    o.n, o.queues
                ));
            }
            if o.turn > self.standing.next_turn {
                return Err(format!("pool {w} has turn {} from the future", o.turn));
            }
        }
        Ok(())
    }
}
