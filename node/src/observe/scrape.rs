//! Collectors read at scrape time: tasks per queue and state from the replica (one read of
//! its counts, which the state machine keeps per queue anyway), and the Raft figures from
//! openraft's metrics (term, log indexes, leader, per-member replication lag). Nothing here
//! costs anything between scrapes.

use std::sync::Arc;

use openraft::async_runtime::WatchReceiver;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

use crate::queue::QueueCounts;
use crate::raft::Raft;
use crate::replica::Replica;

/// Tasks per queue and state, and which queues are paused.
pub struct QueueGauges {
    pub replica: Arc<Replica>,
}

impl std::fmt::Debug for QueueGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QueueGauges")
    }
}

/// Reads one state's count.
type CountOf = fn(&QueueCounts) -> u64;

/// The states the `state` label takes, with a reader of each count.
const STATES: [(&str, CountOf); 7] = [
    ("scheduled", |c| c.scheduled),
    ("pending", |c| c.pending),
    ("leased", |c| c.leased),
    ("retrying", |c| c.retrying),
    ("succeeded", |c| c.succeeded),
    ("dead", |c| c.dead),
    ("cancelled", |c| c.cancelled),
];

impl Collector for QueueGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.replica.read(|q| q.stats());
        let mut metric = encoder.encode_descriptor(
            "flotilla_tasks",
            "Tasks held per queue and state (final ones until their result TTL ends), on this node's replica",
            None,
            MetricType::Gauge,
        )?;
        for (queue, counts) in &stats {
            for (state, count) in STATES {
                let labels = [("queue", queue.as_str()), ("state", state)];
                metric
                    .encode_family(&labels)?
                    .encode_gauge(&(count(counts) as i64))?;
            }
        }
        let mut metric = encoder.encode_descriptor(
            "flotilla_queue_paused",
            "1 while the queue is paused",
            None,
            MetricType::Gauge,
        )?;
        for (queue, counts) in &stats {
            let labels = [("queue", queue.as_str())];
            metric
                .encode_family(&labels)?
                .encode_gauge(&i64::from(counts.paused))?;
        }
        Ok(())
    }
}

/// Raft's figures, from openraft's metrics.
pub struct RaftGauges {
    pub raft: Raft,
}

impl std::fmt::Debug for RaftGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RaftGauges")
    }
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> Result<(), std::fmt::Error> {
    encoder
        .encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&value)
}

fn index(log_id: Option<&openraft::alias::LogIdOf<crate::types::TypeConfig>>) -> i64 {
    log_id.map_or(0, |l| l.index() as i64)
}

impl Collector for RaftGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = self.raft.metrics().borrow_watched().clone();
        let e = &mut encoder;
        gauge(
            e,
            "flotilla_raft_term",
            "Current Raft term",
            m.current_term as i64,
        )?;
        gauge(
            e,
            "flotilla_raft_last_log_index",
            "Index of the last entry in this node's log",
            m.last_log_index.unwrap_or(0) as i64,
        )?;
        let committed = m.cluster_committed.as_ref().or(m.local_committed.as_ref());
        gauge(
            e,
            "flotilla_raft_commit_index",
            "Highest index known committed",
            index(committed),
        )?;
        gauge(
            e,
            "flotilla_raft_applied_index",
            "Highest index applied to this node's queue",
            index(m.last_applied.as_ref()),
        )?;
        gauge(
            e,
            "flotilla_raft_snapshot_index",
            "Index of the last snapshot",
            index(m.snapshot.as_ref()),
        )?;
        gauge(
            e,
            "flotilla_raft_is_leader",
            "1 while this node leads",
            i64::from(m.current_leader == Some(m.id)),
        )?;
        gauge(
            e,
            "flotilla_raft_has_leader",
            "1 while this node knows a leader",
            i64::from(m.current_leader.is_some()),
        )?;
        let membership = m.membership_config.membership();
        gauge(
            e,
            "flotilla_raft_voters",
            "Voting members in this node's membership",
            membership.voter_ids().count() as i64,
        )?;
        gauge(
            e,
            "flotilla_raft_learners",
            "Learners in this node's membership",
            membership.learner_ids().count() as i64,
        )?;
        // Reported by the leader only: openraft tracks replication there.
        let mut metric = e.encode_descriptor(
            "flotilla_raft_replication_lag_entries",
            "Per member: entries the leader holds that the member has not matched (on the leader only)",
            None,
            MetricType::Gauge,
        )?;
        let last = m.last_log_index.unwrap_or(0);
        for (member, matched) in m.replication.iter().flatten() {
            let lag = last.saturating_sub(matched.as_ref().map_or(0, |l| l.index()));
            let member = member.to_string();
            let labels = [("member", member.as_str())];
            metric.encode_family(&labels)?.encode_gauge(&(lag as i64))?;
        }
        Ok(())
    }
}
