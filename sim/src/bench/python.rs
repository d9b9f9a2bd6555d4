//! `sim bench --scenario python`: issue 11's Python-worker figure with the same load generator
//! as every other figure. The nodes run no pool of their own (`--workers 0`); each runs
//! `--python-workers` `flotilla-worker` processes of the Python SDK (default flags: one
//! process, `--workers` threads, `--prefetch auto`) serving `client/python/scripts/bench_noop.py`
//! (a noop task named `noop`, the name the load generator submits). Then `--rounds` rounds of
//! [`load::submit_and_wait`] (batched submits, each batch waited for as soon as it is
//! acknowledged), after a warm-up round, each with its tasks/s and the CPU per task of the
//! nodes, of the Python workers and of this process, from /proc.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use flotilla_client::{Client, WorkerKind};
use serde::Serialize;
use tokio::time::Instant;
use tracing::info;

use super::cluster::Cluster;
use super::load::{self, Batches, Outcomes};
use super::procfs::{self, ProcSample};
use super::report::Environment;
use super::{BenchOptions, per_s};

/// Where the Python SDK of this checkout is (the default of `--sdk-src`).
pub fn default_sdk_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../client/python/src")
}

/// The interpreter of the SDK tests' venv when it exists (it has grpcio and protobuf), else
/// `python3` from `PATH` (the default of `--python`).
pub fn default_python() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/sdk-venv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// What the Python scenario runs, beyond [`BenchOptions`] (whose `tasks`, `nodes`, `clients`,
/// `batch`, `in_flight`, `prefetch` and `phase_timeout` it uses; `workers` is each worker
/// process's thread count).
#[derive(Clone, Debug)]
pub struct PythonOptions {
    /// `flotilla-worker` processes per node.
    pub workers_per_node: usize,
    /// The interpreter (it needs grpcio and protobuf).
    pub python: PathBuf,
    /// The SDK's `src` directory (another checkout's for an A/B run).
    pub sdk_src: PathBuf,
    /// Measured rounds of `tasks` tasks each.
    pub rounds: usize,
    /// Tasks of the warm-up round (not reported; 0: none).
    pub warmup: usize,
    /// The workers' `--prefetch` (none: not passed, the worker's default `auto`).
    pub worker_prefetch: Option<String>,
}

/// Figures of the Python scenario.
#[derive(Clone, Debug, Serialize)]
pub struct PythonReport {
    pub scenario: &'static str,
    pub tasks: usize,
    pub clients: usize,
    pub batch: usize,
    pub in_flight: usize,
    pub node_count: usize,
    pub python_workers_per_node: usize,
    /// Threads of each worker process (`flotilla-worker -c`).
    pub threads_per_worker: usize,
    pub python: String,
    pub sdk_src: String,
    pub rounds: Vec<PythonRound>,
    /// Median and lowest tasks/s over the rounds.
    pub median_tasks_per_s: f64,
    pub min_tasks_per_s: f64,
    /// Tasks that did not succeed, over every round (non-zero: exit 1).
    pub failed: usize,
    pub first_problem: Option<String>,
    #[serde(flatten)]
    pub env: Environment,
}

/// One measured round.
#[derive(Clone, Debug, Serialize)]
pub struct PythonRound {
    /// First submit to last result.
    pub elapsed_s: f64,
    pub tasks_per_s: f64,
    /// CPU µs per task, summed over every node / every worker process / this process.
    pub node_cpu_us_per_task: f64,
    pub worker_cpu_us_per_task: f64,
    pub bench_cpu_us_per_task: f64,
    /// The 1-minute load average at the round's end.
    pub loadavg: Option<f64>,
    pub outcomes: Outcomes,
}

/// The worker processes; dropping them kills them (SIGKILL: the node releases their leases).
struct PythonWorkers {
    children: Vec<Child>,
}

impl Drop for PythonWorkers {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl PythonWorkers {
    fn start(addrs: &[String], opts: &BenchOptions, py: &PythonOptions, logs: &Path) -> Result<Self> {
        // bench_noop.py: the SDK's checkout's if it has one, else this checkout's (an older
        // SDK under test need not have it: it only imports the SDK's public API).
        let own_scripts = default_sdk_src().join("../scripts");
        let scripts = [py.sdk_src.join("../scripts"), own_scripts]
            .into_iter()
            .find(|d| d.join("bench_noop.py").exists())
            .context("no client/python/scripts/bench_noop.py next to the SDK or this checkout")?;
        let path = std::env::join_paths([&py.sdk_src, &scripts])?;
        let mut workers = PythonWorkers { children: Vec::new() };
        for (n, addr) in addrs.iter().enumerate() {
            for i in 0..py.workers_per_node {
                let log = std::fs::File::create(logs.join(format!("python-worker-{n}-{i}.log")))?;
                let mut cmd = Command::new(&py.python);
                cmd.args(["-m", "flotilla.worker.cli", "-A", "bench_noop", "-l", "warning"])
                    .args(["-c", &opts.workers.to_string(), "--nodes", addr])
                    .args(["-n", &format!("bench-py-{n}-{i}")]);
                if let Some(p) = &py.worker_prefetch {
                    cmd.args(["--prefetch", p]);
                }
                let child = cmd
                    .env("PYTHONPATH", &path)
                    .env("FLOTILLA_NODES", addr)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .with_context(|| format!("starting {} -m flotilla.worker.cli", py.python.display()))?;
                info!(pid = child.id(), %addr, "started a Python worker");
                workers.children.push(child);
            }
        }
        Ok(workers)
    }

    /// Until every worker is connected (listed as remote by the cluster).
    async fn wait_connected(&mut self, client: &Client, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            for c in &mut self.children {
                if let Some(status) = c.try_wait()? {
                    bail!("a Python worker exited before connecting ({status}): see its log");
                }
            }
            let connected = match client.workers().await {
                Ok(w) => w.workers.iter().filter(|w| w.kind == WorkerKind::Remote).count(),
                Err(_) => 0,
            };
            if connected >= self.children.len() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "{connected} of {} Python workers connected within {timeout:?}",
                    self.children.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn sample(&self) -> Result<Vec<ProcSample>> {
        self.children.iter().map(|c| procfs::sample(c.id())).collect()
    }
}

/// The Python-worker scenario (see the module docs).
pub async fn run_python(opts: &BenchOptions, py: &PythonOptions) -> Result<PythonReport> {
    opts.validate()?;
    ensure!(py.workers_per_node >= 1, "--python-workers must be at least 1");
    ensure!(py.rounds >= 1, "--rounds must be at least 1");
    let env = Environment::detect(&opts.node_bin);
    let cluster = Cluster::start(opts.nodes, &opts.cluster(0)).await?;
    let mut workers = PythonWorkers::start(&cluster.addrs(), opts, py, cluster.dir())?;
    let clients = opts.clients(&cluster).await?;
    workers
        .wait_connected(&clients[0], opts.phase_timeout.min(Duration::from_secs(60)))
        .await?;
    if py.warmup > 0 {
        info!(tasks = py.warmup, "warm-up round");
        round(opts, &cluster, &workers, &clients, py.warmup).await?;
    }
    let mut rounds = Vec::with_capacity(py.rounds);
    for r in 0..py.rounds {
        info!(round = r, tasks = opts.tasks, "round");
        rounds.push(round(opts, &cluster, &workers, &clients, opts.tasks).await?);
    }
    let mut rates: Vec<f64> = rounds.iter().map(|r| r.tasks_per_s).collect();
    rates.sort_by(f64::total_cmp);
    let median = if rates.len() % 2 == 1 {
        rates[rates.len() / 2]
    } else {
        (rates[rates.len() / 2 - 1] + rates[rates.len() / 2]) / 2.0
    };
    Ok(PythonReport {
        scenario: "python",
        tasks: opts.tasks,
        clients: opts.clients,
        batch: opts.batch,
        in_flight: opts.in_flight,
        node_count: opts.nodes,
        python_workers_per_node: py.workers_per_node,
        threads_per_worker: opts.workers,
        python: py.python.display().to_string(),
        sdk_src: py.sdk_src.display().to_string(),
        median_tasks_per_s: median,
        min_tasks_per_s: rates.first().copied().unwrap_or(0.0),
        failed: rounds.iter().map(|r| r.outcomes.not_succeeded()).sum(),
        first_problem: rounds.iter().find_map(|r| r.outcomes.first_problem.clone()),
        rounds,
        env,
    })
}

async fn round(
    opts: &BenchOptions,
    cluster: &Cluster,
    workers: &PythonWorkers,
    clients: &[Client],
    tasks: usize,
) -> Result<PythonRound> {
    let spec = Batches {
        tasks,
        batch: opts.batch,
        in_flight: opts.in_flight,
        args: b"null",
    };
    let bar = opts.bar(tasks as u64, "python");
    let cpu = |s: &[ProcSample]| s.iter().map(|p| p.cpu_s).sum::<f64>();
    let (nodes0, workers0, own0) = (
        cpu(&cluster.sample()?),
        cpu(&workers.sample()?),
        procfs::sample_self()?.cpu_s,
    );
    let deadline = Instant::now() + opts.phase_timeout;
    let (elapsed, outcomes) = tokio::time::timeout_at(
        deadline + Duration::from_secs(5),
        load::submit_and_wait(clients, spec, deadline, &bar),
    )
    .await
    .context("a Python round timed out")??;
    bar.finish_and_clear();
    let (nodes1, workers1, own1) = (
        cpu(&cluster.sample()?),
        cpu(&workers.sample()?),
        procfs::sample_self()?.cpu_s,
    );
    let us = |a: f64, b: f64| (b - a) / tasks as f64 * 1e6;
    Ok(PythonRound {
        elapsed_s: elapsed.as_secs_f64(),
        tasks_per_s: per_s(outcomes.succeeded, elapsed.as_secs_f64()),
        node_cpu_us_per_task: us(nodes0, nodes1),
        worker_cpu_us_per_task: us(workers0, workers1),
        bench_cpu_us_per_task: us(own0, own1),
        loadavg: loadavg(),
        outcomes,
    })
}

/// The 1-minute load average (`/proc/loadavg`).
fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl PythonReport {
    /// The report as text for a terminal.
    pub fn human(&self) -> String {
        let mut s = format!(
            "Python workers: {} node(s) × {} worker process(es) × {} threads, {} tasks a round\n",
            self.node_count, self.python_workers_per_node, self.threads_per_worker, self.tasks
        );
        for (i, r) in self.rounds.iter().enumerate() {
            s += &format!(
                "  round {i}: {:>7.0} tasks/s  CPU per task µs: node {:.0} / worker {:.0} / bench {:.0}  load {}\n",
                r.tasks_per_s,
                r.node_cpu_us_per_task,
                r.worker_cpu_us_per_task,
                r.bench_cpu_us_per_task,
                r.loadavg.map_or("?".to_owned(), |l| format!("{l:.1}")),
            );
        }
        s += &format!(
            "median {:.0} tasks/s, lowest {:.0}; {} not succeeded\n{}\n",
            self.median_tasks_per_s,
            self.min_tasks_per_s,
            self.failed,
            self.env.describe()
        );
        s
    }
}
