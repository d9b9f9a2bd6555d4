//! [`Instruments`]: the node's own metrics that code on the hot path updates (atomic adds and
//! short-locked histograms), made before Raft starts; and [`NodeMetrics`]: the registry that
//! renders them with the scrape-time collectors as Prometheus text.

use std::sync::Arc;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use prometheus_client::registry::Unit;

use super::apply::ApplyStats;
use super::scrape::QueueGauges;
use super::scrape::RaftGauges;
use crate::proposer::EntryMetrics;
use crate::raft::Raft;
use crate::replica::Replica;

/// Buckets of the storage and commit latencies, in seconds: 50 µs to 5 s.
pub const LATENCY_BUCKETS_S: [f64; 16] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Buckets of commands per log entry: 1 to the proposer's cap.
pub const ENTRY_BUCKETS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0];

/// The metrics the node updates as it works. Cheap to clone (shared handles).
#[derive(Clone, Debug)]
pub struct Instruments {
    /// Per queue: submits, outcomes, queue wait and run time, from the applied log.
    pub applied: Arc<ApplyStats>,
    /// Appends, from hand-over to the log until fsync'd (group commit included).
    pub log_flush_seconds: Histogram,
    /// Entries, from proposal to committed and applied.
    pub commit_seconds: Histogram,
    /// Commands per entry proposed.
    pub entry_commands: Histogram,
    /// Times this node saw the leader change (to another node or to none).
    pub leader_changes: Counter,
}

impl Default for Instruments {
    fn default() -> Self {
        Self {
            applied: Arc::default(),
            log_flush_seconds: Histogram::new(LATENCY_BUCKETS_S),
            commit_seconds: Histogram::new(LATENCY_BUCKETS_S),
            entry_commands: Histogram::new(ENTRY_BUCKETS),
            leader_changes: Counter::default(),
        }
    }
}

impl Instruments {
    /// What the proposer measures.
    pub fn entries(&self) -> EntryMetrics {
        EntryMetrics {
            commit_seconds: self.commit_seconds.clone(),
            entry_commands: self.entry_commands.clone(),
        }
    }
}

/// Every metric of one node, rendered on a scrape.
#[derive(Debug)]
pub struct NodeMetrics {
    registry: Registry,
}

impl NodeMetrics {
    /// Register `instruments` and the collectors that read `raft` and `replica` at scrape
    /// time, and start counting the replica's applies.
    pub fn new(instruments: &Instruments, raft: Raft, replica: Arc<Replica>) -> Self {
        replica.watch_applies(instruments.applied.clone());
        let mut registry = Registry::default();
        registry.register_with_unit(
            "flotilla_log_flush",
            "Time from handing entries to the log until they are fsync'd (group commit wait included)",
            Unit::Seconds,
            instruments.log_flush_seconds.clone(),
        );
        registry.register_with_unit(
            "flotilla_commit",
            "Time from proposing an entry until it is committed and applied on this node",
            Unit::Seconds,
            instruments.commit_seconds.clone(),
        );
        registry.register(
            "flotilla_entry_commands",
            "Commands per log entry this node proposed (the batching at work)",
            instruments.entry_commands.clone(),
        );
        registry.register(
            "flotilla_raft_leader_changes",
            "Times this node saw the leader change (to another node or to none)",
            instruments.leader_changes.clone(),
        );
        registry.register_collector(Box::new(instruments.applied.clone()));
        registry.register_collector(Box::new(QueueGauges { replica }));
        registry.register_collector(Box::new(RaftGauges { raft }));
        Self { registry }
    }

    /// The Prometheus text format (version 0.0.4) of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; a collector's error would be a bug in it.
        if let Err(e) = prometheus_text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "metrics could not be rendered");
        }
        out
    }

    /// The content type of [`NodeMetrics::render`].
    pub const CONTENT_TYPE: &'static str = prometheus_text::CONTENT_TYPE;
}
