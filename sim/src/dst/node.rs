//! A simulated node: the real `flotilla_node::server::run_with` on a turmoil host, with a
//! simulated disk, clock, network and the simulator's task handler.
//!
//! A [`NodeSlot`] is what outlives the host's crashes: its disk, its data directory (identity
//! and snapshot files, written synchronously, so their timing is the simulator's), its clock
//! skew, and the Raft handle and replica of its current incarnation, which the checkers read.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicI64;
use std::sync::atomic::Ordering;
use std::time::Duration;

use flotilla_node::clock::Clock;
use flotilla_node::config::Config;
use flotilla_node::raft::Raft;
use flotilla_node::raft::SimDisk;
use flotilla_node::replica::Replica;
use flotilla_node::server::LogStorage;
use flotilla_node::server::NodeEnv;
use flotilla_node::worker::TaskError;
use flotilla_node::worker::TaskRegistry;
use serde::Deserialize;
use serde::Serialize;

use super::net;
use super::plan::Plan;
use super::workload::Shared;

/// Wall-clock time of the simulation's start (any fixed value: runs must not depend on the
/// real date).
pub const EPOCH_MS: u64 = 1_800_000_000_000;

/// The admin token of a run, derived from its seed (so the token table's hashes, and with them
/// the replicas' state, are the same every time the seed is replayed). Every node reads it from
/// [`admin_token_file`] when the cluster has no admin token, joins with it, and the clients
/// present it: the simulator runs with authentication on, as a node off loopback must.
pub fn admin_token(seed: u64) -> String {
    format!(
        "flt_sim_{seed:016x}{:016x}",
        seed.rotate_left(29) ^ 0x9e37_79b9_7f4a_7c15
    )
}

/// Where a run keeps its admin token: beside the nodes' data directories (a data directory
/// must be empty before its node founds or joins).
pub fn admin_token_file(run_dir: &std::path::Path) -> PathBuf {
    run_dir.join("admin.token")
}

/// The one task the simulated workers run.
pub const TASK: &str = "sim";

/// Arguments of a [`TASK`] task.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskArgs {
    /// Unique per submitted task (client and sequence number).
    pub tag: String,
    /// How long the handler runs, in simulated ms.
    pub ms: u64,
    /// 0: succeeds; 1: fails its first attempt (retryable); 2: always fails.
    pub fail: u8,
}

/// A [`TASK`] task's result: which attempt produced it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskResult {
    pub tag: String,
    pub attempt: u32,
}

/// A node's simulated wall clock: the simulation's elapsed time plus a skew the fault
/// injector moves (clock jumps).
#[derive(Clone, Debug, Default)]
pub struct SimClock {
    pub skew_ms: Arc<AtomicI64>,
}

impl Clock for SimClock {
    fn now_ms(&self) -> u64 {
        let elapsed = turmoil::sim_elapsed().unwrap_or_default().as_millis() as i64;
        let skew = self.skew_ms.load(Ordering::Relaxed);
        (EPOCH_MS as i64 + elapsed + skew).max(0) as u64
    }
}

/// The current incarnation of a node, as the checkers see it.
#[derive(Clone)]
pub struct Running {
    pub raft: Raft,
    pub replica: Arc<Replica>,
}

impl Running {
    /// The node's current Raft metrics (role, term, log and applied indexes).
    pub fn metrics(&self) -> openraft::RaftMetrics<flotilla_node::types::TypeConfig> {
        use openraft::async_runtime::WatchReceiver;
        self.raft.metrics().borrow_watched().clone()
    }
}

/// One node of the simulated cluster; survives the crashes of its host.
pub struct NodeSlot {
    /// Host name, also the address prefix (`n1:7000`).
    pub name: String,
    pub disk: Arc<SimDisk>,
    pub dir: PathBuf,
    pub join: Vec<String>,
    pub clock: SimClock,
    pub running: Arc<Mutex<Option<Running>>>,
    /// Whether the host is up (the driver's view: crashed hosts are down until restarted).
    pub up: bool,
    /// Removed from the cluster and crashed for good.
    pub retired: bool,
    /// The node process stopped with an error (e.g. a join that found no peer): like a service
    /// manager, the driver restarts it a little later.
    pub exited: Arc<AtomicBool>,
}

impl NodeSlot {
    pub fn new(name: String, dir: PathBuf, join: Vec<String>, plan: &Plan) -> NodeSlot {
        NodeSlot {
            name,
            disk: SimDisk::new(Duration::from_micros(plan.disk_sync_us)),
            dir,
            join,
            clock: SimClock::default(),
            running: Arc::default(),
            up: true,
            retired: false,
            exited: Arc::default(),
        }
    }

    pub fn addr(&self) -> String {
        format!("{}:{}", self.name, net::PORT)
    }

    /// The Raft handle and replica of the running incarnation, if up.
    pub fn running(&self) -> Option<Running> {
        if !self.up {
            return None;
        }
        self.running.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The host's software: what turmoil runs at start and after each restart.
    pub fn host(
        &self,
        plan: &Plan,
        shared: Arc<Shared>,
    ) -> impl Fn() -> futures::future::LocalBoxFuture<'static, turmoil::Result> + 'static {
        let config = node_config(plan, self);
        let exited = self.exited.clone();
        let name = self.name.clone();
        let disk = self.disk.clone();
        let clock = self.clock.clone();
        let running = self.running.clone();
        move || {
            let config = config.clone();
            let running = running.clone();
            let env = NodeEnv {
                clock: Arc::new(clock.clone()),
                connector: Arc::new(net::SimConnector),
                storage: LogStorage::Simulated(disk.clone()),
                local_workers: true,
                observer: Some(Arc::new(move |raft: &Raft, replica: &Arc<Replica>| {
                    *running.lock().unwrap_or_else(|e| e.into_inner()) = Some(Running {
                        raft: raft.clone(),
                        replica: replica.clone(),
                    });
                })),
                // The simulated network is plaintext (turmoil streams); TLS is tested on loopback.
                tls: None,
            };
            let (exited, name, shared) = (exited.clone(), name.clone(), shared.clone());
            Box::pin(async move {
                let incoming = net::incoming().await?;
                let result = flotilla_node::server::run_with(
                    config,
                    registry(shared.clone()),
                    env,
                    incoming,
                    std::future::pending(),
                )
                .await;
                if let Err(e) = result {
                    shared.event(format!("{name} exited: {e}"));
                    exited.store(true, Ordering::SeqCst);
                }
                Ok(())
            })
        }
    }
}

fn node_config(plan: &Plan, slot: &NodeSlot) -> Config {
    let run_dir = slot.dir.parent().unwrap_or(&slot.dir);
    Config {
        token: Some(flotilla_node::secret::Secret(admin_token(plan.seed))),
        admin_token_file: Some(admin_token_file(run_dir)),
        listen: std::net::SocketAddr::from(([0, 0, 0, 0], net::PORT)),
        advertise: Some(slot.addr()),
        data_dir: slot.dir.clone(),
        join: slot.join.clone(),
        workers: Some(plan.workers_per_node),
        lease_ms: plan.lease_ms,
        heartbeat_interval_ms: plan.heartbeat_ms,
        election_timeout_ms_min: plan.election_min_ms,
        election_timeout_ms_max: plan.election_max_ms,
        snapshot_every_entries: plan.snapshot_every_entries,
        default_retry_backoff_ms: 100,
        join_timeout_ms: 60_000,
        drain_grace_ms: 1_000,
        ..Config::default()
    }
}

/// The simulated workers' only task: record its start, sleep, maybe fail, answer with the
/// attempt that ran.
pub fn registry(shared: Arc<Shared>) -> TaskRegistry {
    let mut registry = TaskRegistry::new();
    registry.register(TASK, move |args: TaskArgs| {
        let shared = shared.clone();
        async move { run_task(&shared, args).await }
    });
    registry
}

async fn run_task(shared: &Shared, args: TaskArgs) -> Result<TaskResult, TaskError> {
    let attempt = flotilla_node::worker::current_run().map_or(0, |r| r.attempt);
    shared.started(&args.tag, attempt);
    tokio::time::sleep(Duration::from_millis(args.ms)).await;
    match args.fail {
        2 => Err(TaskError::fatal("this task always fails")),
        1 if attempt <= 1 => Err(TaskError::new("first attempt fails")),
        _ => Ok(TaskResult {
            tag: args.tag,
            attempt,
        }),
    }
}
