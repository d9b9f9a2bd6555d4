//! The load generators: batched submits from several clients, waiting for every result, and
//! an open-loop stream of single tasks for latency. Every loop is bounded in count (the tasks
//! asked for) and in time (a deadline), and ends by itself.

use std::pin::pin;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use flotilla_client::{Client, TaskId, TaskState};
use futures::StreamExt;
use indicatif::ProgressBar;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// What to submit: `tasks` noop tasks with `args` as their JSON arguments, in requests of
/// `batch` tasks, each client keeping up to `in_flight` requests outstanding.
#[derive(Clone, Copy, Debug)]
pub struct Batches {
    pub tasks: usize,
    pub batch: usize,
    pub in_flight: usize,
    pub args: &'static [u8],
}

/// Splits `total` into `parts` shares that differ by at most one (the first ones larger).
pub fn shares(total: usize, parts: usize) -> Vec<usize> {
    let parts = parts.max(1);
    (0..parts)
        .map(|i| total / parts + usize::from(i < total % parts))
        .collect()
}

/// Opens every client's connection (a status call), so connecting is not timed.
pub async fn warm_up(clients: &[Client]) -> Result<()> {
    for c in clients {
        c.status().await.context("first call to the cluster")?;
    }
    Ok(())
}

/// Submits `spec.tasks` tasks, shared between `clients`, and returns once every one is
/// acknowledged. Each acknowledged batch's ids are sent on `acked` with the index of the client
/// that submitted them.
pub async fn submit_all(
    clients: &[Client],
    spec: Batches,
    progress: &ProgressBar,
    acked: Option<mpsc::UnboundedSender<(usize, Vec<TaskId>)>>,
) -> Result<()> {
    let mut set = JoinSet::new();
    for (i, share) in shares(spec.tasks, clients.len()).into_iter().enumerate() {
        set.spawn(submit_share(
            clients[i].clone(),
            i,
            share,
            spec,
            progress.clone(),
            acked.clone(),
        ));
    }
    drop(acked);
    while let Some(joined) = set.join_next().await {
        joined.context("submitting client panicked")??;
    }
    Ok(())
}

async fn submit_share(
    client: Client,
    index: usize,
    tasks: usize,
    spec: Batches,
    progress: ProgressBar,
    acked: Option<mpsc::UnboundedSender<(usize, Vec<TaskId>)>>,
) -> Result<()> {
    let sizes = shares(tasks, tasks.div_ceil(spec.batch.max(1)));
    let mut replies = futures::stream::iter(sizes.into_iter().filter(|&n| n > 0))
        .map(|n| {
            let client = client.clone();
            async move {
                let batch = (0..n).map(|_| client.task("noop").args_json(spec.args)).collect();
                client.submit_batch(batch).await
            }
        })
        .buffer_unordered(spec.in_flight.max(1));
    while let Some(reply) = replies.next().await {
        let submitted = reply.context("submit")?;
        // A duplicate is a batch the client sent again after its first reply was lost (a
        // timeout under load): the keys make it the same tasks, so their ids count as acked.
        let again = submitted.iter().filter(|s| s.duplicate).count();
        if again > 0 {
            tracing::warn!(again, "a retried submit came back as duplicates of its first try");
        }
        progress.inc(submitted.len() as u64);
        if let Some(tx) = &acked {
            // The receiver only goes away when the run is being abandoned.
            let _ = tx.send((index, submitted.into_iter().map(|s| s.id).collect()));
        }
    }
    Ok(())
}

/// How the tasks of a run ended.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Outcomes {
    /// Tasks that succeeded.
    pub succeeded: usize,
    /// Tasks that ended in another final state (dead, cancelled, not found).
    pub failed: usize,
    /// Tasks whose result did not come before the deadline (or whose wait failed).
    pub unfinished: usize,
    /// The first failure seen, for the report.
    pub first_problem: Option<String>,
}

impl Outcomes {
    fn add(&mut self, other: Outcomes) {
        self.succeeded += other.succeeded;
        self.failed += other.failed;
        self.unfinished += other.unfinished;
        self.first_problem = self.first_problem.take().or(other.first_problem);
    }

    /// Tasks that did not succeed.
    pub fn not_succeeded(&self) -> usize {
        self.failed + self.unfinished
    }
}

/// Submits `spec.tasks` tasks and waits for all their results, each batch's wait starting as
/// soon as the batch is acknowledged. Returns the time from the first submit to the last
/// result, and how the tasks ended. Waits end at `deadline`.
pub async fn submit_and_wait(
    clients: &[Client],
    spec: Batches,
    deadline: Instant,
    progress: &ProgressBar,
) -> Result<(Duration, Outcomes)> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let start = Instant::now();
    let hidden = ProgressBar::hidden();
    let submit = submit_all(clients, spec, &hidden, Some(tx));
    let wait = async {
        let mut waits = JoinSet::new();
        let mut outcomes = Outcomes::default();
        let mut last = None;
        let mut receiving = true;
        loop {
            tokio::select! {
                ack = rx.recv(), if receiving => match ack {
                    Some((i, ids)) => {
                        waits.spawn(wait_batch(clients[i].clone(), ids, deadline, progress.clone()));
                    }
                    None => receiving = false,
                },
                joined = waits.join_next(), if !waits.is_empty() => {
                    let Some(joined) = joined else { continue };
                    let (batch, batch_last) = joined.context("waiting task panicked")?;
                    outcomes.add(batch);
                    last = last.max(batch_last);
                }
                else => break,
            }
        }
        anyhow::Ok((outcomes, last))
    };
    let ((), (outcomes, last)) = tokio::try_join!(submit, wait)?;
    let elapsed = last.map_or(Duration::ZERO, |l: Instant| l - start);
    Ok((elapsed, outcomes))
}

/// Waits for one batch's results; returns the outcomes and when the last result came.
async fn wait_batch(
    client: Client,
    ids: Vec<TaskId>,
    deadline: Instant,
    progress: ProgressBar,
) -> (Outcomes, Option<Instant>) {
    let expected = ids.len();
    let timeout = deadline.saturating_duration_since(Instant::now());
    let mut results = pin!(client.wait_many(ids, timeout));
    let mut out = Outcomes::default();
    let mut last = None;
    while let Some(result) = results.next().await {
        match result {
            Ok(info) => {
                if info.state == TaskState::Succeeded {
                    out.succeeded += 1;
                } else {
                    out.failed += 1;
                    out.first_problem.get_or_insert_with(|| {
                        format!("task {} ended {}: {:?}", info.id, info.state.as_str(), info.error)
                    });
                }
                last = Some(Instant::now());
                progress.inc(1);
            }
            Err(e) => {
                out.first_problem.get_or_insert_with(|| format!("wait: {e}"));
                break;
            }
        }
    }
    out.unfinished = expected - out.succeeded - out.failed;
    (out, last)
}

/// Long tasks among the open loop's noop ones: every `every`-th task sleeps `ms` (the
/// built-in `sleep`), to show what a long task does to short ones queued behind it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LongTasks {
    pub every: usize,
    pub ms: u64,
}

/// What the open-loop latency run saw.
#[derive(Debug, Default)]
pub struct OpenLoop {
    /// Submit start → result received, of each short task that succeeded.
    pub latencies: Vec<Duration>,
    /// The same, of the long tasks (`LongTasks`).
    pub long_latencies: Vec<Duration>,
    /// Submit start → submit acknowledged (committed and fsync'd), of the same tasks.
    pub submit_acks: Vec<Duration>,
    /// Submit entry → final entry, by the leader's clock (whole ms), of the same tasks.
    pub in_cluster: Vec<Duration>,
    /// Tasks sent.
    pub sent: usize,
    pub outcomes: Outcomes,
    /// Largest delay between a task's scheduled time and its submit start (the generator
    /// falling behind would hide latency: coordinated omission).
    pub max_start_lag: Duration,
}

/// Sends `round(rate * secs)` tasks, one every `1/rate` seconds, each submitted alone at its
/// scheduled time (not waiting for earlier ones) and then waited for. Each task gets at most
/// `task_timeout`. The tasks are `noop`, but for the `long` ones.
pub async fn open_loop(
    clients: &[Client],
    rate: f64,
    secs: f64,
    task_timeout: Duration,
    long: Option<LongTasks>,
    progress: &ProgressBar,
) -> Result<OpenLoop> {
    let n = (rate * secs).round();
    if !(1.0..=10_000_000.0).contains(&n) {
        bail!("latency run of {rate}/s for {secs} s is {n} tasks: must be 1 to 10,000,000");
    }
    let n = n as usize;
    let mut run = OpenLoop {
        sent: n,
        ..OpenLoop::default()
    };
    let mut tasks = JoinSet::new();
    let start = Instant::now();
    for i in 0..n {
        let at = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(at).await;
        run.max_start_lag = run.max_start_lag.max(at.elapsed());
        let client = clients[i % clients.len()].clone();
        let long_ms = long
            .filter(|l| l.every > 0 && i % l.every == l.every - 1)
            .map(|l| l.ms);
        tasks.spawn(async move {
            let t0 = Instant::now();
            let mut acked = Duration::ZERO;
            let result = tokio::time::timeout(task_timeout, async {
                let task = match long_ms {
                    Some(ms) => client.task("sleep").args_json(format!("{{\"ms\":{ms}}}")),
                    None => client.task("noop"),
                };
                let id = client.submit(task).await?;
                acked = t0.elapsed();
                client.wait(id, task_timeout).await
            })
            .await;
            (t0.elapsed(), acked, result)
        });
        while let Some(done) = tasks.try_join_next() {
            record(&mut run, done?, progress);
        }
    }
    while let Some(done) = tasks.join_next().await {
        record(&mut run, done?, progress);
    }
    Ok(run)
}

type Timed = (
    Duration,
    Duration,
    Result<flotilla_client::Result<flotilla_client::TaskInfo>, tokio::time::error::Elapsed>,
);

fn record(run: &mut OpenLoop, (latency, acked, result): Timed, progress: &ProgressBar) {
    progress.inc(1);
    match result {
        Ok(Ok(info)) if info.state == TaskState::Succeeded && info.name == "sleep" => {
            run.outcomes.succeeded += 1;
            run.long_latencies.push(latency);
        }
        Ok(Ok(info)) if info.state == TaskState::Succeeded => {
            run.outcomes.succeeded += 1;
            run.latencies.push(latency);
            run.submit_acks.push(acked);
            run.in_cluster.push(Duration::from_millis(
                info.updated_unix_ms.saturating_sub(info.created_unix_ms),
            ));
        }
        Ok(Ok(info)) => {
            run.outcomes.failed += 1;
            run.outcomes.first_problem.get_or_insert_with(|| {
                format!("task {} ended {}: {:?}", info.id, info.state.as_str(), info.error)
            });
        }
        Ok(Err(e)) => {
            run.outcomes.unfinished += 1;
            run.outcomes
                .first_problem
                .get_or_insert_with(|| format!("submit or wait: {e}"));
        }
        Err(_) => {
            run.outcomes.unfinished += 1;
            run.outcomes
                .first_problem
                .get_or_insert_with(|| "no result in time".into());
        }
    }
}

/// Latency percentiles, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

/// One report line of percentiles (ms), or "none succeeded".
pub fn percentiles_line(p: &Option<Percentiles>) -> String {
    match p {
        Some(p) => format!(
            "p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            p.p50, p.p90, p.p99, p.max
        ),
        None => "none succeeded".into(),
    }
}

/// Nearest-rank percentiles of `samples`; `None` when there are none.
pub fn percentiles(mut samples: Vec<Duration>) -> Option<Percentiles> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let rank = |p: f64| {
        let r = (p / 100.0 * samples.len() as f64).ceil() as usize;
        ms(samples[r.clamp(1, samples.len()) - 1])
    };
    let total: Duration = samples.iter().sum();
    Some(Percentiles {
        p50: rank(50.0),
        p90: rank(90.0),
        p99: rank(99.0),
        max: ms(samples[samples.len() - 1]),
        mean: ms(total) / samples.len() as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_and_differ_by_at_most_one() {
        assert_eq!(shares(10, 4), [3, 3, 2, 2]);
        assert_eq!(shares(3, 4), [1, 1, 1, 0]);
        assert_eq!(shares(0, 2), [0, 0]);
        assert_eq!(shares(7, 0), [7]);
        for (total, parts) in [(100_000, 4), (2000, 3), (1, 1), (999, 7)] {
            let s = shares(total, parts);
            assert_eq!(s.iter().sum::<usize>(), total);
            assert!(s.iter().max().unwrap() - s.iter().min().unwrap() <= 1);
        }
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        assert_eq!(percentiles(vec![]), None);
        let ms = |n: u64| Duration::from_millis(n);
        let p = percentiles((1..=100).rev().map(ms).collect()).unwrap();
        assert_eq!((p.p50, p.p90, p.p99, p.max), (50.0, 90.0, 99.0, 100.0));
        assert_eq!(p.mean, 50.5);
        let p = percentiles(vec![ms(7)]).unwrap();
        assert_eq!((p.p50, p.p99, p.max), (7.0, 7.0, 7.0));
        let p = percentiles(vec![ms(1), ms(2), ms(3)]).unwrap();
        assert_eq!((p.p50, p.p90, p.max), (2.0, 3.0, 3.0));
    }
}
