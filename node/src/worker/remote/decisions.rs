//! Carrying out the core's decisions: grants down the stream (one `Tasks` message per round),
//! proposals through the backend, the log's answers as `Acks` (stale ones judged after a read
//! barrier), aborts, and the time limits of what the worker runs.

use std::time::Duration;

use flotilla_proto::v1 as pb;
use flotilla_proto::v1::node_message::Msg as Out;
use futures::FutureExt;
use futures::Stream;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use tokio::time::Instant;
use tonic::Status;
use tracing::debug;
use tracing::warn;

use super::super::core::Acked;
use super::super::core::Decision;
use super::super::core::RunResult;
use super::super::core::Timer;
use super::Phase;
use super::Reply;
use super::Session;
use super::TIME_LIMIT_SLACK;
use super::results;
use super::results::Checked;
use super::wire::ack;
use super::wire::message;
use crate::queue::Grant;
use crate::queue::LeaseRef;
use crate::queue::Outcome;

impl<S> Session<S>
where
    S: Stream<Item = Result<pb::WorkerMessage, Status>> + Unpin + Send,
{
    // ---- the core's decisions ----

    pub(super) fn execute(
        &mut self,
        proposals: &mut FuturesUnordered<BoxFuture<'static, Reply>>,
        timers: &mut FuturesUnordered<BoxFuture<'static, Timer>>,
    ) {
        let mut tasks = Vec::new();
        while let Some(decision) = self.core.next_decision() {
            match decision {
                Decision::Propose(token, proposal) => {
                    let reply = self.node.backend.propose_many(proposal.into_commands());
                    proposals.push(reply.map(move |r| (token, r)).boxed());
                }
                // Down the stream either way: a worker that queues starts it when it can.
                Decision::Run(grant) | Decision::Queue(grant) => self.run_grant(grant, &mut tasks),
                Decision::TakeBack(lease) => {
                    // Gone with the stream otherwise: the drain's grace aborts it at once.
                    if self.phase != Phase::Broken && self.running.contains_key(&lease) {
                        // After the grants of this round: the worker must know the task.
                        self.send_tasks(&mut tasks);
                        self.send(Out::TakeBack(pb::TakeBack {
                            task_id: lease.task,
                            attempt: lease.attempt,
                        }));
                    }
                }
                Decision::Abort(lease) => {
                    let reason = if self.core.was_revoked(lease) {
                        "revoked"
                    } else if self.phase == Phase::Open {
                        "lease lost"
                    } else {
                        "draining"
                    };
                    self.send_tasks(&mut tasks);
                    self.abort(lease, reason, RunResult::Aborted);
                }
                Decision::After(delay, timer) => {
                    timers.push(tokio::time::sleep(delay).map(move |()| timer).boxed());
                }
                Decision::Acked(acks) => self.acked(acks),
                Decision::Drained(report) => {
                    debug!(worker = %self.name, ?report, "session drained");
                    self.finish();
                }
                Decision::Stats(_) => {}
            }
        }
        self.send_tasks(&mut tasks);
    }

    fn send_tasks(&self, tasks: &mut Vec<pb::Task>) {
        if !tasks.is_empty() {
            let mut tasks = std::mem::take(tasks);
            self.fill_in(&mut tasks);
            self.send(Out::Tasks(pb::Tasks { tasks }));
        }
    }

    pub(super) fn run_grant(&mut self, grant: Grant, tasks: &mut Vec<pb::Task>) {
        let lease = grant.lease;
        if self.phase == Phase::Broken {
            // Nobody to run it: hand it back.
            self.remember_end(lease);
            self.core().finished(lease, RunResult::Aborted);
            return;
        }
        let limit_ms = grant.time_limit_ms.unwrap_or(self.settings.default_time_limit_ms);
        let limit = Duration::from_millis(limit_ms) + TIME_LIMIT_SLACK;
        self.track(lease, Instant::now(), limit);
        tasks.push(pb::Task {
            task_id: lease.task,
            attempt: lease.attempt,
            name: grant.name,
            queue: grant.queue,
            args: grant.args,
            headers: grant.headers.into_iter().collect(),
            time_limit_ms: limit_ms,
            retries_left: 0,
            created_unix_ms: 0,
        });
    }

    /// Submit time and retries left, from the replica (a follower's may not show a fresh
    /// grant yet: then 0). Retries left is a lower bound: released and expired attempts count
    /// as attempts but not as failures.
    pub(super) fn fill_in(&self, tasks: &mut [pb::Task]) {
        self.node.replica.read(|q| {
            for t in tasks.iter_mut() {
                if let Some(v) = q.task(t.task_id) {
                    t.created_unix_ms = v.created_ms;
                    let failures_at_most = t.attempt.saturating_sub(1);
                    t.retries_left = v.max_retries.saturating_sub(failures_at_most);
                }
            }
        });
    }

    pub(super) fn acked(&mut self, acks: Vec<(LeaseRef, Acked)>) {
        let mut now = Vec::with_capacity(acks.len());
        let mut stale = Vec::new();
        for (lease, acked) in acks {
            let Some(checked) = self.answering.remove(&lease) else {
                // Released by the node itself (drain, a grant it could not run): no answer.
                continue;
            };
            self.remember_end(lease);
            match results::status(acked, checked.too_large) {
                Some(status) => now.push(ack(lease, status)),
                None => stale.push(checked),
            }
        }
        if !now.is_empty() {
            self.send(Out::Acks(pb::Acks { acks: now }));
        }
        if !stale.is_empty() {
            self.resolve_stale(stale);
        }
    }

    /// Answer results the log found stale (or that came after their lease ended here), once
    /// the replica has seen everything committed: accepted if they are what committed.
    pub(super) fn resolve_stale(&self, checked: Vec<Checked>) {
        let (node, out) = (self.node.clone(), self.out.clone());
        tokio::spawn(async move {
            if let Err(e) = (node.barrier)().await {
                debug!(error = %e, "read barrier failed; judging stale results on this replica");
            }
            let acks = node.replica.read(|q| {
                checked
                    .iter()
                    .map(|c| {
                        ack(
                            c.lease,
                            results::stale_status(q.task(c.lease.task).as_ref(), c.lease, c),
                        )
                    })
                    .collect()
            });
            let _ = out.send(Ok(message(Out::Acks(pb::Acks { acks }))));
        });
    }

    pub(super) fn abort(&mut self, lease: LeaseRef, reason: &str, result: RunResult) {
        if self.untrack(lease).is_none() {
            return;
        }
        self.remember_end(lease);
        if self.phase != Phase::Broken {
            self.send(Out::Abort(pb::Abort {
                task_id: lease.task,
                attempt: lease.attempt,
                reason: reason.into(),
            }));
        }
        self.core().finished(lease, result);
    }

    pub(super) fn time_limits(&mut self) {
        let now = Instant::now();
        while let Some(&(at, lease)) = self.deadlines.first()
            && at <= now
        {
            // A task queued at the worker (lease-ahead sent down) is limited in how long it
            // runs, not in how long it waited for a slot: its limit counts from its start by
            // the core's count (docs/WORKERS.md, "Lease-ahead"). Waiting past its deadline, it
            // is looked at again one limit later; once started, its deadline is that start
            // plus the limit, whenever this check comes.
            let limit = self.running.get(&lease).map_or(Duration::ZERO, |(_, l)| *l);
            if self.core.is_queued(lease) {
                self.track(lease, now, limit);
                continue;
            }
            if let Some(started) = self.core.started_at(lease) {
                let due = self.epoch + started + limit;
                if due > now {
                    self.track(lease, self.epoch + started, limit);
                    continue;
                }
            }
            warn!(worker = %self.name, task = lease.task, attempt = lease.attempt, "time limit exceeded; aborting the task");
            let error = "time limit exceeded (the worker did not answer in time)".to_string();
            let outcome = Outcome::Failure { error, retry: true };
            self.abort(lease, "time limit", RunResult::Finished(outcome));
        }
    }
}
