//! The clients of `sim chaos`. Each one loops until the end of the faulty phase: submit a small
//! batch, then wait briefly for the tasks it has not seen final yet. A batch is a seeded mix of
//! `noop`, `echo` (its arguments are its key, so every result is distinct and known in
//! advance) and short `sleep` tasks, each with an explicit idempotency key and retries on.
//!
//! A batch whose submit failed is submitted again, with the same keys, before any new one: the
//! cluster may have committed it, and the keys must make the retry return the same ids. Now
//! and then an acknowledged batch is submitted again on purpose, for the same check.
//!
//! Every acknowledgement and observation goes into the shared [`History`]; acknowledgements and
//! first final observations inside the faulty phase mark progress for [`Availability`].

use std::collections::BTreeSet;
use std::pin::pin;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use flotilla_client::{Client, ClientError, RetryPolicy, TaskId, TaskInfo, TaskRequest, TaskState};
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::{ChaosError, lock};
use crate::bench::cluster::Cluster;
use crate::history::{Anomaly, Availability, History};

/// Most tasks in one batch.
const MAX_BATCH: usize = 16;
/// How long a client waits for results between two submits.
const WAIT: Duration = Duration::from_millis(500);
/// Chance that a client submits an acknowledged batch again instead of a new one.
const PROBE_CHANCE: f64 = 0.1;
/// Acknowledged batches kept for such probes.
const KEPT_BATCHES: usize = 64;
/// Gets in flight in the healed phase's final read.
const READS_IN_FLIGHT: usize = 16;

/// Anomalies kept with their time for the report (all are counted in the verdict).
const KEPT_ANOMALIES: usize = 20;

/// What the clients share: the history, the availability measure and counters.
pub(crate) struct Shared {
    /// When the faulty phase began (anomalies are timed from it, like faults).
    pub start: Instant,
    pub history: History,
    pub availability: Availability,
    pub counters: Counters,
    pub anomalies: Vec<TimedAnomaly>,
}

impl Shared {
    /// Logs an anomaly the history just reported, and keeps the first few for the report.
    fn note(&mut self, anomaly: Option<Anomaly>) {
        let Some(anomaly) = anomaly else { return };
        let at_s = self.start.elapsed().as_secs_f64();
        warn!(at_s, task = %anomaly.id, what = %anomaly.what, "history anomaly");
        if self.anomalies.len() < KEPT_ANOMALIES {
            self.anomalies.push(TimedAnomaly {
                at_s,
                task: anomaly.id,
                what: anomaly.what,
            });
        }
    }
}

/// An anomaly and when a client saw it, in seconds since the faulty phase began (compare with
/// the faults' `at_s`).
#[derive(Clone, Debug, Serialize)]
pub struct TimedAnomaly {
    pub at_s: f64,
    pub task: TaskId,
    pub what: String,
}

/// What the clients did, for the report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counters {
    /// Submit calls answered `Ok` (each acknowledges a whole batch).
    pub batches_acknowledged: usize,
    /// Submit calls that failed (the batch is submitted again, same keys).
    pub submit_errors: usize,
    /// Acknowledged batches submitted again on purpose (their ids must not change).
    pub duplicate_probes: usize,
    /// Waits that ended with an error other than their own timeout.
    pub wait_errors: usize,
    /// The last submit error, for a first look at what the faults did.
    pub last_submit_error: Option<String>,
}

/// One task of a batch, and the result it must end with.
#[derive(Clone, Debug)]
struct Planned {
    request: TaskRequest,
    expect: Bytes,
}

/// Why a batch is being submitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    New,
    /// Again after a failed submit.
    Retry,
    /// Again after it was acknowledged.
    Probe,
}

/// A client's own state, handed back after the faulty phase for the healed one.
pub(crate) struct ClientState {
    index: usize,
    seed: u64,
    rng: StdRng,
    seq: u64,
    /// The batch whose last submit failed.
    unacked: Option<Vec<Planned>>,
    acked: Vec<Vec<Planned>>,
    /// Acknowledged ids this client has not seen final yet.
    outstanding: BTreeSet<TaskId>,
}

impl ClientState {
    /// Client `index` of the run with seed `seed` (keys are named after both), drawing from
    /// `rng_seed`.
    pub(crate) fn new(index: usize, seed: u64, rng_seed: u64) -> ClientState {
        ClientState {
            index,
            seed,
            rng: StdRng::seed_from_u64(rng_seed),
            seq: 0,
            unacked: None,
            acked: Vec::new(),
            outstanding: BTreeSet::new(),
        }
    }

    fn next_batch(&mut self) -> (Vec<Planned>, Purpose) {
        if let Some(batch) = self.unacked.take() {
            return (batch, Purpose::Retry);
        }
        // Always draw both, so the sequence of draws does not depend on what happened before.
        let probe = self.rng.random_bool(PROBE_CHANCE);
        let pick: usize = self.rng.random_range(0..KEPT_BATCHES);
        if probe && !self.acked.is_empty() {
            return (self.acked[pick % self.acked.len()].clone(), Purpose::Probe);
        }
        let n = self.rng.random_range(1..=MAX_BATCH);
        let batch = (0..n).map(|_| self.next_task()).collect();
        (batch, Purpose::New)
    }

    fn next_task(&mut self) -> Planned {
        self.seq += 1;
        let key = format!("chaos-{:016x}-c{}-{}", self.seed, self.index, self.seq);
        let null = Bytes::from_static(b"null");
        let (request, expect) = match self.rng.random_range(0..10u8) {
            0..4 => (TaskRequest::new("noop"), null),
            4..8 => {
                // `echo` is raw: its result is exactly these bytes.
                let args = Bytes::from(format!(r#"{{"key":"{key}"}}"#));
                (TaskRequest::new("echo").args_json(args.clone()), args)
            }
            _ => {
                let ms: u64 = self.rng.random_range(0..=100);
                let args = format!(r#"{{"ms":{ms}}}"#);
                (TaskRequest::new("sleep").args_json(args), null)
            }
        };
        Planned {
            request: request.idempotency_key(key).max_retries(3),
            expect,
        }
    }
}

/// Records an acknowledged batch; ids not seen final yet join `outstanding`.
fn acknowledge(
    shared: &Mutex<Shared>,
    batch: &[Planned],
    ids: &[TaskId],
    outstanding: &mut BTreeSet<TaskId>,
) {
    let mut s = lock(shared);
    for (planned, id) in batch.iter().zip(ids) {
        let anomaly = s.history.acknowledged(*id, planned.request.key());
        s.note(anomaly);
        let anomaly = s.history.expect_result(*id, planned.expect.clone());
        s.note(anomaly);
        if !s.history.is_final(*id) {
            outstanding.insert(*id);
        }
    }
}

/// Waits up to `timeout` for the `outstanding` tasks, recording what comes back and removing
/// the ones seen final. A task's first final state seen before `progress_until` marks progress.
/// Returns the error the wait ended with, unless that was its own timeout.
async fn wait_for(
    client: &Client,
    shared: &Mutex<Shared>,
    outstanding: &mut BTreeSet<TaskId>,
    timeout: Duration,
    progress_until: Option<Instant>,
) -> Option<ClientError> {
    if outstanding.is_empty() {
        return None;
    }
    let ids: Vec<TaskId> = outstanding.iter().copied().collect();
    let mut results = pin!(client.wait_many(ids, timeout));
    while let Some(item) = results.next().await {
        match item {
            Ok(info) => {
                let now = Instant::now();
                let mut s = lock(shared);
                let completed = !s.history.is_final(info.id) && done(&info);
                let anomaly = s.history.observed(&info);
                s.note(anomaly);
                if info.state.is_final() {
                    outstanding.remove(&info.id);
                }
                if completed && progress_until.is_some_and(|until| now <= until) {
                    s.availability.progress(now);
                }
            }
            Err(ClientError::Timeout) => return None,
            Err(e) => return Some(e),
        }
    }
    None
}

/// Finished with a state the task really has (not "unknown id").
fn done(info: &TaskInfo) -> bool {
    info.state.is_final() && info.state != TaskState::NotFound
}

/// A client for the faulty phase: short request timeouts, so a call stuck on a frozen node
/// moves on to another node soon; retries bounded below the longest fault, so some submits
/// fail outright during a fault and the loop's own re-submit (same keys) is exercised too.
pub(crate) async fn faulty_phase_client(cluster: &Cluster, seed: u64) -> Result<Client, ChaosError> {
    Ok(cluster
        .client_builder(cluster.addrs())
        .map_err(ChaosError::Cluster)?
        .request_timeout(Duration::from_secs(1))
        .connect_timeout(Duration::from_millis(500))
        .retry_policy(RetryPolicy {
            max_elapsed: Duration::from_secs(2),
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(500),
        })
        .seed(seed)
        .build()
        .await?)
}

/// One client's loop over the faulty phase (see the module docs); ends at `until`, after the
/// call in flight.
pub(crate) async fn run_client(
    client: Client,
    mut state: ClientState,
    shared: std::sync::Arc<Mutex<Shared>>,
    until: Instant,
) -> ClientState {
    while Instant::now() < until {
        let (batch, purpose) = state.next_batch();
        let requests = batch.iter().map(|p| p.request.clone()).collect();
        match client.submit_batch(requests).await {
            Ok(submitted) => {
                let now = Instant::now();
                let ids: Vec<TaskId> = submitted.iter().map(|s| s.id).collect();
                acknowledge(&shared, &batch, &ids, &mut state.outstanding);
                let mut s = lock(&shared);
                s.counters.batches_acknowledged += 1;
                s.counters.duplicate_probes += usize::from(purpose == Purpose::Probe);
                if now <= until {
                    s.availability.progress(now);
                }
                drop(s);
                if purpose != Purpose::Probe {
                    if state.acked.len() == KEPT_BATCHES {
                        state.acked.remove(0);
                    }
                    state.acked.push(batch);
                }
            }
            Err(e) => {
                debug!(client = state.index, ?purpose, error = %e, "submit failed");
                let mut s = lock(&shared);
                s.counters.submit_errors += 1;
                s.counters.last_submit_error = Some(e.to_string());
                if purpose != Purpose::Probe {
                    state.unacked = Some(batch);
                }
            }
        }
        if let Some(e) = wait_for(&client, &shared, &mut state.outstanding, WAIT, Some(until)).await {
            debug!(client = state.index, error = %e, "wait failed");
            lock(&shared).counters.wait_errors += 1;
        }
    }
    state
}

/// The healed phase (every node runs again): submit each client's unacknowledged batch once
/// more, wait until `timeout` for every acknowledged task to be final, then read every
/// acknowledged task once more. Returns what went wrong beyond the history's own verdict.
pub(crate) async fn heal(
    client: &Client,
    states: Vec<ClientState>,
    shared: &Mutex<Shared>,
    timeout: Duration,
) -> Vec<String> {
    let mut violations = Vec::new();
    let deadline = Instant::now() + timeout;
    let mut outstanding = BTreeSet::new();
    for mut state in states {
        let Some(batch) = state.unacked.take() else {
            continue;
        };
        let requests = batch.iter().map(|p| p.request.clone()).collect();
        match tokio::time::timeout_at(deadline, client.submit_batch(requests)).await {
            Ok(Ok(submitted)) => {
                let ids: Vec<TaskId> = submitted.iter().map(|s| s.id).collect();
                acknowledge(shared, &batch, &ids, &mut outstanding);
            }
            Ok(Err(e)) => violations.push(format!("a batch could not be submitted after healing: {e}")),
            Err(_) => violations.push(format!(
                "a batch could not be submitted within {timeout:?} of healing"
            )),
        }
    }

    // Every client's outstanding tasks, and any acknowledged task not seen final since.
    outstanding.extend(lock(shared).history.unfinished());
    let left = deadline.saturating_duration_since(Instant::now());
    if let Some(e) = wait_for(client, shared, &mut outstanding, left, None).await {
        violations.push(format!("waiting for results after healing failed: {e}"));
    }

    // The last word on every task: a linearizable read, which also catches a final task that
    // went back to an earlier state (a wait would just wait for it to finish again).
    let ids = lock(shared).history.acknowledged_ids();
    let reads = futures::stream::iter(ids)
        .map(|id| async move { (id, client.get(id).await) })
        .buffer_unordered(READS_IN_FLIGHT)
        .collect::<Vec<_>>();
    match tokio::time::timeout(timeout, reads).await {
        Ok(reads) => {
            let mut failed = 0;
            let mut first = None;
            let mut s = lock(shared);
            for (id, read) in reads {
                match read {
                    Ok(info) => {
                        let anomaly = s.history.observed(&info);
                        s.note(anomaly);
                    }
                    Err(ClientError::NotFound(_)) => {
                        let anomaly = s.history.observed_not_found(id);
                        s.note(anomaly);
                    }
                    Err(e) => {
                        failed += 1;
                        first.get_or_insert(e.to_string());
                    }
                }
            }
            if let Some(first) = first {
                violations.push(format!(
                    "{failed} final reads failed after healing (first: {first})"
                ));
            }
        }
        Err(_) => violations.push(format!("the final reads did not finish within {timeout:?}")),
    }
    violations
}
