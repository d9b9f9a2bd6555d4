//! The worker's messages: results (checked, fenced, handed to the core as one batch), pongs,
//! progress, the worker's drain; anything else is a protocol error.

use flotilla_proto::v1 as pb;
use flotilla_proto::v1::worker_message::Msg as In;
use futures::Stream;
use tonic::Status;
use tracing::info;

use super::super::core::RunResult;
use super::Phase;
use super::Session;
use super::results;
use super::results::Answer;
use super::wire::is_decode_error;
use crate::queue::LeaseRef;

impl<S> Session<S>
where
    S: Stream<Item = Result<pb::WorkerMessage, Status>> + Unpin + Send,
{
    // ---- the worker's messages ----

    pub(super) fn inbound_message(&mut self, msg: Option<Result<pb::WorkerMessage, Status>>) {
        let msg = match msg {
            None => return self.broken("the worker closed the stream"),
            Some(Err(status)) if is_decode_error(&status) => {
                return self.refuse(format!("a message did not decode: {}", status.message()));
            }
            Some(Err(status)) => return self.broken(&format!("stream error: {status}")),
            Some(Ok(msg)) => msg,
        };
        // For `flotilla workers`: heard from now, running this many (the ones started by the
        // core's count: not those queued at the worker).
        self._claim.seen(self.core.started());
        match msg.msg {
            Some(In::Results(results)) => self.results(results.results),
            Some(In::Pong(pong)) => self.pong(pong.nonce),
            Some(In::Progress(p)) => {
                let lease = LeaseRef {
                    task: p.task_id,
                    attempt: p.attempt,
                };
                if self.running.contains_key(&lease) {
                    if let Err(why) = self.progress.report(lease, p.progress) {
                        self.refuse(why);
                    }
                } else if !self.known_end(lease) {
                    self.refuse(format!(
                        "progress for task {} attempt {}, which this session never sent",
                        lease.task, lease.attempt
                    ));
                }
            }
            Some(In::Drain(_)) if self.phase == Phase::Open => {
                info!(worker = %self.name, running = self.running.len(), "the worker drains");
                self.phase = Phase::WorkerDrain;
                let grace = self.settings.worker_drain_grace;
                self.core().drain(grace);
            }
            Some(In::Drain(_)) => {}
            Some(In::Hello(_)) => self.refuse("a second Hello".into()),
            None => self.refuse("a message with no content".into()),
        }
    }

    pub(super) fn results(&mut self, results: Vec<pb::TaskResult>) {
        let mut late = Vec::new();
        let mut runs = Vec::with_capacity(results.len());
        for r in results {
            let lease = results::lease_of(&r);
            if self.answering.contains_key(&lease) {
                // A repeat while the first is being committed: its ack answers both.
                continue;
            }
            if !self.running.contains_key(&lease) && !self.known_end(lease) {
                self.core().finished_all(runs);
                return self.refuse(format!(
                    "result for task {} attempt {}, which this session never sent",
                    lease.task, lease.attempt
                ));
            }
            let checked = match results::check(r, self.settings.max_result_bytes) {
                Ok(c) => c,
                Err(why) => {
                    self.core().finished_all(runs);
                    return self.refuse(why);
                }
            };
            if self.untrack(lease).is_none() {
                late.push(checked);
                continue;
            }
            let run = match &checked.answer {
                Answer::Outcome(outcome) => RunResult::Finished(outcome.clone()),
                Answer::Released => RunResult::Aborted,
            };
            self.answering.insert(lease, checked);
            runs.push((lease, run));
        }
        self.core().finished_all(runs);
        if !late.is_empty() {
            self.resolve_stale(late);
        }
    }
}
