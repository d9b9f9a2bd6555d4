//! Wiring: open the data directory, start Raft, the proposer, the ticker, the worker pool and
//! the gRPC server; on shutdown, drain workers first (they still need the log to hand tasks
//! back), then stop serving, then stop Raft.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use flotilla_proto::v1::queue_service_server::QueueServiceServer;
use flotilla_proto::v1::raft_service_server::RaftServiceServer;
use openraft::Instant as _;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tracing::info;
use tracing::warn;

use crate::clock::SharedClock;
use crate::clock::SystemClock;
use crate::cluster::Admin;
use crate::cluster::Identity;
use crate::cluster::join;
use crate::config::Config;
use crate::config::MAX_GRPC_MESSAGE_BYTES;
use crate::grpc::QueueApi;
use crate::grpc::RaftApi;
use crate::grpc::queue_service::ApiLimits;
use crate::network::Connector;
use crate::network::NetworkFactory;
use crate::network::TcpConnector;
use crate::proposer::Proposer;
use crate::queue::Command;
use crate::raft::LogStore;
use crate::raft::Raft;
use crate::raft::SimDisk;
use crate::raft::SimLogStore;
use crate::raft::StateMachineStore;
use crate::replica::Replica;
use crate::types::NodeInfo;
use crate::worker::NodeBackend;
use crate::worker::PoolConfig;
use crate::worker::TaskRegistry;
use crate::worker::WorkerPool;
use openraft::async_runtime::WatchReceiver;

/// Why the node could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    #[error(transparent)]
    Storage(#[from] crate::raft::StorageError),
    #[error("raft: {0}")]
    Raft(String),
    #[error("workers: {0}")]
    Worker(String),
    #[error(transparent)]
    Join(#[from] join::JoinError),
    #[error("grpc server: {0}")]
    Serve(#[from] tonic::transport::Error),
}

fn raft_config(config: &Config) -> Result<openraft::Config, ServerError> {
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

/// Run a node on `listener` until `shutdown` resolves.
pub async fn run(
    config: Config,
    registry: TaskRegistry,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    // tonic ignores `tcp_nodelay` for an incoming stream: set it on each connection, or small
    // replies wait for the peer's delayed ACK (Nagle), tens of ms per call.
    let incoming = TcpListenerStream::new(listener).map(|conn| {
        conn.inspect(|stream| {
            if let Err(e) = stream.set_nodelay(true) {
                warn!(error = %e, "could not set TCP_NODELAY");
            }
        })
    });
    run_with(config, registry, NodeEnv::default(), incoming, shutdown).await
}

/// What a node takes from the world outside the process: the clock, how it dials peers, where
/// its Raft log lives, how its workers run, and (as `run_with`'s `incoming`) the connections
/// it accepts. The simulator supplies its own.
#[derive(Clone)]
pub struct NodeEnv {
    pub clock: SharedClock,
    pub connector: Arc<dyn Connector>,
    pub storage: LogStorage,
    /// Run the worker actors on the caller's `LocalSet` instead of an actix `System` on a
    /// thread of their own (the simulator runs a whole node on one thread).
    pub local_workers: bool,
    /// Called once Raft is up, with the node's Raft handle and replica: the simulator watches
    /// roles, terms and applied state through them.
    pub observer: Option<Observer>,
}

/// See [`NodeEnv::observer`].
pub type Observer = Arc<dyn Fn(&Raft, &Arc<Replica>) + Send + Sync>;

/// Where the Raft log is kept.
#[derive(Clone, Debug)]
pub enum LogStorage {
    /// The WAL in `<data dir>/wal/`.
    Disk,
    /// A simulated disk; snapshot files are then written without a blocking thread, so the
    /// simulator controls every step.
    Simulated(Arc<SimDisk>),
}

impl Default for NodeEnv {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            connector: Arc::new(TcpConnector::default()),
            storage: LogStorage::Disk,
            local_workers: false,
            observer: None,
        }
    }
}

/// Run a node serving the connections of `incoming` until `shutdown` resolves.
pub async fn run_with<I, IO, IE>(
    config: Config,
    registry: TaskRegistry,
    env: NodeEnv,
    incoming: I,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError>
where
    I: futures::Stream<Item = Result<IO, IE>>,
    IO: tokio::io::AsyncRead
        + tokio::io::AsyncWrite
        + tonic::transport::server::Connected
        + Unpin
        + Send
        + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let clock = env.clock.clone();
    let data_dir = config.data_dir.clone();
    let advertise = config.advertise_addr();
    let anonymous = NetworkFactory::new(env.connector.clone());
    let (identity, founded) = match Identity::load(&data_dir)? {
        Some(identity) => {
            if !config.join.is_empty() {
                join::check_same_cluster(&anonymous, &config.join, &identity.cluster_id).await?;
            }
            (identity, false)
        }
        None if config.join.is_empty() => {
            let identity = Identity::found();
            identity.store(&data_dir)?;
            (identity, true)
        }
        None => {
            let (cluster_id, node_id) =
                join::allocate_id(&anonymous, &config.join, &advertise, &config.zone).await?;
            let identity = Identity::joining(cluster_id, node_id);
            identity.store(&data_dir)?;
            (identity, false)
        }
    };
    if identity.pending_join && config.join.is_empty() {
        return Err(ServerError::Join(join::JoinError::Refused(
            "this node never finished joining its cluster; start it again with --join PEER".into(),
        )));
    }
    let node_id = identity.node_id;
    info!(node_id, cluster_id = %identity.cluster_id, founded, pending_join = identity.pending_join, data_dir = %data_dir.display(), "opening node");

    let replica = Arc::new(Replica::default());
    let mut state_machine = StateMachineStore::open(&data_dir, replica.clone())?;
    let log_bytes = state_machine.log_bytes_since_snapshot();
    let network = anonymous.with_identity(&identity.cluster_id, node_id);
    let raft_config = Arc::new(raft_config(&config)?);
    let raft = match &env.storage {
        LogStorage::Disk => {
            let log_store = LogStore::open(&data_dir)?;
            Raft::new(node_id, raft_config, network.clone(), log_store, state_machine).await
        }
        LogStorage::Simulated(disk) => {
            state_machine.inline_io();
            let log_store = SimLogStore::open(disk.clone());
            Raft::new(node_id, raft_config, network.clone(), log_store, state_machine).await
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
        let me = NodeInfo {
            addr: advertise.clone(),
            zone: config.zone.clone(),
        };
        raft.initialize(BTreeMap::from([(node_id, me)]))
            .await
            .map_err(|e| ServerError::Raft(e.to_string()))?;
        info!(node_id, addr = %advertise, "initialized a single-node cluster");
    }

    let proposer = Proposer::start(raft.clone(), clock.clone(), network.clone());
    let admin = Admin::new(
        raft.clone(),
        proposer.clone(),
        network.clone(),
        identity.cluster_id.as_str().into(),
    );
    let ticker = tokio::spawn(tick(
        raft.clone(),
        replica.clone(),
        proposer.clone(),
        clock.clone(),
    ));
    let compactor = tokio::spawn(compact_by_size(
        raft.clone(),
        log_bytes,
        config.snapshot_log_bytes,
    ));

    let known_tasks: BTreeSet<String> = registry.names().map(str::to_string).collect();
    let registry = Arc::new(registry);
    let workers = config.worker_count();
    let pool = if workers > 0 {
        let pool_config = PoolConfig {
            worker_name: pool_name(node_id),
            workers,
            queues: config.queues.clone(),
            lease_ms: config.lease_ms,
            heartbeat_interval_ms: config.lease_ms / 3,
            default_time_limit_ms: config.default_time_limit_ms,
            ..PoolConfig::default()
        };
        let backend = Arc::new(NodeBackend::new(proposer.clone(), replica.clone()));
        let runtime = tokio::runtime::Handle::current();
        let pool = if env.local_workers {
            WorkerPool::start_local(pool_config, registry.clone(), backend, runtime)
        } else {
            WorkerPool::start(pool_config, registry.clone(), backend, runtime)
        };
        Some(pool.map_err(|e| ServerError::Worker(e.to_string()))?)
    } else {
        None
    };

    let limits = ApiLimits {
        max_payload_bytes: config.max_payload_bytes,
        max_batch_tasks: config.max_batch_tasks,
        default_result_ttl_ms: config.default_result_ttl_ms,
        default_retry_backoff_ms: config.default_retry_backoff_ms,
    };
    let queue_api = QueueApi::new(
        raft.clone(),
        replica.clone(),
        proposer.clone(),
        admin.clone(),
        known_tasks,
        limits,
    );
    let raft_api = RaftApi::new(raft.clone(), proposer.clone(), admin);

    // A joining node finishes its join while serving (the leader replicates to it); if that
    // fails, the node stops with the error.
    let (join_failed_tx, join_failed_rx) = tokio::sync::oneshot::channel::<join::JoinError>();
    let joiner = identity.pending_join.then(|| {
        let (network, peers, dir) = (network.clone(), config.join.clone(), data_dir.clone());
        let (addr, zone) = (advertise.clone(), config.zone.clone());
        let timeout = Duration::from_millis(config.join_timeout_ms);
        let mut identity = identity.clone();
        tokio::spawn(async move {
            let result = join::become_member(&network, &peers, identity.node_id, &addr, &zone, timeout).await;
            let result = result.and_then(|()| {
                identity.pending_join = false;
                identity
                    .store(&dir)
                    .map_err(|e| join::JoinError::Refused(e.to_string()))
            });
            if let Err(e) = result {
                let _ = join_failed_tx.send(e);
            }
        })
    });

    // Serving stops when `shutdown` fires (or the join fails), after the workers have drained.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let grace = Duration::from_millis(config.drain_grace_ms);
    let join_error: Arc<std::sync::Mutex<Option<join::JoinError>>> = Arc::default();
    let join_error_slot = join_error.clone();
    let raft_for_shutdown = raft.clone();
    let drainer = tokio::spawn(async move {
        let join_failed = async {
            match join_failed_rx.await {
                Ok(e) => e,
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown => info!("shutdown requested; draining workers"),
            e = join_failed => {
                warn!(error = %e, "join failed; stopping");
                *join_error_slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            }
        }
        if let Some(pool) = pool {
            let report = pool.drain(grace).await;
            info!(?report, "workers drained");
        }
        hand_off_leadership(&raft_for_shutdown).await;
        let _ = stop_tx.send(());
    });

    info!(node_id, listen = %config.listen, advertise = %advertise, workers, "node ready");
    let served = tonic::transport::Server::builder()
        .add_service(
            QueueServiceServer::new(queue_api)
                .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES),
        )
        .add_service(
            RaftServiceServer::new(raft_api)
                .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES),
        )
        .serve_with_incoming_shutdown(incoming, async {
            let _ = stop_rx.await;
        })
        .await;

    drainer.abort();
    ticker.abort();
    compactor.abort();
    if let Some(joiner) = joiner {
        joiner.abort();
    }
    if let Err(e) = raft.shutdown().await {
        warn!(error = %e, "raft shutdown");
    }
    info!(node_id, "node stopped");
    if let Some(e) = join_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(ServerError::Join(e));
    }
    served.map_err(ServerError::from)
}

/// A leader that is shutting down hands leadership to its most caught-up voter, so the cluster
/// does not wait out an election timeout; bounded to one second, then it stops anyway.
async fn hand_off_leadership(raft: &Raft) {
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
async fn compact_by_size(raft: Raft, log_bytes: Arc<std::sync::atomic::AtomicU64>, threshold: u64) {
    let mut interval = tokio::time::interval(Duration::from_millis(200));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if log_bytes.load(std::sync::atomic::Ordering::Relaxed) >= threshold {
            info!(threshold, "log passed its size threshold; building a snapshot");
            if raft.trigger().snapshot().await.is_err() {
                return;
            }
            // The counter resets when the snapshot view is taken; give it time to start.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// openraft's clock (simulated time under the simulator), which its heartbeat metrics use.
type RaftInstant = openraft::alias::InstantOf<crate::types::TypeConfig>;

/// The name a node's own worker pool leases under.
fn pool_name(node_id: u64) -> String {
    format!("node-{node_id}")
}

/// On the leader: drop the standing capacity of the pools of nodes that have not acknowledged
/// a heartbeat for a while (crashed, or cut off), so that tasks submitted after a node is lost
/// are not granted to it, where they would wait out a whole lease. Wrongly suspecting a slow
/// node costs little: its pool loses the fast path until its next lease stands again.
async fn clear_unreachable_standing(
    raft: &Raft,
    replica: &Replica,
    proposer: &Proposer,
    leader_since: RaftInstant,
) {
    // A few election timeouts: well past a missed heartbeat or a slow fsync.
    let after = (raft.config().election_timeout_max * 4).max(1000);
    let after = Duration::from_millis(after);
    let now = RaftInstant::now();
    let me = *raft.node_id();
    let Some(acked) = raft.metrics().borrow_watched().heartbeat.clone() else {
        return;
    };
    for (id, last) in acked {
        let silent_since = last.map_or(leader_since, |t| t.into_inner());
        let name = pool_name(id);
        if id == me
            || now.saturating_duration_since(silent_since) < after
            || replica.read(|q| q.standing_capacity(&name)) == 0
        {
            continue;
        }
        warn!(node_id = id, worker = %name, "node not answering; dropping its pool's standing capacity");
        if let Err(e) = proposer.propose(Command::ClearStanding { worker: name }).await {
            warn!(error = %e, "ClearStanding not proposed");
        }
    }
}

/// On the leader, propose a `Tick` whenever a timer of the queue is due (ETA, retry backoff,
/// lease expiry, result expiry): entries carry time, so an idle cluster needs one to move.
async fn tick(raft: Raft, replica: Arc<Replica>, proposer: Proposer, clock: SharedClock) {
    let mut interval = tokio::time::interval(Duration::from_millis(50));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let me = *raft.node_id();
    let mut was_member = false;
    let mut leader_since: Option<RaftInstant> = None;
    loop {
        interval.tick().await;
        // A removed node hears nothing more from the cluster: say so once, plainly.
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
        was_member = is_member;
        match (raft.is_leader(), leader_since) {
            (true, None) => leader_since = Some(RaftInstant::now()),
            (false, Some(_)) => leader_since = None,
            _ => {}
        }
        if let Some(since) = leader_since {
            clear_unreachable_standing(&raft, &replica, &proposer, since).await;
        }
        let due = replica
            .read(|q| q.next_deadline_ms())
            .is_some_and(|d| d <= clock.now_ms());
        if due
            && raft.is_leader()
            && let Err(e) = proposer.propose(Command::Tick).await
        {
            warn!(error = %e, "tick not proposed");
        }
    }
}
