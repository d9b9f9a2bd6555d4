//! Step 2 of a node's start: Raft's configuration from the node's flags, and Raft started over
//! the node's storage (the WAL, or the simulator's disk).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use tracing::info;

use super::LogStorage;
use super::NodeEnv;
use super::ServerError;
use crate::cluster::Identity;
use crate::config::Config;
use crate::network::NetworkFactory;
use crate::network::Peers;
use crate::raft::LogStore;
use crate::raft::Raft;
use crate::raft::SimLogStore;
use crate::raft::StateMachineStore;
use crate::replica::Replica;
use crate::types::NodeInfo;

pub(super) fn raft_config(config: &Config) -> Result<openraft::Config, ServerError> {
    let rc = openraft::Config {
        cluster_name: "flotilla".into(),
        heartbeat_interval: config.heartbeat_interval_ms,
        election_timeout_min: config.election_timeout_ms_min,
        election_timeout_max: config.election_timeout_ms_max,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.snapshot_every_entries),
        // A node that was cut off must not force an election when it comes back: it asks
        // first whether it could win (PreVote), and a healthy leader's followers say no.
        enable_pre_vote: Some(true),
        // A restarted leader must win a new election. openraft's default lets it resume in its
        // old term, but its log may have lost an unsynced tail that a quorum of followers had
        // already committed; resuming, it writes other entries under the same (term, index)
        // and the replicas diverge (found by `sim dst --seed 70`).
        enable_leader_restore: Some(false),
        // Keep some log behind the snapshot so a briefly lagging follower catches up from the
        // log instead of a whole snapshot, but not so much that the log outgrows its budget.
        max_in_snapshot_log_to_keep: (config.snapshot_every_entries / 2).min(1_000),
        ..Default::default()
    };
    rc.validate().map_err(|e| ServerError::Raft(e.to_string()))
}

/// Raft, started over this node's storage.
pub(super) struct Opened {
    pub(super) raft: Raft,
    pub(super) replica: Arc<Replica>,
    /// Bytes of log applied since the last snapshot (for compaction by size).
    pub(super) log_bytes: Arc<AtomicU64>,
}

/// Step 2: open the state machine and the log (the WAL, or a simulated disk), start Raft, and
/// initialize a single-node cluster if this node founded one.
pub(super) async fn open_raft(
    config: &Config,
    env: &NodeEnv,
    identity: &Identity,
    peers: Peers,
    instruments: Option<&crate::observe::Instruments>,
) -> Result<Opened, ServerError> {
    let data_dir = &config.data_dir;
    let node_id = identity.node_id;
    let replica = Arc::new(Replica::default());
    let mut state_machine = StateMachineStore::open(data_dir, replica.clone())?;
    let log_bytes = state_machine.log_bytes_since_snapshot();
    let network = NetworkFactory::new(peers).snapshot_chunk_bytes(config.snapshot_chunk_bytes);
    let raft_config = Arc::new(raft_config(config)?);
    let raft = match &env.storage {
        LogStorage::Disk => {
            let mut log_store = LogStore::open(data_dir)?;
            if let Some(i) = instruments {
                log_store = log_store.with_flush_histogram(i.log_flush_seconds.clone());
            }
            Raft::new(node_id, raft_config, network, log_store, state_machine).await
        }
        LogStorage::Simulated(disk) => {
            state_machine.inline_io();
            let log_store = SimLogStore::open(disk.clone());
            Raft::new(node_id, raft_config, network, log_store, state_machine).await
        }
    }
    .map_err(|e| ServerError::Raft(e.to_string()))?;
    if let Some(observer) = &env.observer {
        observer(&raft, &replica);
    }

    // Only the founder initializes (also when it crashed between writing its identity and
    // here); a joining node is brought in by the leader.
    let initialized = raft
        .is_initialized()
        .await
        .map_err(|e| ServerError::Raft(e.to_string()))?;
    if !initialized && node_id == 1 && !identity.pending_join {
        let advertise = config.advertise_addr();
        let me = NodeInfo {
            addr: advertise.clone(),
            zone: config.zone.clone(),
        };
        raft.initialize(BTreeMap::from([(node_id, me)]))
            .await
            .map_err(|e| ServerError::Raft(e.to_string()))?;
        info!(node_id, addr = %advertise, "initialized a single-node cluster");
    }
    Ok(Opened {
        raft,
        replica,
        log_bytes,
    })
}
