//! The `sustained` scenario: latency under a steady load that lasts long enough to cross
//! several snapshots (issue 15, "no stalls"). It measures the cluster's end-to-end maximum
//! first (a closed-loop batch run, as the throughput scenario's phase b), then runs an open
//! loop of single-task submits at a fraction of it (`--load-fraction`, half by default) for
//! `--latency-s` seconds on the same cluster, whose finished tasks stay held for their result
//! TTL, so each snapshot of the run holds a growing table. What it reports: the open loop's
//! latency percentiles and maximum, and how many snapshots each node wrote meanwhile (its
//! snapshot file replaced, polled every 20 ms), so a stall can be laid against them.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::fmt::Write as _;
use tracing::info;

use super::load::{self, Batches, Percentiles, percentiles};
use super::{BenchOptions, Environment, cluster::Cluster};

/// Figures of the sustained scenario.
#[derive(Clone, Debug, Serialize)]
pub struct SustainedReport {
    pub scenario: &'static str,
    pub node_count: usize,
    pub workers_per_node: usize,
    /// End to end, tasks/s, of the closed-loop run that sized the load.
    pub max_rate_per_s: f64,
    /// The open loop's rate: `load_fraction` of the maximum.
    pub rate_per_s: f64,
    pub load_fraction: f64,
    pub duration_s: f64,
    pub sent: usize,
    pub succeeded: usize,
    pub failed: usize,
    /// Submit start → result.
    pub latency_ms: Option<Percentiles>,
    /// Submit start → submit acknowledged (committed).
    pub submit_ack_ms: Option<Percentiles>,
    /// Snapshots each node wrote during the open loop.
    pub snapshots_per_node: Vec<usize>,
    /// How far the generator fell behind its schedule at worst (coordinated omission check).
    pub max_start_lag_ms: f64,
    pub first_problem: Option<String>,
    #[serde(flatten)]
    pub env: Environment,
}

/// Runs the scenario (see the module doc).
pub async fn run_sustained(opts: &BenchOptions, load_fraction: f64) -> Result<SustainedReport> {
    opts.validate()?;
    if !(load_fraction > 0.0 && load_fraction <= 1.0) {
        bail!("--load-fraction {load_fraction} must be in (0, 1]");
    }
    let env = Environment::detect(&opts.node_bin);
    let cluster = Cluster::start(opts.nodes, &opts.cluster(opts.workers)).await?;
    let clients = opts.clients(&cluster).await?;

    info!(tasks = opts.tasks, "phase: sizing (closed loop, end to end)");
    let spec = Batches {
        tasks: opts.tasks,
        batch: opts.batch,
        in_flight: opts.in_flight,
        args: b"null",
    };
    let bar = opts.bar(opts.tasks as u64, "sizing");
    let deadline = Instant::now() + opts.phase_timeout;
    let (elapsed, sized) = tokio::time::timeout_at(
        deadline + Duration::from_secs(5),
        load::submit_and_wait(&clients, spec, deadline, &bar),
    )
    .await
    .context("sizing phase timed out")??;
    bar.finish_and_clear();
    if sized.not_succeeded() > 0 {
        bail!(
            "sizing run: {} of {} tasks did not succeed ({:?})",
            sized.not_succeeded(),
            opts.tasks,
            sized.first_problem
        );
    }
    let max_rate = opts.tasks as f64 / elapsed.as_secs_f64();
    let rate = (max_rate * load_fraction).max(1.0);

    info!(rate, secs = opts.latency_s, "phase: sustained open loop");
    let watcher = SnapshotWatcher::start(&cluster);
    let n = (rate * opts.latency_s).round() as u64;
    let bar = opts.bar(n, "sustained");
    let task_timeout = Duration::from_secs(60).min(opts.phase_timeout);
    let run = tokio::time::timeout(
        opts.phase_timeout + task_timeout,
        load::open_loop(&clients, rate, opts.latency_s, task_timeout, None, &bar),
    )
    .await
    .context("sustained phase timed out")??;
    bar.finish_and_clear();
    let snapshots_per_node = watcher.stop().await;
    Ok(SustainedReport {
        scenario: "sustained",
        node_count: opts.nodes,
        workers_per_node: opts.workers,
        max_rate_per_s: max_rate,
        rate_per_s: rate,
        load_fraction,
        duration_s: opts.latency_s,
        sent: run.sent,
        succeeded: run.outcomes.succeeded,
        failed: run.outcomes.not_succeeded(),
        latency_ms: percentiles(run.latencies),
        submit_ack_ms: percentiles(run.submit_acks),
        snapshots_per_node,
        max_start_lag_ms: run.max_start_lag.as_secs_f64() * 1e3,
        first_problem: run.outcomes.first_problem,
        env,
    })
}

/// Counts, per node, the times its snapshot file was replaced (its modification time
/// changed), polling every 20 ms until stopped.
struct SnapshotWatcher {
    stop: Arc<AtomicBool>,
    counts: Arc<Vec<AtomicUsize>>,
    task: tokio::task::JoinHandle<()>,
}

impl SnapshotWatcher {
    fn start(cluster: &Cluster) -> SnapshotWatcher {
        let files: Vec<PathBuf> = cluster
            .data_dirs()
            .into_iter()
            .map(|d| d.join("snapshot").join("current.snap"))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(files.iter().map(|_| AtomicUsize::new(0)).collect::<Vec<_>>());
        let task = tokio::spawn({
            let (stop, counts) = (stop.clone(), counts.clone());
            async move {
                let modified = |f: &PathBuf| -> Option<SystemTime> {
                    std::fs::metadata(f).and_then(|m| m.modified()).ok()
                };
                let mut last: Vec<Option<SystemTime>> = files.iter().map(modified).collect();
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    for (i, f) in files.iter().enumerate() {
                        let now = modified(f);
                        if now != last[i] {
                            counts[i].fetch_add(1, Ordering::Relaxed);
                            last[i] = now;
                        }
                    }
                }
            }
        });
        SnapshotWatcher { stop, counts, task }
    }

    async fn stop(self) -> Vec<usize> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect()
    }
}

impl SustainedReport {
    pub fn human(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "sim bench --scenario sustained: {} node(s), {} workers each; max {:.0} tasks/s, \
             open loop at {:.0}/s ({:.0} %) for {} s",
            self.node_count,
            self.workers_per_node,
            self.max_rate_per_s,
            self.rate_per_s,
            self.load_fraction * 100.0,
            self.duration_s
        );
        let _ = writeln!(s, "  {}", self.env.describe());
        let line = load::percentiles_line;
        let _ = writeln!(s, "latency     {}", line(&self.latency_ms));
        let _ = writeln!(s, "submit ack  {}", line(&self.submit_ack_ms));
        let _ = writeln!(
            s,
            "snapshots   {:?} per node; {} of {} succeeded, {} failed; generator lag max {:.1} ms",
            self.snapshots_per_node, self.succeeded, self.sent, self.failed, self.max_start_lag_ms
        );
        if let Some(p) = &self.first_problem {
            let _ = writeln!(s, "first problem: {p}");
        }
        s
    }
}
