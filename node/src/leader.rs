//! The node's duties beside answering calls, started by [`Duties::start`] and ended when the
//! [`Duties`] handle is dropped.
//!
//! The leader's:
//! - **tick**: propose a `Tick` whenever a timer of the queue is due (ETA, retry backoff, lease
//!   expiry, result expiry). Entries carry time, so an idle cluster needs one to move.
//! - **clear a lost pool's standing capacity**: a node that has not acknowledged a heartbeat for
//!   a few election timeouts loses its pool's standing capacity, so tasks submitted after it is
//!   lost are not granted to it (`clear_lost_standing`).
//! - **finish a membership change left half done** (a committed joint configuration whose
//!   final entry was never written: `JointWatch`).
//! - **switch attempt histories on** (`RecordAttempts`, entry format 10) once every member of
//!   the configuration said it reads format 10 (each reply of the peer service carries its
//!   build's format, `network/headers.rs`; a member on an older build says nothing and holds
//!   the switch back until it is upgraded). A new cluster's first leader, alone, switches at
//!   once. This is the cluster's first feature switch; the next command that changes what
//!   existing entries do can follow the same rule (`record_attempts_when_all_read`).
//! - **hand off on shutdown**: a leader that stops hands leadership to its most caught-up voter
//!   ([`hand_off_leadership`], called by the server's shutdown).
//!
//! And every node's: **compaction by size** (`compact_by_size`): snapshot (and so purge the
//! log) whenever enough bytes of log were applied since the last snapshot; and noticing that
//! Raft stopped by itself ([`raft_failed`]), on which the node exits.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;

use openraft::ChangeMembers;
use openraft::Instant as _;
use openraft::async_runtime::WatchReceiver;
use tokio::task::JoinHandle;
use tracing::info;
use tracing::warn;

use crate::clock::SharedClock;
use crate::cluster::liveness;
use crate::cluster::liveness::RaftInstant;
use crate::network::PeerFormats;
use crate::proposer::Proposer;
use crate::queue::ops;
use crate::raft::Raft;
use crate::replica::Replica;
use crate::types::NodeId;

/// How often the ticker looks at the queue's timers and the peers' heartbeats.
const TICK_INTERVAL: Duration = Duration::from_millis(50);
/// How often the compactor looks at the log's size.
const COMPACT_INTERVAL: Duration = Duration::from_millis(200);

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
        formats: PeerFormats,
    ) -> Self {
        let ticker = tokio::spawn(tick(raft.clone(), replica, proposer, clock, formats));
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

/// Resolves with Raft's fatal error once Raft stops by itself (a failed write: a full disk, an
/// IO error). Such a node must not linger: it would keep answering calls and saying it leads
/// while nothing it does can commit. The server exits on it (see `server/serve.rs`).
pub async fn raft_failed(raft: Raft) -> String {
    let mut metrics = raft.metrics();
    loop {
        if let Err(fatal) = &metrics.borrow_watched().running_state {
            return fatal.to_string();
        }
        if metrics.changed().await.is_err() {
            return "raft stopped".into();
        }
    }
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
async fn tick(
    raft: Raft,
    replica: Arc<Replica>,
    proposer: Proposer,
    clock: SharedClock,
    formats: PeerFormats,
) {
    let mut interval = tokio::time::interval(TICK_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_member = false;
    let mut leader_since: Option<RaftInstant> = None;
    let mut joint = JointWatch::default();
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
            joint.finish_left_behind(&raft);
            record_attempts_when_all_read(&raft, &replica, &proposer, &formats).await;
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

/// How long a committed joint configuration may stand before the leader finishes it itself:
/// the change that wrote it proposes its second entry at once, unless it was cut off.
const JOINT_GRACE: Duration = Duration::from_secs(2);

/// Finishes a membership change that was left half done: a committed joint configuration
/// (old and new voters) whose second, final entry was never written because its leader lost
/// leadership or crashed in between. Left alone, the cluster would need majorities of both
/// voter sets for ever.
#[derive(Default)]
struct JointWatch {
    /// The joint configuration seen committed (its log index), and since when.
    seen: Option<(u64, RaftInstant)>,
    finishing: Option<JoinHandle<()>>,
}

impl JointWatch {
    fn finish_left_behind(&mut self, raft: &Raft) {
        if self.finishing.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        let metrics = raft.metrics().borrow_watched().clone();
        let committed = &metrics.committed_membership_config;
        let settled = metrics.membership_config.log_id() == committed.log_id();
        let voter_sets = committed.membership().get_joint_config().clone();
        let Some(index) = committed.log_id().as_ref().map(|l| l.index) else {
            return;
        };
        if !settled || voter_sets.len() < 2 {
            self.seen = None;
            return;
        }
        let now = RaftInstant::now();
        let since = match self.seen {
            Some((seen, since)) if seen == index => since,
            _ => {
                self.seen = Some((index, now));
                now
            }
        };
        if now.saturating_duration_since(since) < JOINT_GRACE {
            return;
        }
        warn!(
            ?voter_sets,
            "a membership change was left half done; finishing it"
        );
        let raft = raft.clone();
        self.seen = None;
        self.finishing = Some(tokio::spawn(async move {
            // An empty change flattens the joint configuration to its new voters: openraft's
            // own second step of a change.
            let flatten = ChangeMembers::AddVoterIds(BTreeSet::new());
            match raft.change_membership(flatten, false).await {
                Ok(resp) => info!(log_id = %resp.log_id, "finished the membership change"),
                Err(e) => warn!(error = %e, "could not finish the membership change"),
            }
        }));
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
    let Some(acked) = liveness::acknowledged(raft) else {
        return;
    };
    let after = liveness::silent_after(raft);
    let lost = liveness::silent_nodes(
        &acked,
        *raft.node_id(),
        Some(leader_since),
        RaftInstant::now(),
        after,
    );
    for id in lost {
        let name = pool_name(id);
        if replica.read(|q| q.standing_capacity(&name)) == 0 {
            continue;
        }
        warn!(node_id = id, worker = %name, "node not answering; dropping its pool's standing capacity");
        if let Err(e) = proposer.op(ops::ClearStanding { pool: name }).await {
            warn!(error = %e, "ClearStanding not proposed");
        }
    }
}

/// The entry format of `RecordAttempts`: every member must read it before it is proposed.
const ATTEMPTS_FORMAT: u32 = 10;

/// On the leader: propose `RecordAttempts` once the replica has not applied it yet and every
/// member of the configuration (voters and learners) reads its format: this node's own build
/// does (it has the command), the others as their latest reply said ([`PeerFormats`]). A
/// member that has not answered yet, or answered from an older build, holds it back: proposing
/// earlier would stall that member at the entry (ADR 002). Proposed at most once per tick;
/// applying it again changes nothing, so a repeat after a lost answer is harmless.
async fn record_attempts_when_all_read(
    raft: &Raft,
    replica: &Replica,
    proposer: &Proposer,
    formats: &PeerFormats,
) {
    if replica.read(|q| q.records_attempts()) {
        return;
    }
    let me = *raft.node_id();
    let metrics = raft.metrics().borrow_watched().clone();
    let membership = metrics.membership_config.membership();
    let behind: Vec<NodeId> = membership
        .nodes()
        .map(|(id, _)| *id)
        .filter(|id| *id != me && formats.get(*id).is_none_or(|f| f < ATTEMPTS_FORMAT))
        .collect();
    if !behind.is_empty() {
        return;
    }
    match proposer.op(ops::RecordAttempts).await {
        Ok(switched) => info!(
            switched,
            "every member reads entry format 10: attempt histories recorded from here on"
        ),
        Err(e) => warn!(error = %e, "RecordAttempts not proposed"),
    }
}
