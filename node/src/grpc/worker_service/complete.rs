//! The unary `WorkerService.Complete`: results of leases committed from outside a session (a
//! Celery prefork child reports what its parent's session was granted). The same checks and
//! answers as on the stream (`worker::remote::results`): one entry holds the completions and
//! the releases; fenced by `(task, attempt)` in the log; a stale answer is `ACCEPTED` if it is
//! the one that committed.

use flotilla_proto::v1 as pb;
use flotilla_proto::v1::result_ack::Status as AckStatus;

use crate::grpc::status::ApiError;
use crate::queue::Completion;
use crate::queue::CompletionResult;
use crate::queue::LeaseRef;
use crate::queue::ops;
use crate::queue::ops::Op;
use crate::worker::core::Acked;
use crate::worker::remote::SessionNode;
use crate::worker::remote::results;
use crate::worker::remote::results::Answer;
use crate::worker::remote::results::Checked;

/// The `worker` of the commands (not part of the fence).
const WORKER: &str = "complete-rpc";

/// Most results in one call.
pub const MAX_RESULTS: usize = 10_000;

/// Commit `results`; one ack per result, in order.
pub async fn complete(
    node: &SessionNode,
    max_result_bytes: usize,
    results: Vec<pb::TaskResult>,
) -> Result<Vec<pb::ResultAck>, ApiError> {
    if results.len() > MAX_RESULTS {
        return Err(ApiError::InvalidArgument(format!(
            "{} results in one call is over the limit of {MAX_RESULTS}",
            results.len()
        )));
    }
    let checked = results
        .into_iter()
        .map(|r| results::check(r, max_result_bytes))
        .collect::<Result<Vec<Checked>, String>>()
        .map_err(ApiError::InvalidArgument)?;
    let mut completions = Vec::new();
    let mut releases = Vec::new();
    for c in &checked {
        match &c.answer {
            Answer::Outcome(outcome) => completions.push(Completion {
                lease: c.lease,
                outcome: outcome.clone(),
            }),
            Answer::Released => releases.push(c.lease),
        }
    }
    let (done, released) = commit(node, completions, releases).await?;
    // Per result, in order: its completion's or its release's answer.
    let (mut done, mut released) = (done.into_iter(), released.into_iter());
    let mut acks: Vec<Option<AckStatus>> = Vec::with_capacity(checked.len());
    for c in &checked {
        let acked = match c.answer {
            Answer::Outcome(_) => done.next().map(Acked::Completed),
            Answer::Released => released.next().map(Acked::Released),
        };
        acks.push(acked.and_then(|a| results::status(a, c.too_large)));
    }
    if acks.iter().any(Option::is_none) {
        (node.barrier)().await.map_err(ApiError::ReadBarrier)?;
    }
    let statuses = node.replica.read(|q| {
        checked
            .iter()
            .zip(acks)
            .map(|(c, status)| {
                status.unwrap_or_else(|| results::stale_status(q.task(c.lease.task).as_ref(), c.lease, c))
            })
            .collect::<Vec<_>>()
    });
    Ok(checked
        .iter()
        .zip(statuses)
        .map(|(c, status)| pb::ResultAck {
            task_id: c.lease.task,
            attempt: c.lease.attempt,
            status: status as i32,
        })
        .collect())
}

/// Propose the completions and releases in one entry; their answers.
async fn commit(
    node: &SessionNode,
    completions: Vec<Completion>,
    leases: Vec<LeaseRef>,
) -> Result<(Vec<CompletionResult>, Vec<bool>), ApiError> {
    let shape = (!completions.is_empty(), !leases.is_empty());
    let mut commands = Vec::with_capacity(2);
    if shape.0 {
        commands.push(
            ops::Complete {
                pool: WORKER.into(),
                completions,
            }
            .command(),
        );
    }
    if shape.1 {
        commands.push(
            ops::Release {
                pool: WORKER.into(),
                leases,
            }
            .command(),
        );
    }
    if commands.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let responses = node.backend.propose_many(commands).await?;
    let wrong = |e: ops::WrongAnswer| ApiError::Propose(e.into());
    Ok(match shape {
        (true, true) => ops::answer_pair::<ops::Complete, ops::Release>(responses).map_err(wrong)?,
        (true, false) => (
            ops::answer_one::<ops::Complete>(responses).map_err(wrong)?,
            Vec::new(),
        ),
        (false, _) => (
            Vec::new(),
            ops::answer_one::<ops::Release>(responses).map_err(wrong)?,
        ),
    })
}
