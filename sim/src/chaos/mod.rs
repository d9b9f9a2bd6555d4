//! `sim chaos`: a real cluster of `node` processes on loopback, clients submitting and waiting
//! for tasks, and a seeded fault loop that SIGKILLs and restarts nodes or freezes them with
//! SIGSTOP/SIGCONT. Afterwards every node runs again (the healed phase), the clients read every
//! acknowledged task, and a client-side [`History`] judges what they were told.
//!
//! With `--net` ([`net`]) each node runs in its own network namespace behind a switch that
//! delays frames between zones (a WAN) and injects network faults too: partitions of a node
//! or a zone, one-way cuts, loss, delay and jitter. Either way, a fault that takes the leader
//! away starts a probe that measures the failover ([`failovers`]).
//!
//! Phases:
//! 1. **Faulty** (`duration`): [`workload`] clients submit small batches of `noop`, `echo` and
//!    short `sleep` tasks (explicit idempotency keys, retries on) and wait for results, while
//!    [`faults`] injects one fault at a time into at most a minority of nodes. Availability is
//!    the longest stretch in this phase with no submit acknowledged and no task seen final.
//! 2. **Healed** (bounded by `heal_timeout`): every node is running and serving; each client
//!    submits its last unacknowledged batch again (same keys), then everything acknowledged is
//!    waited for, and finally every acknowledged task is read once more (a linearizable get).
//!
//! The seed fixes every random choice: fault kinds, victims, delays, the task mix and the
//! idempotency keys. Real processes do not replay their timing, so a rerun with the same seed
//! makes the same choices but need not hit the same interleaving.

pub mod failovers;
pub mod faults;
pub mod net;
pub mod report;
pub mod workload;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flotilla_client::{Client, ClientError, RetryPolicy};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::bench::cluster::{Cluster, ClusterOptions};
use crate::bench::report::Environment;
use crate::history::{Availability, History};
pub use faults::{FaultEvent, FaultKind};
use net::{Net, NetOptions, NetReport};
pub use report::ChaosReport;
use workload::{ClientState, Shared};

/// A chaos run that could not be carried out (as opposed to one that found a violation, which
/// is a [`ChaosReport`] with violations).
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    /// The options cannot make a meaningful run.
    #[error("invalid options: {0}")]
    Options(String),
    /// Starting, signalling or restarting the node processes failed.
    #[error("cluster harness: {0:#}")]
    Cluster(anyhow::Error),
    /// A client could not be built.
    #[error("client: {0}")]
    Client(#[from] ClientError),
    /// A client task panicked.
    #[error("client task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// The network of `--net` could not be made (not root, no `ip`, no namespaces).
    #[error("network namespaces: {0:#}")]
    Net(anyhow::Error),
}

/// Options of a chaos run; [`ChaosOptions::new`] gives the defaults of `sim chaos`.
#[derive(Clone, Debug)]
pub struct ChaosOptions {
    /// The `node` executable.
    pub node_bin: PathBuf,
    /// Nodes in the cluster (at least 3, so a majority survives a fault).
    pub nodes: usize,
    /// Length of the faulty phase.
    pub duration: Duration,
    /// The seed every random choice is derived from.
    pub seed: u64,
    /// Concurrent clients, each with its own connections.
    pub clients: usize,
    /// Workers per node.
    pub workers: usize,
    /// Lease of a task on a worker. Shorter than the longest freeze, so a frozen node's leases
    /// expire and its tasks run elsewhere while it is stopped, and its late completions must be
    /// fenced off when it wakes up.
    pub lease_ms: u64,
    /// Longest a fault lasts before the node is restarted or thawed.
    pub max_fault: Duration,
    /// Upper bound on the healed phase's wait for every acknowledged task to be final.
    pub heal_timeout: Duration,
    /// How long a node may take to serve after a start, restart or thaw.
    pub ready_timeout: Duration,
    /// Run on a network of namespaces with WAN delay and network faults.
    pub net: Option<NetOptions>,
    /// The fault kinds dealt (each once per round, in a seeded order).
    pub faults: Vec<FaultKind>,
    /// Further flags for every node (e.g. election timeouts).
    pub node_args: Vec<String>,
}

impl ChaosOptions {
    /// The defaults of `sim chaos` with the given `node` binary and seed.
    pub fn new(node_bin: PathBuf, seed: u64) -> ChaosOptions {
        ChaosOptions {
            node_bin,
            nodes: 3,
            duration: Duration::from_secs(30),
            seed,
            clients: 3,
            workers: 2,
            lease_ms: 2000,
            max_fault: Duration::from_secs(3),
            heal_timeout: Duration::from_secs(60),
            ready_timeout: Duration::from_secs(30),
            net: None,
            faults: FaultKind::PROCESS.to_vec(),
            node_args: Vec::new(),
        }
    }

    /// Switches to `--net` with `net`, dealing every fault kind.
    pub fn on_network(mut self, net: NetOptions) -> ChaosOptions {
        self.net = Some(net);
        self.faults = FaultKind::ALL.to_vec();
        self
    }

    fn validate(&self) -> Result<(), ChaosError> {
        let bad = |m: &str| Err(ChaosError::Options(m.to_owned()));
        if self.nodes < 3 {
            return bad("--nodes must be at least 3 (a majority must survive a fault)");
        }
        if self.duration.is_zero() {
            return bad("--duration-s must be above 0");
        }
        if self.clients == 0 {
            return bad("--clients must be at least 1");
        }
        if self.workers == 0 {
            return bad("workers must be at least 1 (tasks must run)");
        }
        if self.faults.is_empty() || self.faults.contains(&FaultKind::Crash) {
            return bad("--faults must name at least one fault kind");
        }
        let Some(net) = &self.net else {
            if let Some(k) = self.faults.iter().find(|k| k.is_network()) {
                return Err(ChaosError::Options(format!("--faults {} needs --net", k.name())));
            }
            return Ok(());
        };
        if self.nodes > net::topology::MAX_NODES {
            return Err(ChaosError::Options(format!(
                "--net takes at most {} nodes",
                net::topology::MAX_NODES
            )));
        }
        if net.zones == 0 || net.wan_rtt_ms.is_empty() {
            return bad("--zones must be at least 1 and --wan-rtt-ms a range like 30..80");
        }
        // The smallest zone must fit in the faulty minority, or no zone can be cut off.
        let smallest_zone = self.nodes / net.zones.min(self.nodes);
        if self.faults.contains(&FaultKind::ZonePartition) && smallest_zone > self.max_faulty() {
            return Err(ChaosError::Options(format!(
                "--faults zone-partition: the smallest zone has {smallest_zone} nodes, more than \
                 the {} a majority can lose; use more zones",
                self.max_faulty()
            )));
        }
        Ok(())
    }

    /// The `sim chaos` flags that make this run's choices again (the `node` binary aside).
    pub fn rerun_args(&self) -> Vec<String> {
        [
            ("--nodes", self.nodes.to_string()),
            ("--duration-s", self.duration.as_secs_f64().to_string()),
            ("--clients", self.clients.to_string()),
            ("--seed", self.seed.to_string()),
        ]
        .into_iter()
        .chain(self.net.iter().flat_map(|n| {
            [
                ("--zones", n.zones.to_string()),
                (
                    "--wan-rtt-ms",
                    format!("{}..{}", n.wan_rtt_ms.start(), n.wan_rtt_ms.end()),
                ),
            ]
        }))
        .chain((self.faults != self.default_faults()).then(|| {
            let names: Vec<String> = self.faults.iter().map(|k| k.name()).collect();
            ("--faults", names.join(","))
        }))
        // Quoted: the rerun line is copied into a shell.
        .chain(
            (!self.node_args.is_empty()).then(|| ("--node-args", format!("'{}'", self.node_args.join(" ")))),
        )
        .flat_map(|(flag, value)| [flag.to_owned(), value])
        .chain(self.net.is_some().then(|| "--net".to_owned()))
        .collect()
    }

    /// The fault kinds dealt unless `--faults` says otherwise.
    fn default_faults(&self) -> Vec<FaultKind> {
        match self.net {
            Some(_) => FaultKind::ALL.to_vec(),
            None => FaultKind::PROCESS.to_vec(),
        }
    }

    /// The extra node flags: `node_args`, and on a WAN the Raft timeouts its longest round
    /// trip needs ([`net::RaftTimeouts::for_rtt`]) unless `node_args` sets any of them.
    pub fn effective_node_args(&self) -> Vec<String> {
        let mut args = self.node_args.clone();
        let sets_timeouts = args
            .iter()
            .any(|a| a.starts_with("--heartbeat-interval-ms") || a.starts_with("--election-timeout-ms"));
        if let Some(net) = &self.net
            && !sets_timeouts
        {
            args.extend(net::RaftTimeouts::for_rtt(*net.wan_rtt_ms.end()).node_args());
        }
        args
    }

    /// Most nodes faulty at once: a minority.
    pub fn max_faulty(&self) -> usize {
        (self.nodes - 1) / 2
    }
}

/// A seed for stream `n` of a run: splitmix64, so streams of nearby seeds do not overlap.
pub fn derive_seed(seed: u64, n: u64) -> u64 {
    let mut z = seed.wrapping_add(n.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Runs the phases (see the module docs) and judges the history; with `opts.net`, on the
/// network of namespaces ([`net::run`]).
pub async fn run(opts: &ChaosOptions) -> Result<ChaosReport, ChaosError> {
    opts.validate()?;
    if let Some(net) = &opts.net {
        return net::run(opts, net).await;
    }
    let began = Instant::now();
    info!(seed = opts.seed, nodes = opts.nodes, "--- starting the cluster");
    let cluster = Cluster::start(opts.nodes, &cluster_options(opts))
        .await
        .map_err(ChaosError::Cluster)?;
    exercise(opts, cluster, None, began).await
}

/// How the nodes of a run start.
fn cluster_options(opts: &ChaosOptions) -> ClusterOptions {
    let mut node_args = vec!["--lease-ms".to_owned(), opts.lease_ms.to_string()];
    node_args.extend(opts.effective_node_args());
    ClusterOptions {
        node_bin: opts.node_bin.clone(),
        workers: opts.workers,
        ready_timeout: opts.ready_timeout,
        node_args,
    }
}

/// The faulty and healed phases on a running cluster, and the verdict.
async fn exercise(
    opts: &ChaosOptions,
    mut cluster: Cluster,
    net: Option<&Net>,
    began: Instant,
) -> Result<ChaosReport, ChaosError> {
    let env = Environment::detect(&opts.node_bin);
    info!(duration_s = opts.duration.as_secs_f64(), "--- faulty phase");
    let start = Instant::now();
    let until = start + opts.duration;
    let shared = Arc::new(Mutex::new(Shared {
        start,
        history: History::new(),
        availability: Availability::new(start),
        counters: workload::Counters::default(),
        anomalies: Vec::new(),
    }));
    let mut clients = JoinSet::new();
    for i in 0..opts.clients {
        let client = workload::faulty_phase_client(&cluster, derive_seed(opts.seed, 100 + i as u64)).await?;
        let state = ClientState::new(i, opts.seed, derive_seed(opts.seed, 200 + i as u64));
        clients.spawn(workload::run_client(client, state, shared.clone(), until));
    }
    let mut fault_rng = StdRng::seed_from_u64(derive_seed(opts.seed, 0));
    let target = faults::Target {
        cluster: &mut cluster,
        net,
    };
    let faults = faults::run(target, &mut fault_rng, opts, start, until).await;
    let faulty_end = Instant::now();
    let mut states = Vec::with_capacity(opts.clients);
    while let Some(joined) = clients.join_next().await {
        states.push(joined?);
    }
    let faults = faults.map_err(ChaosError::Cluster)?;
    let max_unavailable = lock(&shared).availability.longest_until(until.min(faulty_end));

    info!("--- healed phase");
    let heal_started = Instant::now();
    let mut violations = faults.violations.clone();
    if let Err(e) = cluster.wait_ready(opts.ready_timeout).await {
        warn!(error = %format!("{e:#}"), "cluster did not heal");
        violations.push(format!("the cluster did not serve again after the faults: {e:#}"));
    }
    let client = healed_phase_client(&cluster).await?;
    violations.extend(workload::heal(&client, states, &shared, opts.heal_timeout).await);
    let heal_s = heal_started.elapsed().as_secs_f64();

    let shared = lock(&shared);
    let verdict = shared.history.verdict();
    violations.extend(verdict.violations());
    // The evidence outlives the run when something was wrong.
    let kept_dir = (!violations.is_empty()).then(|| cluster.keep_dir().display().to_string());
    if let Some(dir) = &kept_dir {
        warn!(
            seed = opts.seed,
            violations = violations.len(),
            dir,
            "chaos found violations"
        );
    }
    let mut report = ChaosReport::new(
        opts,
        verdict,
        &faults,
        &shared.counters,
        &shared.anomalies,
        max_unavailable,
        heal_s,
        began.elapsed().as_secs_f64(),
        violations,
        env,
    );
    report.kept_dir = kept_dir;
    report.net = net.map(|n| NetReport {
        topology: n.topology.clone(),
        frames: n.counts(),
    });
    Ok(report)
}

/// A client for the healed phase: every node serves again, so it may be patient.
async fn healed_phase_client(cluster: &Cluster) -> Result<Client, ChaosError> {
    Ok(cluster
        .client_builder(cluster.addrs())
        .map_err(ChaosError::Cluster)?
        .request_timeout(Duration::from_secs(10))
        .retry_policy(RetryPolicy {
            max_elapsed: Duration::from_secs(30),
            ..RetryPolicy::default()
        })
        .build()
        .await?)
}

/// The shared state's lock, poisoned or not: a client that panicked fails the run through its
/// join before the state is read for the verdict.
fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_seeds_differ_per_stream_and_are_stable() {
        assert_ne!(derive_seed(1, 0), derive_seed(1, 1));
        assert_ne!(derive_seed(1, 0), derive_seed(2, 0));
        assert_eq!(derive_seed(42, 7), derive_seed(42, 7));
    }

    #[test]
    fn options_are_validated() {
        let mut o = ChaosOptions::new(PathBuf::from("node"), 1);
        assert!(o.validate().is_ok());
        assert_eq!(o.max_faulty(), 1);
        o.nodes = 5;
        assert_eq!(o.max_faulty(), 2);
        o.nodes = 2;
        let e = o.validate().unwrap_err().to_string();
        assert!(e.contains("--nodes must be at least 3"), "{e}");
        o.nodes = 3;
        o.duration = Duration::from_millis(2500);
        assert_eq!(
            o.rerun_args().join(" "),
            "--nodes 3 --duration-s 2.5 --clients 3 --seed 1"
        );
        o.duration = Duration::ZERO;
        assert!(o.validate().is_err());
    }

    #[test]
    fn network_options_are_validated_and_rerun() {
        let mut o = ChaosOptions::new(PathBuf::from("node"), 1);
        o.faults = vec![FaultKind::Kill, FaultKind::Partition];
        let e = o.validate().unwrap_err().to_string();
        assert!(e.contains("--faults partition needs --net"), "{e}");
        let mut o = ChaosOptions::new(PathBuf::from("node"), 1).on_network(NetOptions::default());
        assert!(o.validate().is_ok());
        assert_eq!(
            o.rerun_args().join(" "),
            "--nodes 3 --duration-s 30 --clients 3 --seed 1 --zones 3 --wan-rtt-ms 30..80 --net"
        );
        // On a WAN the nodes get timeouts for its longest round trip, unless told otherwise.
        assert!(
            o.effective_node_args()
                .join(" ")
                .contains("--heartbeat-interval-ms 160")
        );
        o.node_args = vec!["--election-timeout-ms-min".into(), "900".into()];
        assert_eq!(o.effective_node_args(), o.node_args);
        o.faults = vec![FaultKind::ZonePartition, FaultKind::Loss];
        assert!(o.rerun_args().join(" ").contains("--faults zone-partition,loss"));
        assert!(
            o.rerun_args()
                .join(" ")
                .contains("--node-args '--election-timeout-ms-min 900'")
        );
        // 4 nodes in 2 zones: a zone of 2 is more than the 1 node a majority can lose.
        o.nodes = 4;
        o.net = Some(NetOptions {
            zones: 2,
            wan_rtt_ms: 30..=80,
        });
        let e = o.validate().unwrap_err().to_string();
        assert!(e.contains("smallest zone has 2 nodes"), "{e}");
        o.faults = vec![FaultKind::Partition];
        assert!(o.validate().is_ok());
    }
}
