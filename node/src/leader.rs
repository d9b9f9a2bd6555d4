//! The node's duties beside answering calls, started by [`Duties::start`] and ended when the
//! [`Duties`] handle is dropped.
//!
//! The leader's:
//! - **tick**: propose a `Tick` whenever a timer of the queue is due (ETA, retry backoff, lease
//!   expiry, result expiry). Entries carry time, so an idle cluster needs one to move.
//! - **clear a lost pool's standing capacity**: a node that has not acknowledged a heartbeat for
//!   a few election timeouts loses its pool's standing capacity, so tasks submitted after it is
//!   lost are not granted to it (`clear_lost_standing`).
//! - **hand off on shutdown**: a leader that stops hands leadership to its most caught-up voter
//!   ([`hand_off_leadership`], called by the server's shutdown).
//!
//! And one every node has: **compaction by size** (`compact_by_size`): snapshot (and so purge
//! the log) whenever enough bytes of log were applied since the last snapshot.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;

use openraft::Instant as _;
use openraft::async_runtime::WatchReceiver;
use tokio::task::JoinHandle;
use tracing::info;
use tracing::warn;

use crate::clock::SharedClock;
use crate::proposer::Proposer;
use crate::queue::ops;
use crate::raft::Raft;
use crate::replica::Replica;
use crate::types::NodeId;

/// How often the ticker looks at the queue's timers and the peers' heartbeats.
const TICK_INTERVAL: Duration = Duration::from_millis(50);
/// How often the compactor looks at the log's size.
const COMPACT_INTERVAL: Duration = Duration::from_millis(200);

/// openraft's clock (simulated time under the simulator), which its heartbeat metrics use.
type RaftInstant = openraft::alias::InstantOf<crate::types::TypeConfig>;

/// The name a node's own worker pool leases under.
pub fn pool_name(node_id: NodeId) -> String {
    format!("node-{node_id}")
}

/// The running duties; dropping the handle ends them.
pub struct Duties {
    ticker: JoinHandle<()>,
    compactor: JoinHandle<()>,
}

impl Duties {
    /// Start the ticker (leader's duties) and the compactor (every node's). `log_bytes` counts
    /// the log applied since the last snapshot; a snapshot is due at `snapshot_log_bytes`.
    pub fn start(
        raft: Raft,
        replica: Arc<Replica>,
        proposer: Proposer,
        clock: SharedClock,
        log_bytes: Arc<AtomicU64>,
        snapshot_log_bytes: u64,
    ) -> Self {
        let ticker = tokio::spawn(tick(raft.clone(), replica, proposer, clock));
        let compactor = tokio::spawn(compact_by_size(raft, log_bytes, snapshot_log_bytes));
        Self { ticker, compactor }
    }
}

impl Drop for Duties {
    fn drop(&mut self) {
        self.ticker.abort();
        self.compactor.abort();
    }
}

/// A leader that is shutting down hands leadership to its most caught-up voter, so the cluster
/// does not wait out an election timeout; bounded to one second, then it stops anyway.
pub async fn hand_off_leadership(raft: &Raft) {
    if !raft.is_leader() {
        return;
    }
    let me = *raft.node_id();
    let metrics = raft.metrics().borrow_watched().clone();
    let target = metrics
        .membership_config
        .membership()
        .voter_ids()
        .filter(|id| *id != me)
        .max_by_key(|id| {
            metrics
                .replication
                .as_ref()
                .and_then(|r| r.get(id).cloned().flatten())
                .map(|l| l.index())
        });
    let Some(target) = target else { return };
    if raft.trigger().transfer_leader(target).await.is_err() {
        return;
    }
    let handed = raft
        .wait(Some(Duration::from_secs(1)))
        .metrics(
            |m| m.current_leader.is_some_and(|l| l != me),
            "leadership handed off",
        )
        .await
        .is_ok();
    info!(to = target, handed, "leadership hand-off on shutdown");
}

/// Snapshot (and so purge the log) whenever about `threshold` bytes of log were applied since
/// the last snapshot; openraft's own policy counts entries, whose size varies a thousandfold.
async fn compact_by_size(raft: Raft, log_bytes: Arc<AtomicU64>, threshold: u64) {
    let mut interval = tokio::time::interval(COMPACT_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if log_bytes.load(Ordering::Relaxed) >= threshold {
            info!(threshold, "log passed its size threshold; building a snapshot");
            if raft.trigger().snapshot().await.is_err() {
                return;
            }
            // The counter resets when the snapshot view is taken; give it time to start.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Every [`TICK_INTERVAL`]: say once if this node was removed; on the leader, clear lost pools'
/// standing capacity and propose a `Tick` when a timer of the queue is due.
async fn tick(raft: Raft, replica: Arc<Replica>, proposer: Proposer, clock: SharedClock) {
    let mut interval = tokio::time::interval(TICK_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_member = false;
    let mut leader_since: Option<RaftInstant> = None;
    loop {
        interval.tick().await;
        was_member = warn_once_removed(&raft, was_member);
        match (raft.is_leader(), leader_since) {
            (true, None) => leader_since = Some(RaftInstant::now()),
            (false, Some(_)) => leader_since = None,
            _ => {}
        }
        if let Some(since) = leader_since {
            clear_lost_standing(&raft, &replica, &proposer, since).await;
        }
        let due = replica
            .read(|q| q.next_deadline_ms())
            .is_some_and(|d| d <= clock.now_ms());
        if due
            && raft.is_leader()
            && let Err(e) = proposer.op(ops::Tick).await
        {
            warn!(error = %e, "tick not proposed");
        }
    }
}

/// A removed node hears nothing more from the cluster: say so once, plainly. Returns whether
/// this node is a member now.
fn warn_once_removed(raft: &Raft, was_member: bool) -> bool {
    let me = *raft.node_id();
    let is_member = raft
        .metrics()
        .borrow_watched()
        .membership_config
        .membership()
        .get_node(&me)
        .is_some();
    if was_member && !is_member {
        warn!(
            node_id = me,
            "this node was removed from the cluster; it serves nothing now and can be stopped"
        );
    }
    is_member
}

/// On the leader: drop the standing capacity of the pools of nodes that have not acknowledged
/// a heartbeat for a while (crashed, or cut off), so that tasks submitted after a node is lost
/// are not granted to it, where they would wait out a whole lease. Wrongly suspecting a slow
/// node costs little: its pool loses the fast path until its next lease stands again.
async fn clear_lost_standing(raft: &Raft, replica: &Replica, proposer: &Proposer, leader_since: RaftInstant) {
    // A few election timeouts: well past a missed heartbeat or a slow fsync.
    let after = (raft.config().election_timeout_max * 4).max(1000);
    let after = Duration::from_millis(after);
    let Some(acked) = raft.metrics().borrow_watched().heartbeat.clone() else {
        return;
    };
    let acked: BTreeMap<NodeId, Option<RaftInstant>> = acked
        .into_iter()
        .map(|(id, last)| (id, last.map(|t| t.into_inner())))
        .collect();
    let lost = silent_nodes(&acked, *raft.node_id(), leader_since, RaftInstant::now(), after);
    for id in lost {
        let name = pool_name(id);
        if replica.read(|q| q.standing_capacity(&name)) == 0 {
            continue;
        }
        warn!(node_id = id, worker = %name, "node not answering; dropping its pool's standing capacity");
        if let Err(e) = proposer.op(ops::ClearStanding { worker: name }).await {
            warn!(error = %e, "ClearStanding not proposed");
        }
    }
}

/// The peers (never `me`) whose last acknowledged heartbeat is at least `after` old at `now`;
/// a peer never heard from counts from `leader_since`, when this node became leader.
fn silent_nodes(
    acked: &BTreeMap<NodeId, Option<RaftInstant>>,
    me: NodeId,
    leader_since: RaftInstant,
    now: RaftInstant,
    after: Duration,
) -> Vec<NodeId> {
    acked
        .iter()
        .filter(|(id, _)| **id != me)
        .filter(|(_, last)| now.saturating_duration_since(last.unwrap_or(leader_since)) >= after)
        .map(|(id, _)| *id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_lost_once_silent_for_the_whole_window_and_never_heard_counts_from_leading() {
        let since = RaftInstant::now();
        let after = Duration::from_secs(4);
        let at = |ms: u64| since + Duration::from_millis(ms);
        let acked = BTreeMap::from([
            (1, Some(at(0))),   // me: never lost
            (2, Some(at(500))), // heard 3.5 s before `now`: still fine
            (3, Some(at(0))),   // heard 4 s before `now`: lost
            (4, None),          // never heard since this node leads (4 s): lost
        ]);
        assert_eq!(silent_nodes(&acked, 1, since, at(4_000), after), vec![3, 4]);
        assert_eq!(
            silent_nodes(&acked, 1, since, at(3_999), after),
            Vec::<NodeId>::new()
        );
        assert_eq!(silent_nodes(&acked, 1, since, at(4_500), after), vec![2, 3, 4]);
    }
}
