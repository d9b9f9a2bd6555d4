//! Step 3 of a node's start: everything that runs beside Raft (the proposer, the admin, the
//! node's duties, the built-in declarations, the worker pool, the gRPC services, the end of a
//! pending join), and what serving and stopping later need of it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::Duration;

use flotilla_tls::NodeTls;
use openraft::async_runtime::WatchReceiver;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::NodeEnv;
use super::ServerError;
use super::raft::Opened;
use crate::cluster::Admin;
use crate::cluster::Identity;
use crate::cluster::admin::LocalWorkers;
use crate::cluster::catalog;
use crate::cluster::join;
use crate::cluster::tokens;
use crate::config::Config;
use crate::grpc::EventApi;
use crate::grpc::LimitApi;
use crate::grpc::OpsApi;
use crate::grpc::QueueApi;
use crate::grpc::RaftApi;
use crate::grpc::ScheduleApi;
use crate::grpc::WorkerApi;
use crate::grpc::WorkflowApi;
use crate::grpc::auth::Auth;
use crate::grpc::auth::AuthLayer;
use crate::grpc::queue_service::ApiLimits;
use crate::grpc::worker_service;
use crate::leader::Duties;
use crate::leader::pool_name;
use crate::network::Peers;
use crate::network::SharedSecret;
use crate::proposer::Proposer;
use crate::raft::Raft;
use crate::replica::Replica;
use crate::worker::NodeBackend;
use crate::worker::PoolConfig;
use crate::worker::PoolHandle;
use crate::worker::TaskRegistry;
use crate::worker::WorkerPool;
use crate::worker::pool::PoolView;
use crate::worker::remote::Sessions;

/// What serving needs: the services, and what must happen before serving stops.
pub(super) struct Serving {
    pub(super) raft: Raft,
    pub(super) queue_api: QueueApi,
    pub(super) schedule_api: ScheduleApi,
    pub(super) limit_api: LimitApi,
    pub(super) event_api: EventApi,
    pub(super) workflow_api: WorkflowApi,
    pub(super) ops_api: OpsApi,
    pub(super) raft_api: RaftApi,
    pub(super) worker_api: WorkerApi,
    /// The remote workers' sessions, drained with the pool.
    pub(super) sessions: Sessions,
    /// Who may call `raft_api`: with TLS, nodes of this cluster only (`None` without TLS).
    pub(super) tls: Option<Arc<NodeTls>>,
    /// Who may call what, in front of every service.
    pub(super) auth: AuthLayer,
    pub(super) pool: Option<PoolHandle>,
    /// Resolves with the error if a pending join fails.
    pub(super) join_failed: Option<oneshot::Receiver<join::JoinError>>,
    /// gRPC health (and the HTTP port, with `--http-listen`).
    pub(super) observing: super::observe::Observing,
}

/// What stopping needs once serving ended.
pub(super) struct Stopping {
    pub(super) raft: Raft,
    pub(super) duties: Duties,
    pub(super) joiner: Option<JoinHandle<()>>,
    /// Keeps an admin token in the cluster (`cluster::tokens`).
    pub(super) admin_keeper: JoinHandle<()>,
    /// Declares the built-in task names once (`cluster::catalog`).
    pub(super) declarer: JoinHandle<()>,
}

/// Step 3: the proposer, the admin, the node's duties, the worker pool, the gRPC services, and
/// the end of a pending join.
#[allow(clippy::too_many_arguments, reason = "the steps' outputs, each passed once")]
pub(super) fn start_services(
    config: &Config,
    registry: TaskRegistry,
    env: &NodeEnv,
    identity: &Identity,
    opened: Opened,
    peers: Peers,
    secret: Arc<SharedSecret>,
    instruments: Option<&crate::observe::Instruments>,
) -> Result<(Serving, Stopping), ServerError> {
    let Opened {
        raft,
        replica,
        log_bytes,
    } = opened;
    let node_id = identity.node_id;
    let clock = env.clock.clone();
    let entries = instruments.map(|i| i.entries());
    let proposer = Proposer::start_measured(raft.clone(), clock.clone(), peers.clone(), entries);
    let sessions = Sessions::default();
    // The pool starts below, after the admin it does not need; its view is set then.
    let pool_view: Arc<OnceLock<PoolView>> = Arc::default();
    let local_workers = LocalWorkers {
        connected: {
            let sessions = sessions.clone();
            Arc::new(move || sessions.workers())
        },
        all: {
            let (sessions, pool_view) = (sessions.clone(), pool_view.clone());
            Arc::new(move || {
                let own = pool_view.get().map(PoolView::worker);
                own.into_iter().chain(sessions.node_workers()).collect()
            })
        },
    };
    let admin = Admin::new(
        raft.clone(),
        proposer.clone(),
        peers.clone(),
        identity.cluster_id.as_str().into(),
        secret.value(),
        local_workers,
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
        peers.formats(),
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
    if let Some(pool) = &pool {
        let _ = pool_view.set(pool.view(node_id, pool_name(node_id), config.pool_queues()));
    }

    let limits = ApiLimits {
        max_payload_bytes: config.max_payload_bytes,
        max_batch_tasks: config.max_batch_tasks,
        default_result_ttl_ms: config.default_result_ttl_ms,
        default_retry_backoff_ms: config.default_retry_backoff_ms,
        http_allow: Arc::new(config.http_allow().map_err(ServerError::Worker)?),
    };
    let queue_api = QueueApi::new(
        raft.clone(),
        replica.clone(),
        proposer.clone(),
        admin.clone(),
        known_tasks,
        limits,
    );
    let schedule_api = ScheduleApi::new(queue_api.clone(), proposer.clone());
    let limit_api = LimitApi::new(queue_api.clone(), proposer.clone());
    let event_api = EventApi::new(replica.clone());
    // A blank entry's log id names its term only; the leader is who Raft says leads it.
    let metrics = raft.metrics();
    replica.set_leader_of(Box::new(move |term| {
        let m = metrics.borrow_watched();
        (m.current_term == term).then_some(m.current_leader).flatten()
    }));
    let workflow_api = WorkflowApi::new(queue_api.clone(), proposer.clone());
    let ops_api = OpsApi::new(queue_api.clone(), proposer.clone());
    let worker_api = WorkerApi::new(
        worker_service::settings(config, node_id),
        worker_service::session_node(&proposer, &replica, &admin),
        sessions.clone(),
        proposer.clone(),
    );
    let apis = super::observe::Apis {
        queue: queue_api.clone(),
        ops: ops_api.clone(),
        schedules: schedule_api.clone(),
    };
    let observing =
        super::observe::start_observing(config, instruments, &raft, &replica, &admin, &auth, apis)?;
    let raft_api = RaftApi::new(raft.clone(), proposer, admin).max_snapshot_bytes(config.max_snapshot_bytes);
    let (joiner, join_failed) = finish_join(config, identity, peers).unzip();
    let serving = Serving {
        raft: raft.clone(),
        queue_api,
        schedule_api,
        limit_api,
        event_api,
        workflow_api,
        ops_api,
        raft_api,
        worker_api,
        sessions,
        tls: env.tls.clone(),
        auth,
        pool,
        join_failed,
        observing,
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
pub(super) fn start_pool(
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
pub(super) fn finish_join(
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
