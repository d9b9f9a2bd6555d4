//! A single-node openraft Raft over our storage: restart rebuilds the same state from the
//! snapshot plus the committed log after it.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::Config;
use openraft::Raft;
use openraft::RaftNetworkFactory;
use openraft::alias::SnapshotOf;
use openraft::alias::VoteOf;
use openraft::errors::RPCError;
use openraft::errors::ReplicationClosed;
use openraft::errors::StreamingError;
use openraft::errors::Unreachable;
use openraft::network::RPCOption;
use openraft::network::v2::RaftNetworkV2;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::SnapshotResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;

use crate::queue::Command;
use crate::queue::Request;
use crate::raft::error::StorageError;
use crate::raft::log_store::LogStore;
use crate::raft::state_machine::StateMachineStore;
use crate::replica::Replica;
use crate::types::NodeInfo;
use crate::types::SnapshotData;
use crate::types::TypeConfig;

/// A one-node cluster never talks to peers.
struct NoPeers;

fn unreachable() -> Unreachable<TypeConfig> {
    Unreachable::new(&io::Error::other("single-node test has no peers"))
}

impl RaftNetworkFactory<TypeConfig> for NoPeers {
    type Network = NoPeers;
    async fn new_client(&mut self, _target: u64, _node: &NodeInfo) -> NoPeers {
        NoPeers
    }
}

impl RaftNetworkV2<TypeConfig> for NoPeers {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        Err(RPCError::Unreachable(unreachable()))
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        Err(RPCError::Unreachable(unreachable()))
    }

    async fn full_snapshot(
        &mut self,
        _vote: VoteOf<TypeConfig>,
        _snapshot: SnapshotOf<TypeConfig, SnapshotData>,
        _cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        Err(StreamingError::Unreachable(unreachable()))
    }
}

type TestRaft = Raft<TypeConfig, StateMachineStore>;

async fn start(dir: &Path) -> (TestRaft, Arc<Replica>) {
    let config = Config {
        heartbeat_interval: 50,
        election_timeout_min: 150,
        election_timeout_max: 300,
        // Snapshots only when the test asks; purge right behind them.
        snapshot_policy: openraft::SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: 0,
        purge_batch_size: 1,
        ..Default::default()
    };
    let replica = Arc::new(Replica::default());
    let log = open_when_released(dir).await;
    let sm = StateMachineStore::open(dir, replica.clone()).unwrap();
    let raft = Raft::new(1, Arc::new(config.validate().unwrap()), NoPeers, log, sm)
        .await
        .unwrap();
    (raft, replica)
}

/// `Raft::shutdown` returns before openraft's workers have dropped their log readers, and the
/// WAL's directory lock goes with the last of them: retry a restart until it is released.
async fn open_when_released(dir: &Path) -> LogStore {
    for _ in 0..100 {
        match LogStore::open(dir) {
            Ok(log) => return log,
            Err(StorageError::OpenLog { source, .. }) if source.kind() == io::ErrorKind::WouldBlock => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    panic!("the previous Raft instance never released the log");
}

fn state_bytes(replica: &Replica) -> Vec<u8> {
    replica.read(|q| bincode::serde::encode_to_vec(q, bincode::config::standard()).unwrap())
}

async fn write(raft: &TestRaft, now_ms: u64) -> u64 {
    let req = Request {
        now_ms,
        commands: vec![Command::Tick, Command::Tick],
    };
    let resp = raft.client_write(req).await.unwrap();
    assert_eq!(resp.data.0.len(), 2, "one response per command");
    resp.log_id.index
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_rebuilds_state_from_snapshot_and_log() {
    let dir = tempfile::tempdir().unwrap();
    let timeout = Some(Duration::from_secs(10));

    let (raft, replica) = start(dir.path()).await;
    raft.initialize(BTreeMap::from([(
        1u64,
        NodeInfo {
            addr: "127.0.0.1:1".into(),
            zone: String::new(),
        },
    )]))
    .await
    .unwrap();
    raft.wait(timeout).current_leader(1, "leader").await.unwrap();
    for t in 1..=5 {
        write(&raft, 1_000 * t).await;
    }
    raft.trigger().snapshot().await.unwrap();
    let snap_at = raft
        .wait(timeout)
        .metrics(|m| m.snapshot.is_some(), "snapshot")
        .await
        .unwrap()
        .snapshot
        .unwrap();
    raft.wait(timeout)
        .purged(Some(snap_at), "purged behind snapshot")
        .await
        .unwrap();
    // Entries after the snapshot exist only in the log.
    let mut last = 0;
    for t in 6..=9 {
        last = write(&raft, 1_000 * t).await;
    }
    let before = state_bytes(&replica);
    assert_ne!(before, state_bytes(&Replica::default()));
    raft.shutdown().await.unwrap();
    drop(raft);

    let (raft, replica) = start(dir.path()).await;
    // The snapshot is loaded and the committed entries after it re-applied inside `Raft::new`
    // (openraft's `get_initial_state`), before any election could commit and apply them
    // again: so the replica must already be back, without waiting.
    assert_eq!(
        state_bytes(&replica),
        before,
        "snapshot + re-applied log on start"
    );
    let m = raft
        .wait(timeout)
        .applied_index_at_least(Some(last), "applied")
        .await
        .unwrap();
    assert_eq!(m.snapshot, Some(snap_at));
    // And the restarted node serves writes again.
    raft.wait(timeout)
        .current_leader(1, "leader again")
        .await
        .unwrap();
    assert!(write(&raft, 10_000).await > last);
    raft.shutdown().await.unwrap();
}
