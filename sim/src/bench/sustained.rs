//! The `sustained` scenario: latency under a steady load that lasts long enough to cross
//! several snapshots (issue 15, "no stalls"). It measures the cluster's end-to-end maximum
//! first (a closed-loop batch run, as the throughput scenario's phase b), then runs an open
//! loop of single-task submits at a fraction of it (`--load-fraction`, half by default) for
//! `--latency-s` seconds on the same cluster, whose finished tasks stay held for their result
//! TTL, so each snapshot of the run holds a growing table. What it reports: the open loop's
//! latency percentiles and maximum, and how many snapshots each node wrote meanwhile (its
//! snapshot file replaced, polled every 20 ms), so a stall can be laid against them; and the
//! CPU each node and the load generator spent in each phase, with the open loop's CPU per task
//! (issue 15 item 3: on a shared machine the figure that holds still; single calls are meant to
//! cost what a batch's share costs).

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
use super::report::Phase;
use super::{BenchOptions, Environment, Sample, cluster::Cluster};

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
    /// The clients gathered concurrent single calls (false: `--no-gather`).
    pub gather: bool,
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
    /// CPU and memory per phase.
    pub phases: SustainedPhases,
    /// CPU of all nodes together in the open loop, µs per task sent.
    pub node_cpu_us_per_task: f64,
    /// CPU of the load generator (the client library) in the open loop, µs per task sent.
    pub bench_cpu_us_per_task: f64,
    /// The same of the sizing run (batches), µs per task: what a single task's share of a batch
    /// costs, to lay the open loop's figure against.
    pub sizing_node_cpu_us_per_task: f64,
    #[serde(flatten)]
    pub env: Environment,
}

/// The phases of the sustained scenario.
#[derive(Clone, Debug, Serialize)]
pub struct SustainedPhases {
    pub sizing: Phase,
    pub sustained: Phase,
}

/// µs of CPU per task: all nodes' CPU of `phase` over `tasks`.
fn node_us_per_task(phase: &Phase, tasks: usize) -> f64 {
    let cpu: f64 = phase.nodes.iter().map(|n| n.cpu_s).sum();
    cpu * 1e6 / tasks.max(1) as f64
}

/// Runs the scenario (see the module doc).
/// `gather`: the clients gather concurrent single calls (`ClientBuilder::gather_calls`); the
/// open loop is one call per task from concurrent callers either way.
pub async fn run_sustained(opts: &BenchOptions, load_fraction: f64, gather: bool) -> Result<SustainedReport> {
    opts.validate()?;
    if !(load_fraction > 0.0 && load_fraction <= 1.0) {
        bail!("--load-fraction {load_fraction} must be in (0, 1]");
    }
    let env = Environment::detect(&opts.node_bin);
    let cluster = Cluster::start(opts.nodes, &opts.cluster(opts.workers)).await?;
    let mut clients = Vec::with_capacity(opts.clients);
    for _ in 0..opts.clients {
        clients.push(
            cluster
                .client_gathering(opts.batch, opts.in_flight, gather)
                .await?,
        );
    }
    load::warm_up(&clients).await?;

    info!(tasks = opts.tasks, "phase: sizing (closed loop, end to end)");
    let spec = Batches {
        tasks: opts.tasks,
        batch: opts.batch,
        in_flight: opts.in_flight,
        args: b"null",
    };
    let bar = opts.bar(opts.tasks as u64, "sizing");
    let before = Sample::take(&cluster)?;
    let deadline = Instant::now() + opts.phase_timeout;
    let (elapsed, sized) = tokio::time::timeout_at(
        deadline + Duration::from_secs(5),
        load::submit_and_wait(&clients, spec, deadline, &bar),
    )
    .await
    .context("sizing phase timed out")??;
    bar.finish_and_clear();
    let sized_at = Sample::take(&cluster)?;
    let sizing = Phase::new(elapsed, &before, &sized_at);
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
    let before = Sample::take(&cluster)?;
    let started = Instant::now();
    let run = tokio::time::timeout(
        opts.phase_timeout + task_timeout,
        load::open_loop(&clients, rate, opts.latency_s, task_timeout, None, &bar),
    )
    .await
    .context("sustained phase timed out")??;
    bar.finish_and_clear();
    let sustained = Phase::new(started.elapsed(), &before, &Sample::take(&cluster)?);
    let snapshots_per_node = watcher.stop().await;
    Ok(SustainedReport {
        scenario: "sustained",
        node_count: opts.nodes,
        workers_per_node: opts.workers,
        max_rate_per_s: max_rate,
        rate_per_s: rate,
        load_fraction,
        gather,
        duration_s: opts.latency_s,
        sent: run.sent,
        succeeded: run.outcomes.succeeded,
        failed: run.outcomes.not_succeeded(),
        latency_ms: percentiles(run.latencies),
        submit_ack_ms: percentiles(run.submit_acks),
        snapshots_per_node,
        max_start_lag_ms: run.max_start_lag.as_secs_f64() * 1e3,
        first_problem: run.outcomes.first_problem,
        node_cpu_us_per_task: node_us_per_task(&sustained, run.sent),
        bench_cpu_us_per_task: sustained.bench_cpu_s * 1e6 / run.sent.max(1) as f64,
        sizing_node_cpu_us_per_task: node_us_per_task(&sizing, opts.tasks),
        phases: SustainedPhases { sizing, sustained },
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
             open loop at {:.0}/s ({:.0} %) for {} s{}",
            self.node_count,
            self.workers_per_node,
            self.max_rate_per_s,
            self.rate_per_s,
            self.load_fraction * 100.0,
            self.duration_s,
            if self.gather { "" } else { ", calls not gathered" }
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
        let _ = writeln!(
            s,
            "cpu         nodes {:.1} µs/task in the open loop ({:.1} in the batched sizing run), \
             load generator {:.1} µs/task",
            self.node_cpu_us_per_task, self.sizing_node_cpu_us_per_task, self.bench_cpu_us_per_task
        );
        if let Some(p) = &self.first_problem {
            let _ = writeln!(s, "first problem: {p}");
        }
        s
    }
}
