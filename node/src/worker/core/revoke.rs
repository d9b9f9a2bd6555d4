//! An operator revoked a lease this pool holds (`cancel --terminate`, `Revoke` in the log): the
//! replica's apply says so ([`PoolApplied::revoked`](crate::replica::PoolApplied)), and the pool
//! stops working on it: a running task is aborted and its result dropped (the log would call
//! it stale anyway), a buffered one is forgotten, and a grant that arrives later (the lease's
//! reply comes after the local replica applied the revoke) is never run. The pool owes the
//! log nothing for a revoked lease: the task is final already.
//!
//! A pool remembers the last [`REMEMBERED`] revocations only: a grant that arrives later than
//! that many revocations after its own is still stopped, by its first refused heartbeat.

use std::collections::BTreeSet;
use std::collections::VecDeque;

use tracing::info;

use super::Decision;
use super::PoolCore;
use crate::queue::LeaseRef;

/// How many revoked leases a pool remembers (to drop their grants if they come late).
pub(super) const REMEMBERED: usize = 1024;

/// The leases revoked lately, oldest first, bounded by [`REMEMBERED`].
#[derive(Debug, Default)]
pub(super) struct Revocations {
    order: VecDeque<LeaseRef>,
    set: BTreeSet<LeaseRef>,
}

impl Revocations {
    pub(super) fn contains(&self, lease: LeaseRef) -> bool {
        self.set.contains(&lease)
    }

    fn insert(&mut self, lease: LeaseRef) {
        if !self.set.insert(lease) {
            return;
        }
        self.order.push_back(lease);
        if self.order.len() > REMEMBERED
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
    }
}

impl PoolCore {
    /// The log revoked `lease`: stop working on it (see the module docs).
    pub(super) fn revoked(&mut self, lease: LeaseRef) {
        self.revocations.insert(lease);
        if let Some(running) = self.running.get_mut(&lease) {
            info!(
                task = lease.task,
                attempt = lease.attempt,
                "task revoked; aborting it"
            );
            self.lost.insert(lease);
            if !std::mem::replace(&mut running.aborted, true) {
                self.out.push_back(Decision::Abort(lease));
            }
        } else if self.queued_lost(lease) {
            info!(
                task = lease.task,
                attempt = lease.attempt,
                "task revoked while queued at the runner"
            );
        } else if let Some(at) = self.buffered.iter().position(|b| b.grant.lease == lease) {
            info!(
                task = lease.task,
                attempt = lease.attempt,
                "task revoked before it started"
            );
            self.buffered.remove(at);
        }
    }

    /// Whether `lease` was revoked lately (a remote worker is told "revoked" as the reason of
    /// its abort).
    pub fn was_revoked(&self, lease: LeaseRef) -> bool {
        self.revocations.contains(lease)
    }
}
