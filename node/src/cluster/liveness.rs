//! Which members a leader hears from: one rule for every decision that needs it (refusing a
//! membership change with no live majority, dropping a lost pool's standing capacity).
//!
//! A peer is *silent* once it has not acknowledged a heartbeat (or a replication) for
//! [`silent_after`]: a few election timeouts, well past a missed heartbeat or a slow fsync.
//! Only the leader knows (openraft's heartbeat metrics).

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::time::Duration;

use openraft::Instant as _;
use openraft::async_runtime::WatchReceiver;

use crate::raft::Raft;
use crate::types::NodeId;

/// openraft's clock (simulated time under the simulator), which its heartbeat metrics use.
pub type RaftInstant = openraft::alias::InstantOf<crate::types::TypeConfig>;

/// How long a peer may go without acknowledging a heartbeat before it counts as silent.
pub fn silent_after(raft: &Raft) -> Duration {
    Duration::from_millis((raft.config().election_timeout_max * 4).max(1000))
}

/// The peers (never `me`) whose last acknowledged heartbeat is at least `after` old at `now`.
/// A peer never heard from counts as silent from `leader_since` (when this node became
/// leader), or at once when that is not known.
pub fn silent_nodes(
    acked: &BTreeMap<NodeId, Option<RaftInstant>>,
    me: NodeId,
    leader_since: Option<RaftInstant>,
    now: RaftInstant,
    after: Duration,
) -> Vec<NodeId> {
    acked
        .iter()
        .filter(|(id, _)| **id != me)
        .filter(|(_, last)| match last.or(leader_since) {
            Some(since) => now.saturating_duration_since(since) >= after,
            None => true,
        })
        .map(|(id, _)| *id)
        .collect()
}

/// The leader's heartbeat acknowledgements, or `None` when this node does not lead.
pub fn acknowledged(raft: &Raft) -> Option<BTreeMap<NodeId, Option<RaftInstant>>> {
    let acked = raft.metrics().borrow_watched().heartbeat.clone()?;
    Some(
        acked
            .into_iter()
            .map(|(id, last)| (id, last.map(|t| t.into_inner())))
            .collect(),
    )
}

/// The members of `candidates` this leader heard from within [`silent_after`] (itself
/// included); `None` when this node does not lead.
pub fn answering(raft: &Raft, candidates: &BTreeSet<NodeId>) -> Option<BTreeSet<NodeId>> {
    let acked = acknowledged(raft)?;
    let me = *raft.node_id();
    let silent = silent_nodes(&acked, me, None, RaftInstant::now(), silent_after(raft));
    Some(
        candidates
            .iter()
            .filter(|id| **id == me || (acked.contains_key(id) && !silent.contains(id)))
            .copied()
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_silent_once_quiet_for_the_whole_window_and_never_heard_counts_from_leading() {
        let since = RaftInstant::now();
        let after = Duration::from_secs(4);
        let at = |ms: u64| since + Duration::from_millis(ms);
        let acked = BTreeMap::from([
            (1, Some(at(0))),   // me: never silent
            (2, Some(at(500))), // heard 3.5 s before `now`: still fine
            (3, Some(at(0))),   // heard 4 s before `now`: silent
            (4, None),          // never heard since this node leads (4 s): silent
        ]);
        let silent = |now, leader_since| silent_nodes(&acked, 1, leader_since, now, after);
        assert_eq!(silent(at(4_000), Some(since)), vec![3, 4]);
        assert_eq!(silent(at(3_999), Some(since)), Vec::<NodeId>::new());
        assert_eq!(silent(at(4_500), Some(since)), vec![2, 3, 4]);
        // Without knowing when leadership began, never heard is silent at once.
        assert_eq!(silent(at(3_999), None), vec![4]);
    }
}
