//! Wiring. [`run_with`] runs a node in five steps, one function each:
//!
//! 1. `open_identity`: read the data directory's identity, or found a cluster, or ask one for
//!    an id (`--join`);
//! 2. `open_raft`: open the log and the state machine, start Raft, initialize a founder;
//! 3. `start_services`: the proposer, the admin, the node's duties ([`crate::leader`]), the
//!    declaration of its built-in task names ([`crate::cluster::catalog`]), the worker pool,
//!    the gRPC services, and a join that still has to finish;
//! 4. `serve_until_shutdown`: serve until shutdown is asked (or the join fails); then drain
//!    the workers first (they still need the log to hand tasks back), hand leadership off, and
//!    stop serving;
//! 5. `stop`: end the duties and a join still running, and stop Raft.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use flotilla_proto::v1::queue_service_server::QueueServiceServer;
use flotilla_proto::v1::raft_service_server::RaftServiceServer;
use flotilla_proto::v1::worker_service_server::WorkerServiceServer;
use flotilla_tls::NodeTls;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tracing::error;
use tracing::info;
use tracing::warn;

use crate::clock::SharedClock;
use crate::clock::SystemClock;
use crate::cluster::Admin;
use crate::cluster::Identity;
use crate::cluster::catalog;
use crate::cluster::join;
use crate::cluster::secrets;
use crate::cluster::tokens;
use crate::config::Config;
use crate::config::MAX_GRPC_MESSAGE_BYTES;
use crate::grpc::NodeGate;
use crate::grpc::QueueApi;
use crate::grpc::RaftApi;
use crate::grpc::WorkerApi;
use crate::grpc::auth::Auth;
use crate::grpc::auth::AuthLayer;
use crate::grpc::calls::CallsLayer;
use crate::grpc::calls::MAX_CLIENT_CALLS;
use crate::grpc::conn;
use crate::grpc::conn::ConnLimits;
use crate::grpc::conn::Guarded;
use crate::grpc::peer_identity::PeerCertificates;
use crate::grpc::queue_service::ApiLimits;
use crate::grpc::worker_service;
use crate::leader;
use crate::leader::Duties;
use crate::leader::pool_name;
use crate::network::Connector;
use crate::network::NetworkFactory;
use crate::network::Peers;
use crate::network::SharedSecret;
use crate::network::TcpConnector;
use crate::network::TlsConnector;
use crate::proposer::Proposer;
use crate::raft::LogStore;
use crate::raft::Raft;
use crate::raft::SimDisk;
use crate::raft::SimLogStore;
use crate::raft::StateMachineStore;
use crate::replica::Replica;
use crate::types::NodeInfo;
use crate::worker::NodeBackend;
use crate::worker::PoolConfig;
use crate::worker::PoolHandle;
use crate::worker::TaskRegistry;
use crate::worker::WorkerPool;
use crate::worker::remote::Sessions;

/// How often the server pings a connection's peer (HTTP/2), and how long it waits for the
/// answer before it drops the connection and the calls on it.
const SERVER_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
const SERVER_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/2 streams (calls) open at once on one connection; a client waits for a free one.
const MAX_STREAMS_PER_CONNECTION: u32 = 256;
/// Once serving stops, how long open calls get to finish before the node stops anyway.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

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
    #[error(transparent)]
    Tls(#[from] flotilla_tls::TlsError),
    #[error(transparent)]
    Entropy(#[from] crate::secret::EntropyError),
    /// Raft stopped by itself (a write failed: a full disk, an IO error). The node exits so
    /// that a service manager restarts it, instead of lingering without a working log.
    #[error(
        "raft stopped: {0}; this node exits so it can be restarted (free disk space first if \
         it is full)"
    )]
    RaftFailed(String),
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

/// Run a node on `listener` until `shutdown` resolves: over TLS when `config.tls` names the
/// files (the port then serves TLS only, and peers are dialled with mutual TLS).
pub async fn run(
    config: Config,
    registry: TaskRegistry,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let incoming = conn::accept(listener);
    let Some(files) = &config.tls else {
        return run_with(config, registry, NodeEnv::default(), incoming, shutdown).await;
    };
    let tls = Arc::new(NodeTls::load(&files.cert, &files.key, &files.ca)?);
    info!(cluster = tls.cluster(), cert = %files.cert.display(), "tls on; peers need a node certificate of this cluster");
    let server_config = tls.grpc_server_config()?;
    let env = NodeEnv {
        connector: Arc::new(TlsConnector::new(TcpConnector::default(), tls.clone())),
        tls: Some(tls),
        ..NodeEnv::default()
    };
    let incoming = flotilla_tls::accept(incoming, server_config, flotilla_tls::accept::HANDSHAKE_TIMEOUT);
    run_with(config, registry, env, incoming, shutdown).await
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
    /// The node's TLS, when `incoming` and `connector` carry it (`run` sets all three from
    /// `config.tls`): peer calls are then taken only from nodes of its cluster ([`NodeGate`]).
    pub tls: Option<Arc<NodeTls>>,
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
            tls: None,
        }
    }
}

/// A connection the node serves (TCP, TLS, or the simulator's). Its info says whether the peer
/// showed a certificate ([`PeerCertificates`]): a wrapper of connections must forward it.
pub trait Connection:
    tokio::io::AsyncRead
    + tokio::io::AsyncWrite
    + tonic::transport::server::Connected<ConnectInfo: PeerCertificates>
    + Unpin
    + Send
    + 'static
{
}

impl<T> Connection for T where
    T: tokio::io::AsyncRead
        + tokio::io::AsyncWrite
        + tonic::transport::server::Connected<ConnectInfo: PeerCertificates>
        + Unpin
        + Send
        + 'static
{
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
    IO: Connection,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if config.tls.is_some() && env.tls.is_none() {
        // Never serve plaintext to a config that asked for TLS (`run` sets both).
        return Err(ServerError::Tls(flotilla_tls::TlsError::Invalid(
            "config.tls is set but the node's connections carry no tls".into(),
        )));
    }
    let (warn_exposure, exposure) = config.exposure_summary();
    if warn_exposure {
        warn!(listen = %config.listen, "{exposure}");
    } else {
        info!(listen = %config.listen, "{exposure}");
    }
    // A joining node shows its join token until it has its id and the peer secret.
    let anonymous = Peers::new(env.connector.clone()).with_token(config.token.as_ref().map(|t| t.0.as_str()));
    let (identity, secret) = open_identity(&config, &anonymous).await?;
    let peers = anonymous.with_identity(&identity.cluster_id, identity.node_id, secret.clone());
    let opened = open_raft(&config, &env, &identity, peers.clone()).await?;
    let (serving, stopping) = start_services(&config, registry, &env, &identity, opened, peers, secret)?;
    // Every connection, TCP or simulated, is closed when it stays silent or idle too long.
    let limits = ConnLimits {
        handshake: Duration::from_millis(config.handshake_timeout_ms),
        idle: Duration::from_millis(config.idle_timeout_ms),
    };
    let incoming = incoming.map(move |conn| conn.map(|io| Guarded::new(io, limits)));
    let (served, failure) = serve_until_shutdown(&config, serving, incoming, shutdown).await;
    stop(stopping).await;
    if let Some(e) = failure {
        return Err(e);
    }
    served.map_err(ServerError::from)
}

/// Step 1: this data directory's identity and peer secret: read back, or a new cluster founded
/// here (with a new secret), or an id and the secret asked of the cluster named by `--join`
/// (stored, with the join still pending). `anonymous` shows the join token.
async fn open_identity(
    config: &Config,
    anonymous: &Peers,
) -> Result<(Identity, Arc<SharedSecret>), ServerError> {
    let data_dir = &config.data_dir;
    let (identity, secret, founded) = match Identity::load(data_dir)? {
        Some(identity) => {
            let secret = secrets::load_peer_secret(data_dir)?;
            if !config.join.is_empty() {
                let proof = shared_secret(data_dir, &secret)?;
                let member = anonymous.with_identity(&identity.cluster_id, identity.node_id, proof);
                join::check_same_cluster(&member, &config.join, &identity.cluster_id).await?;
            }
            (identity, secret, false)
        }
        None if config.join.is_empty() => {
            let identity = Identity::found();
            // The secret first: a directory with only a secret is still new (identity.rs).
            let secret = crate::secret::random_token()?;
            secrets::store_peer_secret(data_dir, &secret)?;
            identity.store(data_dir)?;
            (identity, secret, true)
        }
        None => {
            let advertise = config.advertise_addr();
            let (cluster_id, node_id, secret) =
                join::allocate_id(anonymous, &config.join, &advertise, &config.zone).await?;
            let identity = Identity::joining(cluster_id, node_id);
            secrets::store_peer_secret(data_dir, &secret.0)?;
            identity.store(data_dir)?;
            (identity, secret.0, false)
        }
    };
    if identity.pending_join && config.join.is_empty() {
        return Err(ServerError::Join(join::JoinError::Refused(
            "this node never finished joining its cluster; start it again with --join PEER".into(),
        )));
    }
    info!(node_id = identity.node_id, cluster_id = %identity.cluster_id, founded, pending_join = identity.pending_join, data_dir = %data_dir.display(), "opening node");
    Ok((identity, shared_secret(data_dir, &secret)?))
}

/// The peer proof of `secret` (read from, or stored in, `data_dir`).
fn shared_secret(data_dir: &std::path::Path, secret: &str) -> Result<Arc<SharedSecret>, ServerError> {
    SharedSecret::new(secret).map(Arc::new).map_err(|e| {
        ServerError::Cluster(crate::cluster::ClusterError::BadIdentity {
            path: secrets::secret_path(data_dir),
            reason: e.to_string(),
        })
    })
}

/// Raft, started over this node's storage.
struct Opened {
    raft: Raft,
    replica: Arc<Replica>,
    /// Bytes of log applied since the last snapshot (for compaction by size).
    log_bytes: Arc<AtomicU64>,
}

/// Step 2: open the state machine and the log (the WAL, or a simulated disk), start Raft, and
/// initialize a single-node cluster if this node founded one.
async fn open_raft(
    config: &Config,
    env: &NodeEnv,
    identity: &Identity,
    peers: Peers,
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
            let log_store = LogStore::open(data_dir)?;
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

/// What serving needs: the services, and what must happen before serving stops.
struct Serving {
    raft: Raft,
    queue_api: QueueApi,
    raft_api: RaftApi,
    worker_api: WorkerApi,
    /// The remote workers' sessions, drained with the pool.
    sessions: Sessions,
    /// Who may call `raft_api`: with TLS, nodes of this cluster only (`None` without TLS).
    tls: Option<Arc<NodeTls>>,
    /// Who may call what, in front of every service.
    auth: AuthLayer,
    pool: Option<PoolHandle>,
    /// Resolves with the error if a pending join fails.
    join_failed: Option<oneshot::Receiver<join::JoinError>>,
}

/// What stopping needs once serving ended.
struct Stopping {
    raft: Raft,
    duties: Duties,
    joiner: Option<JoinHandle<()>>,
    /// Keeps an admin token in the cluster (`cluster::tokens`).
    admin_keeper: JoinHandle<()>,
    /// Declares the built-in task names once (`cluster::catalog`).
    declarer: JoinHandle<()>,
}

/// Step 3: the proposer, the admin, the node's duties, the worker pool, the gRPC services, and
/// the end of a pending join.
fn start_services(
    config: &Config,
    registry: TaskRegistry,
    env: &NodeEnv,
    identity: &Identity,
    opened: Opened,
    peers: Peers,
    secret: Arc<SharedSecret>,
) -> Result<(Serving, Stopping), ServerError> {
    let Opened {
        raft,
        replica,
        log_bytes,
    } = opened;
    let node_id = identity.node_id;
    let clock = env.clock.clone();
    let proposer = Proposer::start(raft.clone(), clock.clone(), peers.clone());
    let admin = Admin::new(
        raft.clone(),
        proposer.clone(),
        peers.clone(),
        identity.cluster_id.as_str().into(),
        secret.value(),
    );
    let admin_keeper = tokio::spawn(tokens::keep_an_admin_token(
        raft.clone(),
        replica.clone(),
        proposer.clone(),
        clock.clone(),
        config.admin_token_path(),
    ));
    let auth = AuthLayer::new(Auth {
        client_auth: config.client_auth(),
        peer: secret.clone(),
        replica: replica.clone(),
        clock: clock.clone(),
        cluster_id: identity.cluster_id.as_str().into(),
    });
    let duties = Duties::start(
        raft.clone(),
        replica.clone(),
        proposer.clone(),
        clock,
        log_bytes,
        config.snapshot_log_bytes,
    );

    let known_tasks: BTreeSet<String> = registry.names().map(str::to_string).collect();
    let built_ins = catalog::built_ins(registry.names());
    let declarer = catalog::declare_built_ins(
        admin.clone(),
        replica.clone(),
        proposer.clone(),
        node_id,
        built_ins,
    );
    let registry = Arc::new(registry);
    let pool = start_pool(config, env, node_id, registry, &proposer, &replica)?;

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
    let sessions = Sessions::default();
    let worker_api = WorkerApi::new(
        worker_service::settings(config, node_id),
        worker_service::session_node(&proposer, &replica, &admin),
        sessions.clone(),
        proposer.clone(),
    );
    let raft_api = RaftApi::new(raft.clone(), proposer, admin).max_snapshot_bytes(config.max_snapshot_bytes);
    let (joiner, join_failed) = finish_join(config, identity, peers).unzip();
    let serving = Serving {
        raft: raft.clone(),
        queue_api,
        raft_api,
        worker_api,
        sessions,
        tls: env.tls.clone(),
        auth,
        pool,
        join_failed,
    };
    let stopping = Stopping {
        raft,
        duties,
        joiner,
        admin_keeper,
        declarer,
    };
    Ok((serving, stopping))
}

/// The node's own worker pool, unless it runs no workers.
fn start_pool(
    config: &Config,
    env: &NodeEnv,
    node_id: crate::types::NodeId,
    registry: Arc<TaskRegistry>,
    proposer: &Proposer,
    replica: &Arc<Replica>,
) -> Result<Option<PoolHandle>, ServerError> {
    let workers = config.worker_count();
    let pool = if workers > 0 {
        let pool_config = PoolConfig {
            worker_name: pool_name(node_id),
            workers,
            prefetch: config.prefetch,
            queues: config.pool_queues(),
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

    Ok(pool)
}

/// A joining node finishes its join while serving (the leader replicates to it): the task
/// doing so, and where it reports a failure (the node then stops with the error).
fn finish_join(
    config: &Config,
    identity: &Identity,
    peers: Peers,
) -> Option<(JoinHandle<()>, oneshot::Receiver<join::JoinError>)> {
    if !identity.pending_join {
        return None;
    }
    let (failed_tx, failed_rx) = oneshot::channel();
    let (joined, dir) = (config.join.clone(), config.data_dir.clone());
    let (addr, zone) = (config.advertise_addr(), config.zone.clone());
    let timeout = Duration::from_millis(config.join_timeout_ms);
    let mut identity = identity.clone();
    let task = tokio::spawn(async move {
        let result = join::become_member(&peers, &joined, identity.node_id, &addr, &zone, timeout).await;
        let result = result.and_then(|()| {
            identity.pending_join = false;
            identity
                .store(&dir)
                .map_err(|e| join::JoinError::Refused(e.to_string()))
        });
        if let Err(e) = result {
            let _ = failed_tx.send(e);
        }
    });
    Some((task, failed_rx))
}

/// Step 4: serve until `shutdown` fires, the join fails or Raft stops by itself; then drain the
/// workers (unless Raft stopped: they could not hand anything back), hand leadership off, and
/// stop serving. Returns how serving ended and the failure that stopped it, if one did.
async fn serve_until_shutdown<I, IO, IE>(
    config: &Config,
    serving: Serving,
    incoming: I,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> (Result<(), tonic::transport::Error>, Option<ServerError>)
where
    I: futures::Stream<Item = Result<IO, IE>>,
    IO: Connection,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let Serving {
        raft,
        queue_api,
        raft_api,
        worker_api,
        sessions,
        tls,
        auth,
        pool,
        join_failed,
    } = serving;
    let gate = NodeGate::<IO::ConnectInfo>::new(tls.as_deref());
    let node_id = *raft.node_id();
    // Serving stops when this task says so, after the workers have drained.
    let (stop_tx, stop_rx) = oneshot::channel::<Option<ServerError>>();
    let grace = Duration::from_millis(config.drain_grace_ms);
    let drainer = tokio::spawn(async move {
        let join_failed = async {
            match join_failed {
                Some(rx) => match rx.await {
                    Ok(e) => e,
                    Err(_) => std::future::pending().await,
                },
                None => std::future::pending().await,
            }
        };
        let failure = tokio::select! {
            _ = shutdown => {
                info!("shutdown requested; draining workers");
                None
            }
            e = join_failed => {
                warn!(error = %e, "join failed; stopping");
                Some(ServerError::Join(e))
            }
            fatal = leader::raft_failed(raft.clone()) => {
                error!(error = %fatal, "raft stopped; exiting so this node can be restarted");
                let _ = stop_tx.send(Some(ServerError::RaftFailed(fatal)));
                return;
            }
        };
        let local = async {
            if let Some(pool) = pool {
                let report = pool.drain(grace).await;
                info!(?report, "workers drained");
            }
        };
        tokio::join!(local, sessions.drain_all(grace));
        leader::hand_off_leadership(&raft).await;
        let _ = stop_tx.send(failure);
    });

    let workers = config.worker_count();
    info!(node_id, listen = %config.listen, advertise = %config.advertise_addr(), workers, "node ready");
    let (stopping_tx, mut stopping_rx) = oneshot::channel::<Option<ServerError>>();
    let serve = tonic::transport::Server::builder()
        // A peer that stopped answering (frozen, cut off) is noticed and its calls dropped.
        .http2_keepalive_interval(Some(SERVER_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(SERVER_KEEPALIVE_TIMEOUT))
        // Calls in progress per connection (HTTP/2 streams); node-wide, see `CallsLayer`.
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .layer(auth)
        .layer(CallsLayer::<IO::ConnectInfo>::new(MAX_CLIENT_CALLS))
        .add_service(
            QueueServiceServer::new(queue_api)
                // A client request needs no more than a full batch of full payloads (capped).
                .max_decoding_message_size(config.max_request_bytes())
                .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES),
        )
        .add_service(
            WorkerServiceServer::new(worker_api)
                .max_decoding_message_size(worker_service::max_message_bytes(config))
                .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES),
        )
        .add_service(tonic::service::interceptor::InterceptedService::new(
            RaftServiceServer::new(raft_api)
                .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES),
            gate,
        ))
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = stopping_tx.send(stop_rx.await.ok().flatten());
        });
    tokio::pin!(serve);
    let (served, failure) = tokio::select! {
        served = &mut serve => (served, stopping_rx.try_recv().ok().flatten()),
        // Open calls get a moment to finish; a wait stream may never end by itself.
        failure = &mut stopping_rx => {
            let served = tokio::time::timeout(CLOSE_GRACE, &mut serve).await.unwrap_or(Ok(()));
            (served, failure.ok().flatten())
        }
    };
    drainer.abort();
    (served, failure)
}

/// Step 5: end the node's duties and a join still running, and stop Raft.
async fn stop(stopping: Stopping) {
    let Stopping {
        raft,
        duties,
        joiner,
        admin_keeper,
        declarer,
    } = stopping;
    drop(duties);
    admin_keeper.abort();
    declarer.abort();
    if let Some(joiner) = joiner {
        joiner.abort();
    }
    if let Err(e) = raft.shutdown().await {
        warn!(error = %e, "raft shutdown");
    }
    info!(node_id = *raft.node_id(), "node stopped");
}
