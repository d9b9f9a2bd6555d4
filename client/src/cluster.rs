//! [`ClusterStatus`], [`Member`] and [`QueueStats`]: what the admin calls report.

use serde::Serialize;

/// Members, roles and the leader as the answering node sees them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClusterStatus {
    /// The node that answered.
    pub node_id: u64,
    /// The current leader's id, when one is known.
    pub leader_id: Option<u64>,
    /// Current Raft term.
    pub term: u64,
    /// Highest committed log index the node knows of.
    pub commit_index: u64,
    /// Highest log index applied to the node's state machine.
    pub applied_index: u64,
    /// All members, voters and learners, sorted by id.
    pub members: Vec<Member>,
    /// Log index covered by the node's last snapshot (0: none yet).
    pub snapshot_index: u64,
    /// The node's log is purged up to and including this index (0: nothing purged).
    pub purged_index: u64,
    /// The voter sets of the membership: one, or two while a membership change is in progress
    /// (the voters before the change, then after it). Each is sorted.
    pub voter_sets: Vec<Vec<u64>>,
}

impl ClusterStatus {
    /// Whether a membership change is in progress (a joint configuration: writes need a
    /// majority of the old voters and of the new ones).
    pub fn is_joint(&self) -> bool {
        self.voter_sets.len() > 1
    }
}

/// One member of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Member {
    /// Node id.
    pub id: u64,
    /// Address clients and peers use to reach it.
    pub addr: String,
    /// `"leader"`, `"follower"` or `"learner"`, as the server names it.
    pub role: String,
    /// Zone label; `None` when not set.
    pub zone: Option<String>,
    /// Entries the leader has that this member has not acknowledged; only known when the
    /// answering node is the leader.
    pub lag: Option<u64>,
}

/// Task counts of one queue.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    /// Queue name.
    pub queue: String,
    /// Tasks waiting for their ETA.
    pub scheduled: u64,
    /// Tasks ready to run.
    pub pending: u64,
    /// Tasks held by workers.
    pub leased: u64,
    /// Tasks waiting out a retry backoff.
    pub retrying: u64,
    /// Tasks finished with a result (still kept).
    pub succeeded: u64,
    /// Tasks failed for good (still kept).
    pub dead: u64,
    /// Tasks cancelled (still kept).
    pub cancelled: u64,
    /// Whether leasing from this queue is paused.
    pub paused: bool,
}
