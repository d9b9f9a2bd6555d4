//! The `mix` scenario: short tasks with long ones among them, open loop, on a cluster with
//! workers. What it shows is the latency of the short tasks: a pool that holds tasks ahead of
//! its free workers and runs a long task may keep short ones waiting behind it while other
//! pools could run them at once (Celery's prefetch trap). Compare `--prefetch 0`, a fixed
//! count, and `auto` (the default: no lease-ahead while long runs hold the buffer up).

use std::time::Duration;

use anyhow::Result;
use serde::Serialize;
use std::fmt::Write as _;
use tracing::info;

use super::load::{self, LongTasks, Percentiles, percentiles};
use super::{BenchOptions, Environment, cluster::Cluster};

/// Figures of the mix scenario.
#[derive(Clone, Debug, Serialize)]
pub struct MixReport {
    pub scenario: &'static str,
    pub node_count: usize,
    pub workers_per_node: usize,
    /// The nodes' `--prefetch` (none: their default).
    pub prefetch: Option<String>,
    pub rate_per_s: f64,
    pub duration_s: f64,
    pub long: LongTasks,
    pub sent: usize,
    pub succeeded: usize,
    pub failed: usize,
    /// Submit start → result, of the short (noop) tasks.
    pub short_ms: Option<Percentiles>,
    /// The same, of the long ones.
    pub long_ms: Option<Percentiles>,
    /// Short tasks that took longer than half a long task: held up behind one.
    pub short_held_up: usize,
    pub first_problem: Option<String>,
    #[serde(flatten)]
    pub env: Environment,
}

/// Runs the mix on a fresh cluster (see the module doc).
pub async fn run_mix(opts: &BenchOptions, long: LongTasks) -> Result<MixReport> {
    let env = Environment::detect(&opts.node_bin);
    info!(
        rate = opts.latency_rate,
        secs = opts.latency_s,
        ?long,
        "phase: mix"
    );
    let cluster = Cluster::start(opts.nodes, &opts.cluster(opts.workers)).await?;
    let clients = opts.clients(&cluster).await?;
    let n = (opts.latency_rate * opts.latency_s).round() as u64;
    let bar = opts.bar(n, "mix");
    let task_timeout = Duration::from_secs(60).min(opts.phase_timeout);
    let run = tokio::time::timeout(
        opts.phase_timeout + task_timeout,
        load::open_loop(
            &clients,
            opts.latency_rate,
            opts.latency_s,
            task_timeout,
            Some(long),
            &bar,
        ),
    )
    .await??;
    bar.finish_and_clear();
    let held_up = Duration::from_millis(long.ms / 2);
    Ok(MixReport {
        scenario: "mix",
        node_count: opts.nodes,
        workers_per_node: opts.workers,
        prefetch: opts.prefetch.clone(),
        rate_per_s: opts.latency_rate,
        duration_s: opts.latency_s,
        long,
        sent: run.sent,
        succeeded: run.outcomes.succeeded,
        failed: run.outcomes.not_succeeded(),
        short_held_up: run.latencies.iter().filter(|l| **l > held_up).count(),
        short_ms: percentiles(run.latencies),
        long_ms: percentiles(run.long_latencies),
        first_problem: run.outcomes.first_problem,
        env,
    })
}

impl MixReport {
    pub fn human(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "sim bench --scenario mix: {} node(s), {} workers each, prefetch {}, {}/s for {} s, \
             every {}th task sleeps {} ms",
            self.node_count,
            self.workers_per_node,
            self.prefetch.as_deref().unwrap_or("(node default)"),
            self.rate_per_s,
            self.duration_s,
            self.long.every,
            self.long.ms
        );
        let _ = writeln!(s, "  {}", self.env.describe());
        let line = load::percentiles_line;
        let _ = writeln!(s, "short       {}", line(&self.short_ms));
        let _ = writeln!(s, "long        {}", line(&self.long_ms));
        let _ = writeln!(
            s,
            "held up     {} short tasks took over {} ms ({} of {} succeeded, {} failed)",
            self.short_held_up,
            self.long.ms / 2,
            self.succeeded,
            self.sent,
            self.failed
        );
        if let Some(p) = &self.first_problem {
            let _ = writeln!(s, "first problem: {p}");
        }
        s
    }
}
