//! `sim failover`: how long after the leader is SIGKILLed do tasks complete again?
//!
//! A real cluster on loopback, and an open-loop prober that submits one `noop` every 10 ms and
//! waits for each result, through a client that knows every node (as a real one would). Each
//! round SIGKILLs the current leader and measures, from the kill:
//!
//! - `recovery_ms`: until the first task *submitted after the kill* has its result — the time
//!   the cluster could not take and finish new work;
//! - `gap_ms`: the longest time with no completion at all around the kill.
//!
//! Probes leased by the killed node's own workers wait for their lease to expire; they are
//! counted as `stuck` and left out (a restart of that node releases them at once). The killed
//! node is restarted after each round and the cluster is healthy again before the next.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use anyhow::Result;
use anyhow::bail;
use flotilla_client::Client;
use flotilla_client::RetryPolicy;
use flotilla_client::TaskState;
use serde::Serialize;
use tokio::time::Instant;
use tracing::info;

use crate::bench::cluster::Cluster;
use crate::bench::cluster::ClusterOptions;
use crate::bench::load::Percentiles;
use crate::bench::load::percentiles;
use crate::bench::report::Environment;

#[derive(Clone, Debug)]
pub struct FailoverOptions {
    pub node_bin: std::path::PathBuf,
    pub nodes: usize,
    pub rounds: usize,
    pub workers: usize,
    /// One probe task is submitted this often (open loop).
    pub probe_interval: Duration,
    /// Probing before the kill, so the cluster is in a steady state.
    pub settle: Duration,
    /// Probing after the kill (bounded: every loop stops by itself).
    pub observe: Duration,
    /// A probe that has no result this long after its submit is stuck.
    pub probe_timeout: Duration,
    pub ready_timeout: Duration,
}

impl FailoverOptions {
    pub fn new(node_bin: std::path::PathBuf) -> Self {
        Self {
            node_bin,
            nodes: 3,
            rounds: 5,
            workers: 2,
            probe_interval: Duration::from_millis(10),
            settle: Duration::from_secs(1),
            observe: Duration::from_secs(4),
            probe_timeout: Duration::from_secs(3),
            ready_timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Round {
    /// Index of the killed node (it was the leader).
    pub killed: usize,
    pub recovery_ms: f64,
    pub gap_ms: f64,
    /// Probes completed in this round.
    pub completed: usize,
    /// Probes without a result within the probe timeout (leased by the killed node).
    pub stuck: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct FailoverReport {
    pub nodes: usize,
    pub rounds: Vec<Round>,
    pub recovery_ms: Option<Percentiles>,
    pub gap_ms: Option<Percentiles>,
    pub environment: Environment,
}

/// Run the rounds and report.
pub async fn run(opts: &FailoverOptions) -> Result<FailoverReport> {
    if opts.nodes < 3 {
        bail!("failover needs at least 3 nodes (a majority must survive the kill)");
    }
    let environment = Environment::detect(&opts.node_bin);
    let cluster_opts = ClusterOptions {
        node_bin: opts.node_bin.clone(),
        workers: opts.workers,
        ready_timeout: opts.ready_timeout,
        node_args: Vec::new(),
    };
    let mut cluster = Cluster::start(opts.nodes, &cluster_opts).await?;
    let client = Client::builder(cluster.addrs())
        .request_timeout(Duration::from_secs(1))
        .retry_policy(RetryPolicy {
            max_elapsed: Duration::from_secs(30),
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(50),
        })
        .build()
        .await?;
    let mut rounds = Vec::new();
    for round in 0..opts.rounds {
        let r = one_round(&mut cluster, &client, opts)
            .await
            .with_context(|| format!("round {round}"))?;
        info!(round, ?r, "failover round");
        rounds.push(r);
    }
    let ms = |v: f64| Duration::from_secs_f64(v / 1000.0);
    Ok(FailoverReport {
        nodes: opts.nodes,
        recovery_ms: percentiles(rounds.iter().map(|r| ms(r.recovery_ms)).collect()),
        gap_ms: percentiles(rounds.iter().map(|r| ms(r.gap_ms)).collect()),
        rounds,
        environment,
    })
}

async fn leader_index(cluster: &Cluster, client: &Client) -> Result<usize> {
    let addrs = cluster.addrs();
    for _ in 0..200 {
        let s = client.status().await?;
        if let Some(i) = s
            .leader_id
            .and_then(|id| s.members.iter().find(|m| m.id == id))
            .and_then(|m| addrs.iter().position(|a| *a == m.addr))
        {
            return Ok(i);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("no leader known")
}

async fn one_round(cluster: &mut Cluster, client: &Client, opts: &FailoverOptions) -> Result<Round> {
    let done: Arc<Mutex<Vec<(Instant, Instant)>>> = Arc::default();
    let stuck = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + opts.settle + opts.observe + opts.probe_timeout * 2;
    // Open loop: a probe every `probe_interval`, each waited for on its own, so probes stuck
    // on the dead node's leases cannot hold back new ones.
    let prober = {
        let (client, done, stuck, stop) = (client.clone(), done.clone(), stuck.clone(), stop.clone());
        let (timeout, interval) = (opts.probe_timeout, opts.probe_interval);
        tokio::spawn(async move {
            let mut probes = tokio::task::JoinSet::new();
            let mut tick = tokio::time::interval(interval);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                tick.tick().await;
                let (client, done, stuck) = (client.clone(), done.clone(), stuck.clone());
                probes.spawn(async move {
                    let submitted = Instant::now();
                    let finished = match client.submit(client.task("noop")).await {
                        Ok(id) => client.wait(id, timeout).await.ok(),
                        Err(_) => None,
                    };
                    match finished {
                        Some(t) if t.state == TaskState::Succeeded => {
                            done.lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push((submitted, Instant::now()));
                        }
                        _ => {
                            stuck.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
            while probes.join_next().await.is_some() {}
        })
    };
    tokio::time::sleep(opts.settle).await;
    let victim = leader_index(cluster, client).await?;
    let killed_at = Instant::now();
    cluster.kill9(victim)?;
    tokio::time::sleep(opts.observe).await;
    stop.store(true, Ordering::Relaxed);
    prober.await?;
    let mut done = std::mem::take(&mut *done.lock().unwrap_or_else(|e| e.into_inner()));
    let recovery = done
        .iter()
        .filter(|(submitted, _)| *submitted >= killed_at)
        .map(|(_, finished)| *finished - killed_at)
        .min()
        .context("no task submitted after the kill completed within the observation window")?;
    done.sort_by_key(|(_, finished)| *finished);
    let mut last = killed_at;
    let mut gap = Duration::ZERO;
    for (_, finished) in done.iter().filter(|(_, f)| *f >= killed_at) {
        gap = gap.max(*finished - last);
        last = *finished;
    }
    let completed = done.len();
    cluster.restart(victim, opts.ready_timeout).await?;
    Ok(Round {
        killed: victim,
        recovery_ms: recovery.as_secs_f64() * 1000.0,
        gap_ms: gap.as_secs_f64() * 1000.0,
        completed,
        stuck: stuck.load(Ordering::Relaxed),
    })
}
