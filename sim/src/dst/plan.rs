//! [`Plan`]: everything a run does, drawn from its seed before it starts: cluster size, Raft
//! timing, disk and network latency, the workload, and the fault mix.

use std::time::Duration;

use rand::RngExt;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde::Serialize;

/// Kinds of fault a run may inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// Crash a node (losing unsynced writes) and restart it later.
    Crash,
    /// Cut the cluster in two (symmetric), often isolating the leader.
    Partition,
    /// Cut one direction of some links only.
    AsymmetricPartition,
    /// Drop messages at random on some links for a while (a TCP connection then stalls).
    MessageLoss,
    /// Slow links: long and varied latency, so messages on different connections reorder.
    Delay,
    /// Hold a link's messages, then release them in a burst.
    Hold,
    /// Make a node's disk slow to sync.
    SlowDisk,
    /// Jump a node's wall clock forward or back.
    ClockJump,
    /// Remove a node from the cluster and bring a fresh one in its place.
    Replace,
}

impl FaultKind {
    /// Their command-line names, comma-separated (as `--faults` takes them).
    pub fn names(kinds: &[FaultKind]) -> String {
        use clap::ValueEnum;
        let names: Vec<String> = kinds
            .iter()
            .filter_map(|k| k.to_possible_value().map(|v| v.get_name().to_owned()))
            .collect();
        names.join(",")
    }

    pub const ALL: [FaultKind; 9] = [
        FaultKind::Crash,
        FaultKind::Partition,
        FaultKind::AsymmetricPartition,
        FaultKind::MessageLoss,
        FaultKind::Delay,
        FaultKind::Hold,
        FaultKind::SlowDisk,
        FaultKind::ClockJump,
        FaultKind::Replace,
    ];
}

/// What one seed decides.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub seed: u64,
    pub nodes: usize,
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    pub lease_ms: u64,
    pub snapshot_every_entries: u64,
    pub workers_per_node: usize,
    pub disk_sync_us: u64,
    pub net_min_latency_ms: u64,
    pub net_max_latency_ms: u64,
    /// Client hosts, each submitting and checking its own tasks.
    pub clients: usize,
    /// Submits per client during the faulty phase (each a batch of 1..=`max_batch` tasks).
    pub submits_per_client: usize,
    pub max_batch: usize,
    /// Longest a task's handler runs (simulated time).
    pub max_task_ms: u64,
    /// Share of tasks that fail once before succeeding, and of those that always fail.
    pub flaky_share: f64,
    pub failing_share: f64,
    /// Faults injected in this run, and how often one starts.
    pub faults: Vec<FaultKind>,
    pub fault_every_ms: (u64, u64),
    /// Length of the faulty phase; the healed phase follows, bounded by `heal_limit`.
    pub faulty_phase: Duration,
    pub heal_limit: Duration,
}

impl Plan {
    /// The plan of `seed`. `faults` narrows the fault mix (empty: drawn from the seed).
    pub fn from_seed(seed: u64, faults: &[FaultKind]) -> Plan {
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x5eed_f1a7_0000_0000);
        let nodes = match rng.random_range(0..10) {
            0..2 => 1,
            2..8 => 3,
            _ => 5,
        };
        let heartbeat_ms = rng.random_range(30..=100);
        let election_min_ms = heartbeat_ms * rng.random_range(3..=6);
        let election_max_ms = election_min_ms * 2;
        // Drawn even when `faults` overrides them, so a narrower fault mix keeps every other
        // choice of the seed (what shrinking a failing seed relies on).
        let drawn: Vec<FaultKind> = FaultKind::ALL
            .into_iter()
            .filter(|_| rng.random_bool(0.6))
            .collect();
        let mut kinds = if faults.is_empty() { drawn } else { faults.to_vec() };
        if nodes == 1 {
            // One node has no network faults worth the name, and nothing to replace it with.
            kinds.retain(|k| matches!(k, FaultKind::Crash | FaultKind::SlowDisk | FaultKind::ClockJump));
        }
        if kinds.is_empty() {
            kinds.push(FaultKind::Crash);
        }
        let clients = rng.random_range(1..=3);
        let submits_per_client = rng.random_range(10..=40);
        let max_batch = rng.random_range(1..=8);
        let workers_per_node = rng.random_range(1..=3);
        let faulty_phase = Duration::from_millis(rng.random_range(8_000..=20_000));
        // Keep the work within what the workers can do in the faulty phase, with room to spare
        // for faults: an overloaded cluster is not a broken one, and would fail the liveness
        // check for the wrong reason.
        let tasks = (clients * submits_per_client * (1 + max_batch)) as u64 / 2;
        let capacity_ms = (nodes * workers_per_node) as u64 * faulty_phase.as_millis() as u64;
        let max_task_ms = rng.random_range(0..=1_500).min(capacity_ms / tasks.max(1));
        Plan {
            seed,
            nodes,
            heartbeat_ms,
            election_min_ms,
            election_max_ms,
            lease_ms: rng.random_range(400..=2_000),
            snapshot_every_entries: rng.random_range(20..=400),
            workers_per_node,
            disk_sync_us: rng.random_range(100..=3_000),
            net_min_latency_ms: rng.random_range(0..=1),
            net_max_latency_ms: rng.random_range(2..=15),
            clients,
            submits_per_client,
            max_batch,
            max_task_ms,
            flaky_share: rng.random_range(0.0..0.2),
            failing_share: rng.random_range(0.0..0.05),
            faults: kinds,
            fault_every_ms: (rng.random_range(200..=800), rng.random_range(1_000..=3_000)),
            faulty_phase,
            heal_limit: Duration::from_secs(90),
        }
    }
}
