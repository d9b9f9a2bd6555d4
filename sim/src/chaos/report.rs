//! [`ChaosReport`]: the outcome of a `sim chaos` run, as JSON (serde) or text.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::ChaosOptions;
use super::failovers::{FailoverSample, FailoverSummary};
use super::faults::{FaultEvent, FaultKind, FaultLog};
use super::net::NetReport;
use super::workload::{Counters, TimedAnomaly};
use crate::bench::report::Environment;
use crate::history::Verdict;

/// The outcome of a chaos run. The top-level counts repeat the [`Verdict`]'s so that scripts
/// read plain numbers; `verdict` has the example ids.
#[derive(Clone, Debug, Serialize)]
pub struct ChaosReport {
    pub seed: u64,
    pub nodes: usize,
    /// Length of the faulty phase, in seconds.
    pub duration_s: f64,
    pub clients: usize,
    pub workers_per_node: usize,
    pub lease_ms: u64,
    /// Further flags every node ran with (on a WAN, the Raft timeouts its round trip needs).
    pub node_args: Vec<String>,
    /// Distinct tasks acknowledged.
    pub acknowledged: usize,
    pub succeeded: usize,
    pub dead: usize,
    pub cancelled: usize,
    pub lost: usize,
    pub duplicate_results: usize,
    pub wrong_results: usize,
    pub key_conflicts: usize,
    pub not_final: usize,
    /// Longest stretch of the faulty phase with no submit acknowledged and no task seen final.
    pub max_unavailable_s: f64,
    pub kills: usize,
    pub stops: usize,
    /// Every kind of fault made, with how many (crashes included).
    pub faults_by_kind: BTreeMap<FaultKind, usize>,
    /// Faults that hit the node believed to lead.
    pub leader_faults: usize,
    /// The figures of the failovers measured after faults that took the leader away.
    pub failover: FailoverSummary,
    pub clients_did: Counters,
    /// How long the healed phase took.
    pub heal_s: f64,
    /// The whole run, cluster start included.
    pub elapsed_s: f64,
    /// Every violated property; empty on success.
    pub violations: Vec<String>,
    /// The command line that reruns this seed (`sim` stands for the executable's path until
    /// the command line fills it in).
    pub rerun: String,
    pub verdict: Verdict,
    pub faults: Vec<FaultEvent>,
    /// Each failover measured.
    pub failovers: Vec<FailoverSample>,
    /// The network of a `--net` run: zones, round trips, frames switched.
    pub net: Option<NetReport>,
    /// The first anomalies, timed like the faults, in the order clients saw them.
    pub anomalies: Vec<TimedAnomaly>,
    /// Where the nodes' data and logs were kept, when a violation was found.
    pub kept_dir: Option<String>,
    #[serde(flatten)]
    pub env: Environment,
}

impl ChaosReport {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        opts: &ChaosOptions,
        verdict: Verdict,
        faults: &FaultLog,
        counters: &Counters,
        anomalies: &[TimedAnomaly],
        max_unavailable: std::time::Duration,
        heal_s: f64,
        elapsed_s: f64,
        violations: Vec<String>,
        env: Environment,
    ) -> ChaosReport {
        ChaosReport {
            seed: opts.seed,
            nodes: opts.nodes,
            duration_s: opts.duration.as_secs_f64(),
            clients: opts.clients,
            workers_per_node: opts.workers,
            lease_ms: opts.lease_ms,
            node_args: opts.effective_node_args(),
            acknowledged: verdict.acknowledged,
            succeeded: verdict.succeeded,
            dead: verdict.dead,
            cancelled: verdict.cancelled,
            lost: verdict.lost.count,
            duplicate_results: verdict.duplicate_results.count,
            wrong_results: verdict.wrong_results.count,
            key_conflicts: verdict.key_conflicts.count,
            not_final: verdict.not_final.count,
            max_unavailable_s: max_unavailable.as_secs_f64(),
            kills: faults.count(FaultKind::Kill),
            stops: faults.count(FaultKind::Stop),
            faults_by_kind: faults.by_kind.clone(),
            leader_faults: faults.leader_faults,
            failover: FailoverSummary::of(&faults.failovers),
            clients_did: counters.clone(),
            heal_s,
            elapsed_s,
            violations,
            rerun: format!("sim chaos {}", opts.rerun_args().join(" ")),
            verdict,
            faults: faults.events.clone(),
            failovers: faults.failovers.clone(),
            net: None,
            anomalies: anomalies.to_vec(),
            kept_dir: None,
            env,
        }
    }

    /// True when no property was violated.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// The report as text for a terminal.
    pub fn human(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "sim chaos: seed {}, {} nodes ({} workers each, lease {} ms), {} clients, {:.0} s of faults",
            self.seed, self.nodes, self.workers_per_node, self.lease_ms, self.clients, self.duration_s
        );
        if let Some(net) = &self.net {
            let t = &net.topology;
            let _ = writeln!(
                s,
                "network:   {} zones (node zones {:?}), round trips between zones {:?} ms; frames: {} at once, \
                 {} delayed, {} cut, {} lost",
                t.rtt_ms.len(),
                t.zone_of,
                t.rtt_ms,
                net.frames.delivered_at_once,
                net.frames.delayed,
                net.frames.cut,
                net.frames.lost
            );
        }
        if !self.node_args.is_empty() {
            let _ = writeln!(s, "nodes ran: {}", self.node_args.join(" "));
        }
        let kinds: Vec<String> = self
            .faults_by_kind
            .iter()
            .map(|(k, n)| format!("{n} {}", k.name()))
            .collect();
        let _ = writeln!(
            s,
            "faults:    {} ({} on the leader)",
            kinds.join(", "),
            self.leader_faults
        );
        let f = &self.failover;
        let figures = |p: &Option<crate::bench::load::Percentiles>| {
            p.as_ref().map_or("-".to_owned(), |p| {
                format!("p50 {:.0} ms, max {:.0} ms", p.p50, p.max)
            })
        };
        let _ = writeln!(
            s,
            "failover:  {} leader faults measured, {} elections; new leader {}; first commit {}",
            f.measured,
            f.elections,
            figures(&f.new_leader_ms),
            figures(&f.first_commit_ms)
        );
        let c = &self.clients_did;
        let _ = writeln!(
            s,
            "clients:   {} batches acknowledged, {} submit errors (batch retried, same keys), {} duplicate \
             probes, {} wait errors",
            c.batches_acknowledged, c.submit_errors, c.duplicate_probes, c.wait_errors
        );
        let _ = writeln!(
            s,
            "tasks:     {} acknowledged: {} succeeded, {} dead, {} cancelled, {} not final",
            self.acknowledged, self.succeeded, self.dead, self.cancelled, self.not_final
        );
        let _ = writeln!(
            s,
            "checks:    {} lost, {} duplicate results, {} wrong results, {} key conflicts",
            self.lost, self.duplicate_results, self.wrong_results, self.key_conflicts
        );
        let _ = writeln!(
            s,
            "available: longest stretch without progress {:.2} s; healed phase {:.1} s; run {:.1} s",
            self.max_unavailable_s, self.heal_s, self.elapsed_s
        );
        let _ = writeln!(s, "machine:   {}", self.env.describe());
        if self.violations.is_empty() {
            let _ = writeln!(s, "verdict:   ok, no violation");
        } else {
            let _ = writeln!(s, "verdict:   {} violation(s):", self.violations.len());
            for v in &self.violations {
                let _ = writeln!(s, "  - {v}");
            }
            for a in &self.anomalies {
                let _ = writeln!(s, "  at {:6.2} s: {}", a.at_s, a.what);
            }
            let faults: Vec<String> = self
                .faults
                .iter()
                .map(|f| format!("{:.2} s {} node {}", f.at_s, f.kind.name(), f.node))
                .collect();
            let _ = writeln!(s, "faults at:  {}", faults.join("; "));
            if let Some(dir) = &self.kept_dir {
                let _ = writeln!(s, "kept:      node data and logs in {dir}");
            }
            let _ = writeln!(s, "rerun:     {}", self.rerun);
        }
        s
    }
}
