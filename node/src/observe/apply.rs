//! [`ApplyStats`]: per queue, the tasks submitted, how attempts ended, and histograms of queue
//! wait and run time, counted from the changes of task state each apply made
//! ([`crate::replica::ApplyWatcher`]). Every replica applies the same entries and measures in
//! log time, so every node reports the same cluster-wide figures. The hot path is a read lock
//! per queue per apply and atomic adds per task; rendering happens at scrape time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::RwLock;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::encoding::NoLabelSet;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use crate::queue::Change;
use crate::queue::TaskState;
use crate::queue::Why;
use crate::replica::ApplyWatcher;

/// Upper bounds of the task time buckets, in ms (log time has ms resolution): 1 ms to an hour.
pub const TASK_TIME_BUCKETS_MS: [u64; 18] = [
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000, 1_800_000,
    3_600_000,
];

/// How an attempt (or a task) ended, as the `outcome` label says it.
const OUTCOMES: [&str; 5] = ["succeeded", "retried", "dead", "cancelled", "released"];

/// A histogram of ms durations over [`TASK_TIME_BUCKETS_MS`], made of atomics.
#[derive(Debug, Default)]
pub struct AtomicHistogram {
    /// Per bucket (not cumulative); the last one is `+Inf`.
    buckets: [AtomicU64; TASK_TIME_BUCKETS_MS.len() + 1],
    sum_ms: AtomicU64,
    count: AtomicU64,
}

impl AtomicHistogram {
    pub fn observe_ms(&self, ms: u64) {
        let i = TASK_TIME_BUCKETS_MS.partition_point(|&bound| bound < ms);
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_ms.fetch_add(ms, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    /// `(sum in seconds, count, per-bucket (upper bound in seconds, count))`.
    fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let bounds = TASK_TIME_BUCKETS_MS
            .iter()
            .map(|&ms| ms as f64 / 1000.0)
            .chain(std::iter::once(f64::INFINITY));
        let buckets = bounds
            .zip(&self.buckets)
            .map(|(b, n)| (b, n.load(Relaxed)))
            .collect();
        let sum = self.sum_ms.load(Relaxed) as f64 / 1000.0;
        (sum, self.count.load(Relaxed), buckets)
    }
}

/// One queue's figures.
#[derive(Debug, Default)]
struct QueueStats {
    submitted: AtomicU64,
    /// Indexed like [`OUTCOMES`].
    outcomes: [AtomicU64; OUTCOMES.len()],
    wait: AtomicHistogram,
    run: AtomicHistogram,
}

impl QueueStats {
    fn count(&self, change: &Change) {
        if change.why == Why::Progress {
            return;
        }
        let Some(from) = change.from else {
            self.submitted.fetch_add(1, Relaxed);
            return;
        };
        if change.to == TaskState::Leased {
            self.wait.observe_ms(change.after_ms);
            return;
        }
        let outcome = match (from, change.to) {
            (_, TaskState::Succeeded) => 0,
            (_, TaskState::Retrying) => 1,
            // A failed attempt retried with no delay.
            (TaskState::Leased, TaskState::Pending) if change.why == Why::Retry => 1,
            (_, TaskState::Dead) => 2,
            (_, TaskState::Cancelled) => 3,
            // A lease handed back (released, or expired with its worker).
            (TaskState::Leased, TaskState::Pending) => 4,
            _ => return,
        };
        self.outcomes[outcome].fetch_add(1, Relaxed);
        // A run is an attempt that ended with a result or a failure.
        if from == TaskState::Leased && outcome <= 2 {
            self.run.observe_ms(change.after_ms);
        }
    }
}

/// Per queue figures from the applied log. Register it as a collector and as the replica's
/// apply watcher.
#[derive(Debug, Default)]
pub struct ApplyStats {
    queues: RwLock<BTreeMap<Box<str>, Arc<QueueStats>>>,
}

impl ApplyStats {
    fn queue(&self, name: &str) -> Arc<QueueStats> {
        if let Some(q) = self.queues.read().unwrap_or_else(|e| e.into_inner()).get(name) {
            return q.clone();
        }
        let mut queues = self.queues.write().unwrap_or_else(|e| e.into_inner());
        queues.entry(name.into()).or_default().clone()
    }
}

impl ApplyWatcher for ApplyStats {
    fn changed(&self, queue: &str, changes: &[Change]) {
        let q = self.queue(queue);
        for change in changes {
            q.count(change);
        }
    }
}

impl Collector for ApplyStats {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let queues: Vec<(Box<str>, Arc<QueueStats>)> = self
            .queues
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut metric = encoder.encode_descriptor(
            "flotilla_tasks_submitted",
            "Tasks submitted (created; a duplicate idempotency key creates none), per queue",
            None,
            MetricType::Counter,
        )?;
        for (queue, q) in &queues {
            let labels = [("queue", &**queue)];
            let n = q.submitted.load(Relaxed);
            metric
                .encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
        }
        let mut metric = encoder.encode_descriptor(
            "flotilla_tasks_finished",
            "Attempts or tasks that ended, per queue and outcome (succeeded, retried, dead, cancelled, released: a lease handed back or expired)",
            None,
            MetricType::Counter,
        )?;
        for (queue, q) in &queues {
            for (outcome, n) in OUTCOMES.iter().zip(&q.outcomes) {
                let labels = [("queue", &**queue), ("outcome", outcome)];
                metric
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(&n.load(Relaxed), None)?;
            }
        }
        for (name, help, pick) in [
            (
                "flotilla_task_wait",
                "Time a task waited pending before a worker leased it, in log time, per queue",
                (|q: &QueueStats| &q.wait) as fn(&QueueStats) -> &AtomicHistogram,
            ),
            (
                "flotilla_task_run",
                "Time from lease to result or failure of an attempt, in log time, per queue",
                |q: &QueueStats| &q.run,
            ),
        ] {
            let mut metric =
                encoder.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
            for (queue, q) in &queues {
                let (sum, count, buckets) = pick(q).snapshot();
                let labels = [("queue", &**queue)];
                metric
                    .encode_family(&labels)?
                    .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(from: Option<TaskState>, to: TaskState, after_ms: u64) -> Change {
        Change {
            from,
            to,
            after_ms,
            id: 1,
            attempt: 0,
            why: Why::Plain,
        }
    }

    #[test]
    fn a_duration_lands_in_the_first_bucket_that_holds_it() {
        let h = AtomicHistogram::default();
        for ms in [0, 1, 2, 3, 3_600_000, 3_600_001] {
            h.observe_ms(ms);
        }
        let (sum, count, buckets) = h.snapshot();
        assert_eq!(count, 6);
        assert!((sum - 7_200_007.0 / 1000.0).abs() < 1e-9);
        assert_eq!(buckets[0], (0.001, 2), "0 and 1 ms are within le=0.001");
        assert_eq!(buckets[1], (0.002, 1));
        assert_eq!(buckets[2], (0.005, 1));
        assert_eq!(buckets[17], (3600.0, 1));
        assert_eq!(buckets[18], (f64::INFINITY, 1), "past the last bound: +Inf");
    }

    #[test]
    fn changes_count_submits_outcomes_and_times() {
        let s = ApplyStats::default();
        use TaskState::*;
        s.changed(
            "q",
            &[
                change(None, Pending, 0),
                change(None, Scheduled, 0),
                change(Some(Pending), Leased, 40),
                change(Some(Leased), Succeeded, 7),
                change(Some(Leased), Retrying, 9),
                change(Some(Leased), Pending, 30_000),
                change(Some(Pending), Cancelled, 1),
                change(Some(Scheduled), Pending, 5),
            ],
        );
        let q = s.queue("q");
        assert_eq!(q.submitted.load(Relaxed), 2);
        let outcomes: Vec<u64> = q.outcomes.iter().map(|n| n.load(Relaxed)).collect();
        assert_eq!(outcomes, vec![1, 1, 0, 1, 1]);
        assert_eq!(q.wait.snapshot().1, 1);
        assert_eq!(q.run.snapshot().1, 2, "released leases are not runs");
        assert_eq!(q.run.snapshot().0, 0.016);
    }
}
