//! Runs ending and what the pool owes for them: a finished run's completion, an aborted
//! one's release, its run time for the lease-ahead rule; the heartbeat that extends every
//! lease held, and a lease the log refused to extend (lost); the log's answer to completions.

use tracing::debug;
use tracing::warn;

use super::Acked;
use super::Decision;
use super::PoolCore;
use super::Proposal;
use super::RunResult;
use super::Sent;
use crate::queue::Completion;
use crate::queue::CompletionResult;
use crate::queue::LeaseRef;
use crate::queue::ops;

impl PoolCore {
    /// A run ended (exactly once per [`Decision::Run`]).
    pub fn finished(&mut self, lease: LeaseRef, result: RunResult) {
        self.finished_all([(lease, result)]);
    }

    /// Runs ended together (a remote worker's batch of results): one decision round, so their
    /// completions go out in one entry instead of one entry each.
    pub fn finished_all(&mut self, runs: impl IntoIterator<Item = (LeaseRef, RunResult)>) {
        for (lease, result) in runs {
            self.end_run(lease, result);
        }
        self.settle();
    }

    fn end_run(&mut self, lease: LeaseRef, result: RunResult) {
        if let Some(run) = self.running.remove(&lease) {
            self.runs_ended += 1;
            if matches!(result, RunResult::Finished(_)) && !run.aborted {
                self.pacer.ran(self.now.saturating_sub(run.started));
            }
        } else if self.unqueue(lease, &result) {
            // Given back unstarted, or (finished) started before the core counted it.
            if matches!(result, RunResult::Finished(_)) {
                self.runs_ended += 1;
            }
        } else {
            warn!(
                task = lease.task,
                attempt = lease.attempt,
                "a run that was not running ended"
            );
            return;
        }
        let report = self.drain.as_mut().map(|d| &mut d.report);
        match result {
            _ if self.lost.remove(&lease) => {
                // Someone else may hold it now; a completion or release would be stale anyway.
                debug!(
                    task = lease.task,
                    attempt = lease.attempt,
                    "dropped the result of a lost lease"
                );
            }
            RunResult::Finished(outcome) => {
                match outcome.failure() {
                    None => self.stats.succeeded_total += 1,
                    Some((error, retry)) => {
                        self.stats.failed_total += 1;
                        debug!(task = lease.task, attempt = lease.attempt, %error, retry, "task failed");
                    }
                }
                if let Some(r) = report {
                    r.finished += 1;
                }
                self.outbox.completions.push(Completion { lease, outcome });
            }
            RunResult::Aborted => {
                if let Some(r) = report {
                    r.aborted += 1;
                }
                self.outbox.releases.push(lease);
            }
        }
    }

    /// Extend every lease held (running, buffered or queued) in one command.
    pub(super) fn heartbeat(&mut self) {
        if self.outbox.heartbeat_in_flight() {
            return;
        }
        let leases: Vec<LeaseRef> = self
            .running
            .keys()
            .filter(|l| !self.lost.contains(l))
            .copied()
            .chain(self.buffered.iter().map(|b| b.grant.lease))
            .chain(self.queued_leases())
            .collect();
        if leases.is_empty() {
            return;
        }
        let op = ops::Heartbeat {
            pool: self.cfg.pool.clone(),
            leases: leases.clone(),
            lease_ms: self.cfg.lease_ms,
        };
        self.propose(Sent::Heartbeat(leases), Proposal::Heartbeat(op));
    }

    pub(super) fn completed(&mut self, batch: &[Completion], results: &[CompletionResult]) {
        let stale = results.iter().filter(|r| **r == CompletionResult::Stale).count();
        self.stats.stale_total += stale as u64;
        if stale > 0 {
            debug!(stale, "stale completions ignored by the queue");
        }
        self.stats.completed_total += batch.len() as u64;
        if self.acks {
            let acks = batch.iter().zip(results);
            let acks = acks.map(|(c, r)| (c.lease, Acked::Completed(*r)));
            self.out.push_back(Decision::Acked(acks.collect()));
        }
    }

    /// The log refused to extend `lease` (it expired, or the task is gone): stop working on it.
    pub(super) fn lease_lost(&mut self, lease: LeaseRef) {
        if let Some(running) = self.running.get_mut(&lease) {
            warn!(
                task = lease.task,
                attempt = lease.attempt,
                "lease lost; aborting the task"
            );
            self.lost.insert(lease);
            if !std::mem::replace(&mut running.aborted, true) {
                self.out.push_back(Decision::Abort(lease));
            }
        } else if self.queued_lost(lease) {
            warn!(
                task = lease.task,
                attempt = lease.attempt,
                "lease lost while queued at the runner; dropping it there"
            );
        } else if let Some(at) = self.buffered.iter().position(|b| b.grant.lease == lease) {
            warn!(
                task = lease.task,
                attempt = lease.attempt,
                "lease lost before the task started"
            );
            self.buffered.remove(at);
        }
    }
}
