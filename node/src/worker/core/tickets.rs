//! [`Tickets`]: the `Lease`s this pool proposed whose apply it has not seen yet.
//!
//! Every `Lease` carries a ticket, and its grants reach the pool only from its replica's apply
//! of it ([`crate::replica::PoolApplied::leases`]), filled or not. Until then the lease may
//! still add up to its whole `max` (as grants or as standing capacity), so that much of the
//! pool's capacity stays spoken for. A ticket ends when its apply is seen (settled), when its
//! reply failed (the pool cannot tell whether it will ever apply; if it does, its grants are
//! taken only where they fit), or, as a safety net, when its reply came back and its apply
//! was still not seen at two heartbeat ticks in a row (a snapshot install, `Resync`, is the
//! one known way to miss an apply; it ends the answered tickets at once).

use std::collections::BTreeMap;

/// Open tickets and what they may still add.
#[derive(Debug, Default)]
pub(super) struct Tickets {
    open: BTreeMap<u64, Ticket>,
    next: u64,
    /// Sum of the open tickets' `max`.
    held: usize,
}

#[derive(Debug)]
struct Ticket {
    max: usize,
    /// The reply came back: only the apply is awaited now.
    answered: bool,
    /// Answered and still not seen at a heartbeat tick: ended at the next one.
    old: bool,
}

impl Tickets {
    /// A ticket for a `Lease` of `max` tasks about to be proposed.
    pub(super) fn open(&mut self, max: usize) -> u64 {
        self.next += 1;
        let ticket = self.next;
        self.open.insert(
            ticket,
            Ticket {
                max,
                answered: false,
                old: false,
            },
        );
        self.held += max;
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

    /// The lease's reply came back (its grants will come with its apply).
    pub(super) fn answered(&mut self, ticket: u64) {
        if let Some(t) = self.open.get_mut(&ticket) {
            t.answered = true;
        }
    }

    /// The lease's apply was seen: the ticket ends. Its `max`, if it was open.
    pub(super) fn settle(&mut self, ticket: u64) -> Option<usize> {
        let t = self.open.remove(&ticket)?;
        self.held -= t.max;
        Some(t.max)
    }

    /// The lease's reply failed: stop counting it.
    pub(super) fn forget(&mut self, ticket: u64) {
        self.settle(ticket);
    }

    /// Heartbeat tick: end tickets answered a tick ago whose apply was never seen.
    pub(super) fn sweep(&mut self) {
        self.retain(|t| !(t.answered && t.old));
        for t in self.open.values_mut() {
            t.old |= t.answered;
        }
    }

    /// The replica's state was replaced: answered leases may have applied inside the snapshot.
    pub(super) fn resync(&mut self) {
        self.retain(|t| !t.answered);
    }

    fn retain(&mut self, keep: impl Fn(&Ticket) -> bool) {
        self.open.retain(|_, t| keep(t));
        self.held = self.open.values().map(|t| t.max).sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_holds_its_max_until_settled_or_forgotten() {
        let mut t = Tickets::default();
        let (a, b) = (t.open(3), t.open(2));
        assert_eq!(t.held(), 5);
        t.answered(a);
        assert_eq!(t.held(), 5, "an answered lease still awaits its apply");
        assert_eq!(t.settle(a), Some(3));
        assert_eq!(t.settle(a), None, "settled once");
        t.forget(b);
        assert_eq!(t.held(), 0);
    }

    #[test]
    fn the_sweep_ends_answered_tickets_at_the_second_tick_and_resync_at_once() {
        let mut t = Tickets::default();
        let (a, b, c) = (t.open(1), t.open(1), t.open(1));
        t.answered(a);
        t.sweep();
        assert_eq!(t.held(), 3, "one tick is not enough");
        t.sweep();
        assert_eq!(t.held(), 2);
        assert_eq!(t.settle(a), None);
        t.answered(b);
        t.resync();
        assert_eq!((t.settle(b), t.settle(c)), (None, Some(1)));
    }
}
