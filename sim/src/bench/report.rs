//! The reports of `sim bench`: serialized as one JSON object (`--json`) or printed as text.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use serde::Serialize;

use super::load::{OpenLoop, Outcomes, Percentiles, percentiles};
use super::procfs::ProcSample;
use super::{BenchOptions, Sample};

/// Figures of the throughput scenario.
#[derive(Clone, Debug, Serialize)]
pub struct ThroughputReport {
    pub scenario: &'static str,
    pub tasks: usize,
    pub clients: usize,
    pub batch: usize,
    pub in_flight: usize,
    pub node_count: usize,
    pub workers_per_node: usize,
    /// Rust remote worker sessions per node running the tasks (0: the in-process pool).
    pub remote_workers_per_node: usize,
    /// Tasks acknowledged per second, against a node without workers.
    pub submit_tasks_per_s: f64,
    /// Tasks succeeded per second, first submit to last result.
    pub e2e_tasks_per_s: f64,
    /// Latency percentiles of the open-loop run (`None` when no task succeeded).
    pub latency_ms: Option<Percentiles>,
    pub latency: LatencyFigures,
    /// Tasks of the end-to-end and latency phases that did not succeed (non-zero: exit 1).
    pub failed: usize,
    pub e2e_outcomes: Outcomes,
    pub first_problem: Option<String>,
    /// Per node of the end-to-end cluster, at its end: CPU seconds over its whole life, peak RSS.
    pub nodes: Vec<NodeFigures>,
    pub phases: Phases,
    #[serde(flatten)]
    pub env: Environment,
}

/// Per-phase figures.
#[derive(Clone, Debug, Serialize)]
pub struct Phases {
    pub submit: Phase,
    pub e2e: Phase,
    pub latency: Phase,
}

/// One phase: its length, and the CPU each node and the load generator spent in it.
#[derive(Clone, Debug, Serialize)]
pub struct Phase {
    pub elapsed_s: f64,
    /// CPU seconds spent in this phase and peak RSS at its end, per node.
    pub nodes: Vec<NodeFigures>,
    /// CPU seconds of the load generator (this process) in this phase.
    pub bench_cpu_s: f64,
    /// Log entries committed in this phase (the commit index's advance, as one node saw it):
    /// tasks per entry is what a node's CPU per task follows (docs/BENCHMARKS.md).
    pub entries: Option<u64>,
}

impl Phase {
    pub(crate) fn new(elapsed: std::time::Duration, before: &Sample, after: &Sample) -> Phase {
        Phase {
            elapsed_s: elapsed.as_secs_f64(),
            nodes: before
                .nodes
                .iter()
                .zip(&after.nodes)
                .map(|(b, a)| NodeFigures {
                    cpu_s: a.cpu_s - b.cpu_s,
                    peak_rss_bytes: a.peak_rss_bytes,
                    rss_bytes: a.rss_bytes,
                })
                .collect(),
            bench_cpu_s: after.this.cpu_s - before.this.cpu_s,
            entries: None,
        }
    }

    /// With the commit indexes read before and after the phase (`None` if either read failed).
    pub(crate) fn with_entries(mut self, before: Option<u64>, after: Option<u64>) -> Phase {
        self.entries = before.zip(after).map(|(b, a)| a.saturating_sub(b));
        self
    }
}

/// CPU and memory of one node.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct NodeFigures {
    pub cpu_s: f64,
    pub peak_rss_bytes: u64,
    pub rss_bytes: u64,
}

impl NodeFigures {
    pub(crate) fn list(samples: &[ProcSample]) -> Vec<NodeFigures> {
        samples
            .iter()
            .map(|s| NodeFigures {
                cpu_s: s.cpu_s,
                peak_rss_bytes: s.peak_rss_bytes,
                rss_bytes: s.rss_bytes,
            })
            .collect()
    }
}

/// The open-loop latency run.
#[derive(Clone, Debug, Serialize)]
pub struct LatencyFigures {
    pub rate_per_s: f64,
    pub duration_s: f64,
    pub sent: usize,
    pub succeeded: usize,
    pub failed: usize,
    /// Largest lag of a submit behind its scheduled time.
    pub max_start_lag_ms: f64,
    /// Submit start → submit acknowledged, of the tasks that succeeded: the share of
    /// `latency_ms` spent before the task could be leased.
    pub submit_ack_ms: Option<Percentiles>,
    /// Submit committed → result committed, from the task's own timestamps (the leader's
    /// clock, whole milliseconds): the share of `latency_ms` spent inside the cluster.
    pub in_cluster_ms: Option<Percentiles>,
    #[serde(skip)]
    pub percentiles: Option<Percentiles>,
}

impl LatencyFigures {
    pub(crate) fn new(opts: &BenchOptions, run: &OpenLoop) -> LatencyFigures {
        LatencyFigures {
            rate_per_s: opts.latency_rate,
            duration_s: opts.latency_s,
            sent: run.sent,
            succeeded: run.outcomes.succeeded,
            failed: run.outcomes.not_succeeded(),
            max_start_lag_ms: run.max_start_lag.as_secs_f64() * 1000.0,
            submit_ack_ms: percentiles(run.submit_acks.clone()),
            in_cluster_ms: percentiles(run.in_cluster.clone()),
            percentiles: percentiles(run.latencies.clone()),
        }
    }
}

/// Figures of the backlog scenario.
#[derive(Clone, Debug, Serialize)]
pub struct BacklogReport {
    pub scenario: &'static str,
    pub tasks: usize,
    pub clients: usize,
    pub batch: usize,
    /// VmRSS of the node once it leads, before any task.
    pub rss_before_bytes: u64,
    /// VmRSS once every task is acknowledged.
    pub rss_after_bytes: u64,
    /// VmHWM once every task is acknowledged.
    pub peak_rss_bytes: u64,
    /// (rss_after − rss_before) / tasks; payloads are empty, so this is all overhead.
    pub bytes_per_pending_task: f64,
    pub submit_tasks_per_s: f64,
    /// SIGKILL, then spawn → the first `stats()` reply.
    pub restart_to_serving_ms: f64,
    /// Pending count in that first reply.
    pub pending_at_first_reply: u64,
    /// Spawn → the first `stats()` reply that counts every task pending.
    pub restart_to_all_pending_ms: f64,
    pub pending_after_restart: u64,
    /// The restarted node once it counts every task: CPU seconds since the restart, RSS.
    pub restarted_node: NodeFigures,
    #[serde(flatten)]
    pub env: Environment,
}

/// Where the figures were taken.
#[derive(Clone, Debug, Serialize)]
pub struct Environment {
    pub machine: Machine,
    /// `git rev-parse HEAD` in the directory of the running executable, when it works.
    pub git_commit: Option<String>,
    /// Whether that work tree had uncommitted changes.
    pub git_dirty: Option<bool>,
    pub node_bin: String,
    /// Profile the load generator was built with ("release" or "debug").
    pub sim_profile: &'static str,
    /// When the run started, seconds since the Unix epoch.
    pub started_unix_s: u64,
}

/// The machine the run was on.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub mem_total_bytes: Option<u64>,
    pub kernel: Option<String>,
}

impl Environment {
    pub fn detect(node_bin: &Path) -> Environment {
        let exe_dir = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf));
        let git = |args: &[&str]| -> Option<String> {
            let out = Command::new("git")
                .arg("-C")
                .arg(exe_dir.as_deref()?)
                .args(args)
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        };
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Environment {
            machine: Machine {
                cores: super::cores(),
                mem_total_bytes: super::procfs::parse_status_kib(&meminfo, "MemTotal:").map(|k| k * 1024),
                kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                    .ok()
                    .map(|s| s.trim().to_owned()),
            },
            git_commit: git(&["rev-parse", "HEAD"]),
            git_dirty: git(&["status", "--porcelain", "--untracked-files=no"]).map(|s| !s.is_empty()),
            node_bin: node_bin.display().to_string(),
            sim_profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            started_unix_s: unix_now_s(),
        }
    }

    /// One line: cores, memory, kernel, commit, profile.
    pub(crate) fn describe(&self) -> String {
        let mut s = format!("{} cores", self.machine.cores);
        if let Some(m) = self.machine.mem_total_bytes {
            let _ = write!(s, ", {:.1} GiB", m as f64 / GIB);
        }
        if let Some(k) = &self.machine.kernel {
            let _ = write!(s, ", Linux {k}");
        }
        let commit = self.git_commit.as_deref().unwrap_or("unknown");
        let dirty = if self.git_dirty == Some(true) {
            " (dirty)"
        } else {
            ""
        };
        let _ = write!(s, "; commit {commit}{dirty}; sim built {}", self.sim_profile);
        s
    }
}

// A report is stamped with the wall-clock time it was taken at; nothing replays it.
#[allow(clippy::disallowed_methods)]
fn unix_now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = 1024.0 * MIB;

impl ThroughputReport {
    /// The report as text for a terminal.
    pub fn human(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "sim bench: {} node(s), {} workers each, {} tasks, {} clients, batch {}, {} in flight",
            self.node_count, self.workers_per_node, self.tasks, self.clients, self.batch, self.in_flight
        );
        if self.remote_workers_per_node > 0 {
            let n = self.remote_workers_per_node;
            let _ = writeln!(
                s,
                "  tasks run by {n} remote worker session(s) per node (worker stream)"
            );
        }
        let _ = writeln!(s, "  {}", self.env.describe());
        let _ = writeln!(
            s,
            "submit      {:>12.0} tasks/s   ({:.2} s)",
            self.submit_tasks_per_s, self.phases.submit.elapsed_s
        );
        let _ = writeln!(
            s,
            "end-to-end  {:>12.0} tasks/s   ({:.2} s, {} succeeded, {} failed, {} unfinished)",
            self.e2e_tasks_per_s,
            self.phases.e2e.elapsed_s,
            self.e2e_outcomes.succeeded,
            self.e2e_outcomes.failed,
            self.e2e_outcomes.unfinished
        );
        match &self.latency_ms {
            Some(p) => {
                let _ = writeln!(
                    s,
                    "latency     p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms  \
                     ({} of {} tasks at {}/s; start lag ≤ {:.2} ms)",
                    p.p50,
                    p.p90,
                    p.p99,
                    p.max,
                    self.latency.succeeded,
                    self.latency.sent,
                    self.latency.rate_per_s,
                    self.latency.max_start_lag_ms
                );
            }
            None => {
                let _ = writeln!(s, "latency     no task succeeded");
            }
        }
        if let Some(p) = &self.latency.submit_ack_ms {
            let _ = writeln!(
                s,
                "  of which submit → ack: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
                p.p50, p.p99, p.max
            );
        }
        if let Some(p) = &self.latency.in_cluster_ms {
            let _ = writeln!(
                s,
                "  submit entry → result entry (leader clock, whole ms): p50 {:.0} ms  p99 {:.0} ms  max {:.0} ms",
                p.p50, p.p99, p.max
            );
        }
        for (name, phase) in [
            ("submit", &self.phases.submit),
            ("e2e", &self.phases.e2e),
            ("latency", &self.phases.latency),
        ] {
            for (i, n) in phase.nodes.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "  {name:<8} node {}: cpu {:.2} s, peak rss {:.1} MiB; load generator cpu {:.2} s",
                    i + 1,
                    n.cpu_s,
                    n.peak_rss_bytes as f64 / MIB,
                    phase.bench_cpu_s
                );
            }
        }
        if self.failed > 0 {
            let _ = writeln!(
                s,
                "FAILED: {} tasks did not succeed; first: {}",
                self.failed,
                self.first_problem.as_deref().unwrap_or("?")
            );
        }
        s
    }
}

impl BacklogReport {
    /// The report as text for a terminal.
    pub fn human(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "sim bench --scenario backlog: {} pending tasks (empty args), {} clients, batch {}",
            self.tasks, self.clients, self.batch
        );
        let _ = writeln!(s, "  {}", self.env.describe());
        let _ = writeln!(
            s,
            "memory      {:.1} bytes per pending task   (rss {:.1} → {:.1} MiB, peak {:.1} MiB)",
            self.bytes_per_pending_task,
            self.rss_before_bytes as f64 / MIB,
            self.rss_after_bytes as f64 / MIB,
            self.peak_rss_bytes as f64 / MIB
        );
        let _ = writeln!(s, "enqueue     {:.0} tasks/s", self.submit_tasks_per_s);
        let _ = writeln!(
            s,
            "restart     {:.0} ms to serving ({} pending in its first reply), {:.0} ms to all {} pending",
            self.restart_to_serving_ms,
            self.pending_at_first_reply,
            self.restart_to_all_pending_ms,
            self.pending_after_restart
        );
        s
    }
}
