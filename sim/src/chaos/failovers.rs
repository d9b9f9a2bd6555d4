//! Failover under the faults of `sim chaos`: when a fault takes the leader away (a kill, a
//! freeze, a partition of it or of its zone, a one-way cut), a probe measures from the fault
//!
//! - `new_leader_ms`: until a node outside the fault reports a leader of a later term;
//! - `first_commit_ms`: until a task submitted through those nodes is acknowledged (committed
//!   by a majority), the probe submitting from the moment the new leader is known.
//!
//! A fault that ends before any election (a freeze shorter than the election timeout) is
//! recorded without figures. Statuses are polled every [`POLL`], so a figure is late by up to
//! that much plus one status call; under `--net` the probe's own calls are not delayed (the
//! clients' port is never faulted), so the figures are the cluster's.

use std::time::Duration;

use flotilla_client::{Client, RetryPolicy, TaskRequest};
use serde::Serialize;
use tokio::time::Instant;

use super::faults::FaultKind;
use crate::bench::cluster::Cluster;
use crate::bench::load::{Percentiles, percentiles};

/// How often the probe asks the surviving nodes for their status.
pub const POLL: Duration = Duration::from_millis(10);
/// How long the probe looks for a new leader after a kill's restart, and for a first commit
/// after the new leader: far above any healthy failover, so only a stuck cluster hits it.
const PATIENCE: Duration = Duration::from_secs(15);
/// A fault that is not a kill may end before an election; one begun just before is waited for
/// this much longer.
const AFTER_HEAL: Duration = Duration::from_secs(1);

/// One failover, measured.
#[derive(Clone, Debug, Serialize)]
pub struct FailoverSample {
    /// Seconds since the faulty phase began.
    pub at_s: f64,
    /// The leader the fault hit.
    pub node: usize,
    pub kind: FaultKind,
    /// From the fault until a surviving node reports a leader of a later term (`None`: no
    /// election before the fault ended, or none within the patience).
    pub new_leader_ms: Option<f64>,
    /// From the fault until a task submitted through the surviving nodes was acknowledged.
    pub first_commit_ms: Option<f64>,
}

/// The figures of the failovers that happened.
#[derive(Clone, Debug, Serialize)]
pub struct FailoverSummary {
    /// Leader faults measured.
    pub measured: usize,
    /// Of which ended in an election.
    pub elections: usize,
    pub new_leader_ms: Option<Percentiles>,
    pub first_commit_ms: Option<Percentiles>,
}

impl FailoverSummary {
    pub fn of(samples: &[FailoverSample]) -> FailoverSummary {
        let ms = |v: f64| Duration::from_secs_f64(v / 1000.0);
        FailoverSummary {
            measured: samples.len(),
            elections: samples.iter().filter(|s| s.new_leader_ms.is_some()).count(),
            new_leader_ms: percentiles(samples.iter().filter_map(|s| s.new_leader_ms).map(ms).collect()),
            first_commit_ms: percentiles(samples.iter().filter_map(|s| s.first_commit_ms).map(ms).collect()),
        }
    }
}

/// A probe, ready to run: everything it needs is taken before the fault loop moves on.
pub struct Probe {
    sample: FailoverSample,
    at: Instant,
    term: u64,
    /// One client per surviving node, for status calls.
    statuses: Vec<Client>,
    /// A client of the surviving nodes, for the probe task.
    submit: Client,
    /// Give up looking for a new leader then.
    leader_deadline: Instant,
    key: String,
}

impl Probe {
    /// A probe of the fault `kind` made at `at` (`at_s` into the faulty phase) on leader
    /// `victim` of term `term`, which ends at `heal_at`; `victims` are all the nodes it hit.
    #[allow(clippy::too_many_arguments)]
    pub async fn new(
        cluster: &Cluster,
        kind: FaultKind,
        victim: usize,
        victims: &[usize],
        term: u64,
        at: Instant,
        at_s: f64,
        heal_at: Instant,
        key: String,
    ) -> anyhow::Result<Probe> {
        let survivors: Vec<String> = cluster
            .addrs()
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !victims.contains(i))
            .map(|(_, a)| a)
            .collect();
        let mut statuses = Vec::with_capacity(survivors.len());
        for addr in &survivors {
            statuses.push(
                cluster
                    .client_builder(vec![addr.clone()])?
                    .request_timeout(Duration::from_millis(300))
                    .connect_timeout(Duration::from_millis(300))
                    .retry_policy(RetryPolicy::never())
                    .build()
                    .await?,
            );
        }
        let submit = cluster
            .client_builder(survivors)?
            .request_timeout(Duration::from_secs(1))
            .connect_timeout(Duration::from_millis(500))
            .retry_policy(RetryPolicy {
                max_elapsed: Duration::from_secs(2),
                initial_backoff: Duration::from_millis(5),
                max_backoff: Duration::from_millis(50),
            })
            .build()
            .await?;
        let leader_deadline = match kind {
            FaultKind::Kill => heal_at + PATIENCE,
            _ => heal_at + AFTER_HEAL,
        };
        Ok(Probe {
            sample: FailoverSample {
                at_s,
                node: victim,
                kind,
                new_leader_ms: None,
                first_commit_ms: None,
            },
            at,
            term,
            statuses,
            submit,
            leader_deadline,
            key,
        })
    }

    /// Measures (see the module docs); bounded by the deadlines.
    pub async fn run(mut self) -> FailoverSample {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let Some(elected) = self.new_leader().await else {
            return self.sample;
        };
        self.sample.new_leader_ms = Some(ms(elected - self.at));
        let deadline = elected + PATIENCE;
        let task = TaskRequest::new("noop").idempotency_key(self.key.clone());
        while Instant::now() < deadline {
            if self.submit.submit(task.clone()).await.is_ok() {
                self.sample.first_commit_ms = Some(ms(self.at.elapsed()));
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        self.sample
    }

    /// When a surviving node first reported a leader of a later term.
    async fn new_leader(&self) -> Option<Instant> {
        while Instant::now() < self.leader_deadline {
            let polled = futures::future::join_all(self.statuses.iter().map(Client::status)).await;
            if polled
                .iter()
                .flatten()
                .any(|s| s.term > self.term && s.leader_id.is_some())
            {
                return Some(Instant::now());
            }
            tokio::time::sleep(POLL).await;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_counts_elections_and_leaves_out_faults_without_one() {
        let sample = |leader: Option<f64>, commit: Option<f64>| FailoverSample {
            at_s: 1.0,
            node: 0,
            kind: FaultKind::Kill,
            new_leader_ms: leader,
            first_commit_ms: commit,
        };
        let s = FailoverSummary::of(&[
            sample(Some(300.0), Some(350.0)),
            sample(None, None),
            sample(Some(500.0), Some(650.0)),
        ]);
        assert_eq!((s.measured, s.elections), (3, 2));
        let leader = s.new_leader_ms.expect("percentiles");
        let near = |a: f64, b: f64| (a - b).abs() < 1e-6;
        assert!(near(leader.p50, 300.0) && near(leader.max, 500.0), "{leader:?}");
        assert!(near(s.first_commit_ms.expect("percentiles").max, 650.0));
        assert!(FailoverSummary::of(&[]).new_leader_ms.is_none());
    }
}
