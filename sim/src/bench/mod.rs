//! `sim bench`: real `node` processes on loopback, a load generator, and a report.
//!
//! Three scenarios:
//! - [`run_throughput`]: (a) submit throughput against a node with no workers; (b) end-to-end
//!   throughput (submit → run → result) on a fresh cluster with workers; (c) open-loop latency
//!   on that same cluster; CPU and memory of every node after each phase.
//! - [`run_backlog`]: memory per pending task, and the time a node with that backlog takes to
//!   serve again after SIGKILL and restart.
//! - [`mix::run_mix`]: open-loop short tasks with long ones among them: what a long task does
//!   to the short ones behind it (lease-ahead's prefetch trap).
//!
//! [`python::run_python`] runs the end-to-end rounds on Python SDK workers (issue 11's figure).
//!
//! With `remote_workers` > 0, (b) and (c) run on Rust remote workers over the worker stream
//! instead (`remote.rs`): nodes with no pool of their own, that many sessions per node, each
//! holding up to `workers` tasks.
//!
//! Figures are only meaningful with release builds of both `sim` and `node`.

pub mod cluster;
pub mod load;
pub mod mix;
pub mod procfs;
pub mod python;
pub mod remote;
pub mod report;
pub mod sustained;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use flotilla_client::{Client, RetryPolicy};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::time::Instant;
use tracing::info;

use cluster::{Cluster, ClusterOptions};
use load::Batches;
use procfs::ProcSample;
pub use report::{BacklogReport, Environment, LatencyFigures, NodeFigures, Phase, ThroughputReport};

/// Options of both scenarios (each uses the fields it needs).
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Nodes in the cluster.
    pub nodes: usize,
    /// Tasks submitted in the throughput phases, or enqueued in the backlog scenario.
    pub tasks: usize,
    /// Concurrent clients (each its own connection).
    pub clients: usize,
    /// Tasks per submit request.
    pub batch: usize,
    /// Submit requests each client keeps in flight.
    pub in_flight: usize,
    /// Tasks per second of the open-loop latency run.
    pub latency_rate: f64,
    /// Seconds of the open-loop latency run.
    pub latency_s: f64,
    /// Workers per node in the end-to-end and latency phases.
    pub workers: usize,
    /// Remote worker sessions per node instead of the in-process pool (0: the pool), each
    /// holding up to `workers` tasks.
    pub remote_workers: usize,
    /// The nodes' `--prefetch` (none: not passed, the node's default).
    pub prefetch: Option<String>,
    /// The `node` executable.
    pub node_bin: PathBuf,
    /// Upper bound on each phase (and on a node's start).
    pub phase_timeout: Duration,
    /// Draw progress bars on stderr.
    pub progress: bool,
}

impl BenchOptions {
    /// The defaults of `sim bench` with the given `node` binary.
    pub fn new(node_bin: PathBuf) -> BenchOptions {
        BenchOptions {
            nodes: 1,
            tasks: 100_000,
            clients: 4,
            batch: 1000,
            in_flight: 8,
            latency_rate: 200.0,
            latency_s: 5.0,
            workers: cores(),
            remote_workers: 0,
            prefetch: None,
            node_bin,
            phase_timeout: Duration::from_secs(600),
            progress: false,
        }
    }

    fn validate(&self) -> Result<()> {
        ensure!(self.tasks >= 1, "--tasks must be at least 1");
        ensure!(self.clients >= 1, "--clients must be at least 1");
        ensure!(self.batch >= 1, "--batch must be at least 1");
        ensure!(self.in_flight >= 1, "--in-flight must be at least 1");
        ensure!(
            self.latency_rate.is_finite() && self.latency_rate > 0.0,
            "--latency-rate must be above 0"
        );
        ensure!(
            self.latency_s.is_finite() && self.latency_s > 0.0,
            "--latency-s must be above 0"
        );
        Ok(())
    }

    fn cluster(&self, workers: usize) -> ClusterOptions {
        ClusterOptions {
            node_bin: self.node_bin.clone(),
            workers,
            ready_timeout: self.phase_timeout.min(Duration::from_secs(60)),
            node_args: match &self.prefetch {
                Some(p) => vec!["--prefetch".into(), p.clone()],
                None => Vec::new(),
            },
        }
    }

    async fn clients(&self, cluster: &Cluster) -> Result<Vec<Client>> {
        let mut clients = Vec::with_capacity(self.clients);
        for _ in 0..self.clients {
            clients.push(cluster.client(self.batch, self.in_flight).await?);
        }
        load::warm_up(&clients).await?;
        Ok(clients)
    }

    fn bar(&self, len: u64, what: &str) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len).with_prefix(what.to_owned());
        if let Ok(style) =
            ProgressStyle::with_template("{prefix:>9} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec})")
        {
            bar.set_style(style);
        }
        bar
    }
}

/// Cores of this machine (1 when unknown).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Submit, end-to-end and latency figures on loopback (see the module docs).
pub async fn run_throughput(opts: &BenchOptions) -> Result<ThroughputReport> {
    opts.validate()?;
    let env = Environment::detect(&opts.node_bin);

    // (a) Submit throughput: nobody runs the tasks, so only submits cost.
    let submit = {
        info!(tasks = opts.tasks, "phase: submit");
        let cluster = Cluster::start(opts.nodes, &opts.cluster(0)).await?;
        let clients = opts.clients(&cluster).await?;
        let spec = Batches {
            tasks: opts.tasks,
            batch: opts.batch,
            in_flight: opts.in_flight,
            args: b"null",
        };
        let bar = opts.bar(opts.tasks as u64, "submit");
        let before = Sample::take(&cluster)?;
        let started = Instant::now();
        tokio::time::timeout(opts.phase_timeout, load::submit_all(&clients, spec, &bar, None))
            .await
            .context("submit phase timed out")??;
        let elapsed = started.elapsed();
        bar.finish_and_clear();
        Phase::new(elapsed, &before, &Sample::take(&cluster)?)
    };

    // (b) End-to-end throughput on a fresh cluster with workers.
    info!(
        tasks = opts.tasks,
        workers = opts.workers,
        remote = opts.remote_workers,
        "phase: end-to-end"
    );
    let pool = if opts.remote_workers > 0 { 0 } else { opts.workers };
    let cluster = Cluster::start(opts.nodes, &opts.cluster(pool)).await?;
    let _remote = match opts.remote_workers {
        0 => None,
        n => Some(remote::start(&cluster.addrs(), n, u32::try_from(opts.workers)?).await?),
    };
    let clients = opts.clients(&cluster).await?;
    let spec = Batches {
        tasks: opts.tasks,
        batch: opts.batch,
        in_flight: opts.in_flight,
        args: b"null",
    };
    let bar = opts.bar(opts.tasks as u64, "e2e");
    let index_before = commit_index(&clients[0]).await;
    let before = Sample::take(&cluster)?;
    let deadline = Instant::now() + opts.phase_timeout;
    let (e2e_elapsed, e2e) = tokio::time::timeout_at(
        deadline + Duration::from_secs(5),
        load::submit_and_wait(&clients, spec, deadline, &bar),
    )
    .await
    .context("end-to-end phase timed out")??;
    bar.finish_and_clear();
    let after_e2e = Sample::take(&cluster)?;
    let index_e2e = commit_index(&clients[0]).await;
    let e2e_phase = Phase::new(e2e_elapsed, &before, &after_e2e).with_entries(index_before, index_e2e);

    // (c) Open-loop latency on the same cluster.
    info!(rate = opts.latency_rate, secs = opts.latency_s, "phase: latency");
    let n = (opts.latency_rate * opts.latency_s).round() as u64;
    let bar = opts.bar(n, "latency");
    let started = Instant::now();
    let task_timeout = Duration::from_secs(30).min(opts.phase_timeout);
    let open = tokio::time::timeout(
        opts.phase_timeout + task_timeout,
        load::open_loop(
            &clients,
            opts.latency_rate,
            opts.latency_s,
            task_timeout,
            None,
            &bar,
        ),
    )
    .await
    .context("latency phase timed out")??;
    bar.finish_and_clear();
    let after = Sample::take(&cluster)?;
    let latency_phase = Phase::new(started.elapsed(), &after_e2e, &after)
        .with_entries(index_e2e, commit_index(&clients[0]).await);

    let latency = LatencyFigures::new(opts, &open);
    let failed = e2e.not_succeeded() + open.outcomes.not_succeeded();
    let first_problem = e2e
        .first_problem
        .clone()
        .or_else(|| open.outcomes.first_problem.clone());
    Ok(ThroughputReport {
        scenario: "throughput",
        tasks: opts.tasks,
        clients: opts.clients,
        batch: opts.batch,
        in_flight: opts.in_flight,
        node_count: opts.nodes,
        workers_per_node: opts.workers,
        remote_workers_per_node: opts.remote_workers,
        submit_tasks_per_s: per_s(opts.tasks, submit.elapsed_s),
        e2e_tasks_per_s: per_s(e2e.succeeded, e2e_phase.elapsed_s),
        latency_ms: latency.percentiles,
        latency,
        failed,
        e2e_outcomes: e2e,
        first_problem,
        nodes: NodeFigures::list(&after.nodes),
        phases: report::Phases {
            submit,
            e2e: e2e_phase,
            latency: latency_phase,
        },
        env,
    })
}

/// Memory per pending task and restart time with that backlog (see the module docs).
pub async fn run_backlog(opts: &BenchOptions) -> Result<BacklogReport> {
    opts.validate()?;
    if opts.nodes != 1 {
        bail!("the backlog scenario runs one node (asked for {})", opts.nodes);
    }
    let env = Environment::detect(&opts.node_bin);
    let mut cluster = Cluster::start(1, &opts.cluster(0)).await?;
    let clients = opts.clients(&cluster).await?;
    let before = Sample::take(&cluster)?;

    info!(tasks = opts.tasks, "enqueueing the backlog");
    let spec = Batches {
        tasks: opts.tasks,
        batch: opts.batch,
        in_flight: opts.in_flight,
        args: b"",
    };
    let bar = opts.bar(opts.tasks as u64, "enqueue");
    let started = Instant::now();
    tokio::time::timeout(opts.phase_timeout, load::submit_all(&clients, spec, &bar, None))
        .await
        .context("enqueueing timed out")??;
    let submit_elapsed = started.elapsed();
    bar.finish_and_clear();
    let after = Sample::take(&cluster)?;
    let pending_before_kill = pending(&clients[0]).await?;
    ensure!(
        pending_before_kill == opts.tasks as u64,
        "{pending_before_kill} tasks pending after enqueueing {}",
        opts.tasks
    );
    drop(clients);

    info!("SIGKILL and restart");
    let spawned = cluster.kill9_and_restart(0)?;
    let addr = cluster.addrs().remove(0);
    let deadline = spawned + opts.phase_timeout;
    let mut first_reply: Option<(Duration, u64)> = None;
    let all_pending = loop {
        cluster.check_alive(0)?;
        let probe = Client::builder([addr.clone()])
            .retry_policy(RetryPolicy::never())
            .request_timeout(Duration::from_secs(5))
            .build()
            .await?;
        if let Ok(n) = pending(&probe).await {
            let at = spawned.elapsed();
            first_reply.get_or_insert((at, n));
            if n == opts.tasks as u64 {
                break at;
            }
        }
        if Instant::now() >= deadline {
            bail!(
                "after restart, {} of {} tasks pending within {:?}",
                first_reply.map_or(0, |(_, n)| n),
                opts.tasks,
                opts.phase_timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let (serving, pending_at_first_reply) = first_reply.unwrap_or((all_pending, 0));
    let restarted = Sample::take(&cluster)?;

    let grown = after.nodes[0].rss_bytes as f64 - before.nodes[0].rss_bytes as f64;
    Ok(BacklogReport {
        scenario: "backlog",
        tasks: opts.tasks,
        clients: opts.clients,
        batch: opts.batch,
        rss_before_bytes: before.nodes[0].rss_bytes,
        rss_after_bytes: after.nodes[0].rss_bytes,
        peak_rss_bytes: after.nodes[0].peak_rss_bytes,
        bytes_per_pending_task: grown / opts.tasks as f64,
        submit_tasks_per_s: per_s(opts.tasks, submit_elapsed.as_secs_f64()),
        restart_to_serving_ms: serving.as_secs_f64() * 1000.0,
        pending_at_first_reply,
        restart_to_all_pending_ms: all_pending.as_secs_f64() * 1000.0,
        pending_after_restart: opts.tasks as u64,
        restarted_node: NodeFigures::list(&restarted.nodes).remove(0),
        env,
    })
}

/// Tasks pending, summed over queues.
async fn pending(client: &Client) -> Result<u64> {
    Ok(client.stats().await?.iter().map(|q| q.pending).sum())
}

/// The commit index as the node `client` reaches sees it (`None` if it did not answer: the
/// figure is left out, the benchmark goes on).
async fn commit_index(client: &Client) -> Option<u64> {
    client.status().await.ok().map(|s| s.commit_index)
}

fn per_s(tasks: usize, secs: f64) -> f64 {
    if secs > 0.0 { tasks as f64 / secs } else { 0.0 }
}

/// Counters of every node and of this process at one moment.
pub(crate) struct Sample {
    pub nodes: Vec<ProcSample>,
    pub this: ProcSample,
}

impl Sample {
    fn take(cluster: &Cluster) -> Result<Sample> {
        Ok(Sample {
            nodes: cluster.sample()?,
            this: procfs::sample_self()?,
        })
    }
}
