//! [`Tickets`]: the `Lease`s this pool proposed that may still add to what it holds.
//!
//! Every `Lease` carries a ticket. Its grants come with its reply; a lease that leaves
//! standing capacity (not filled) is also reported by the local replica's apply, with its
//! grants ([`crate::replica::PoolApplied::leases`]), and the pool takes them from whichever
//! comes first. So a ticket is in one of three states:
//!
//! - **asked**: neither seen; the lease may still add up to its whole `max`;
//! - **granted** by its reply, not filled: the grants are taken; the rest (`max − granted`)
//!   may still stand, and stays spoken for until the apply shows it in the standing capacity;
//! - **settled**: by its reply if filled (it leaves nothing, and the replica reports nothing:
//!   a busy pool hears no events), else by its apply (the grants taken then if the reply did
//!   not bring them first; a reply after it brings nothing new).
//!
//! A ticket also ends unsettled when its reply failed (whether it will ever apply is unknown;
//! if it does, its grants are taken only where they fit), when a snapshot replaced the replica
//! (`Resync`: a granted lease's apply may be inside it), and, as a safety net, when it was
//! granted and its apply was still not seen at two heartbeat ticks in a row. An apply of a
//! ticket ended this way never runs a grant twice (see `leasing.rs`).
//!
//! The apply as the only source of grants would leave two states; it was measured and not
//! kept (docs/BENCHMARKS.md, "Issue 10: the pool core"): a follower's replica applies an entry
//! after the leader's reply reaches the follower's pool, and an event for every lease costs a
//! busy pool a wake-up and a replica lock per entry.

use std::collections::BTreeMap;
use std::time::Duration;

/// Open tickets and what they may still add.
#[derive(Debug, Default)]
pub(super) struct Tickets {
    // `next` starts at the run's first ticket (see `CoreConfig::first_ticket`), so that a
    // replayed apply of an earlier run's lease never matches one of this run's tickets.
    open: BTreeMap<u64, Ticket>,
    next: u64,
    /// What the open tickets may still add: `max`, less the grants a reply brought.
    held: usize,
}

#[derive(Debug)]
struct Ticket {
    max: usize,
    /// When its `Lease` was proposed (the core's time): its grants' leases began after.
    asked_at: Duration,
    /// Grants its reply brought (and the pool took), once it came.
    granted: Option<usize>,
    /// Granted and still not seen at a heartbeat tick: ended at the next one.
    old: bool,
}

impl Ticket {
    fn holds(&self) -> usize {
        self.max.saturating_sub(self.granted.unwrap_or(0))
    }
}

/// A ticket's apply was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Settled {
    /// Open, its grants not taken: take the apply's (their leases began after `asked_at`).
    Asked { max: usize, asked_at: Duration },
    /// Open, its reply brought the grants already.
    Granted,
    /// Not open (ended unseen, or never this run's).
    Unknown,
}

impl Tickets {
    /// Tickets numbered from `first` on.
    pub(super) fn starting_at(first: u64) -> Self {
        Self {
            next: first.saturating_sub(1),
            ..Self::default()
        }
    }

    /// A ticket for a `Lease` of `max` tasks about to be proposed at `now`.
    pub(super) fn open(&mut self, max: usize, now: Duration) -> u64 {
        self.next = self.next.wrapping_add(1);
        let ticket = self.next;
        let t = Ticket {
            max,
            asked_at: now,
            granted: None,
            old: false,
        };
        self.held += t.holds();
        self.open.insert(ticket, t);
        ticket
    }

    /// Capacity the open tickets may still add.
    pub(super) fn held(&self) -> usize {
        self.held
    }

    /// Whether no lease awaits its apply.
    pub(super) fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// The lease's reply came back with `grants` tasks: its `max` and when it was proposed, if
    /// the pool should take them (the apply was not seen first). A filled lease is settled here.
    pub(super) fn granted(&mut self, ticket: u64, grants: usize) -> Option<(usize, Duration)> {
        let t = self.open.get_mut(&ticket)?;
        let (max, asked_at) = (t.max, t.asked_at);
        if grants >= max {
            self.settle(ticket);
            return Some((max, asked_at));
        }
        self.held -= t.holds();
        t.granted = Some(grants);
        self.held += t.holds();
        Some((max, asked_at))
    }

    /// The lease's apply was seen: the ticket ends.
    pub(super) fn settle(&mut self, ticket: u64) -> Settled {
        let Some(t) = self.open.remove(&ticket) else {
            return Settled::Unknown;
        };
        self.held -= t.holds();
        match t.granted {
            None => Settled::Asked {
                max: t.max,
                asked_at: t.asked_at,
            },
            Some(_) => Settled::Granted,
        }
    }

    /// The lease's reply failed: stop counting it.
    pub(super) fn forget(&mut self, ticket: u64) {
        self.settle(ticket);
    }

    /// Heartbeat tick: end tickets granted a tick ago whose apply was never seen.
    pub(super) fn sweep(&mut self) {
        self.retain(|t| !(t.granted.is_some() && t.old));
        for t in self.open.values_mut() {
            t.old |= t.granted.is_some();
        }
    }

    /// The replica's state was replaced: granted leases may have applied inside the snapshot.
    pub(super) fn resync(&mut self) {
        self.retain(|t| t.granted.is_none());
    }

    fn retain(&mut self, keep: impl Fn(&Ticket) -> bool) {
        self.open.retain(|_, t| keep(t));
        self.held = self.open.values().map(Ticket::holds).sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Duration = Duration::from_millis(1);
    const T1: Duration = Duration::from_millis(2);

    #[test]
    fn a_ticket_holds_its_max_then_the_unfilled_rest_until_settled() {
        let mut t = Tickets::default();
        let (a, b, f) = (t.open(3, T0), t.open(2, T0), t.open(1, T1));
        assert_eq!(t.granted(f, 1), Some((1, T1)));
        assert_eq!(
            t.settle(f),
            Settled::Unknown,
            "a filled lease is settled by its reply"
        );
        assert_eq!(t.held(), 5);
        assert_eq!(t.granted(a, 1), Some((3, T0)));
        assert_eq!(t.held(), 4, "the rest of a still awaits its apply");
        assert_eq!(t.settle(a), Settled::Granted);
        assert_eq!(t.settle(a), Settled::Unknown, "settled once");
        assert_eq!(t.granted(a, 1), None, "a reply after the apply brings nothing");
        assert_eq!(t.settle(b), Settled::Asked { max: 2, asked_at: T0 });
        assert_eq!(t.held(), 0);
        let c = t.open(1, T0);
        t.forget(c);
        assert!(t.is_empty());
    }

    #[test]
    fn the_sweep_ends_granted_tickets_at_the_second_tick_and_resync_at_once() {
        let mut t = Tickets::default();
        let (a, b, c) = (t.open(1, T0), t.open(1, T0), t.open(1, T0));
        t.granted(a, 0);
        t.sweep();
        assert_eq!(t.held(), 3, "one tick is not enough");
        t.sweep();
        assert_eq!(t.held(), 2);
        assert_eq!(t.settle(a), Settled::Unknown);
        t.granted(b, 1);
        t.resync();
        assert_eq!(t.settle(b), Settled::Unknown);
        assert_eq!(t.settle(c), Settled::Asked { max: 1, asked_at: T0 });
    }
}
