//! What a remote worker's result means, and what it is answered: shared by the stream
//! ([`super::Session`]) and the unary `Complete`. Pure: no IO.
//!
//! - [`check`] turns a `TaskResult` into an [`Answer`]: a success over `max_result_bytes`
//!   becomes a failure that is not retried (and is acked `TOO_LARGE`); a failure message over
//!   it is cut to it; a failure's `kind` is kept in front of its message. A result with no
//!   outcome is a protocol error.
//! - [`status`] says what an acked answer tells the worker; a stale one is judged by
//!   [`already_committed`]: a repeat of the result that committed is `ACCEPTED` again (a
//!   retry after a lost ack), anything else `STALE`.

use flotilla_proto::v1 as pb;
use flotilla_proto::v1::result_ack::Status;
use flotilla_proto::v1::task_result::Outcome as PbOutcome;

use crate::queue::CompletionResult;
use crate::queue::LeaseRef;
use crate::queue::Outcome;
use crate::queue::TaskState;
use crate::queue::TaskView;
use crate::worker::core::Acked;

/// What a worker answered for one lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Record this outcome.
    Outcome(Outcome),
    /// Give the task back, no attempt counted.
    Released,
}

/// A result, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    pub lease: LeaseRef,
    pub answer: Answer,
    /// The success was over the limit: `answer` is the failure saying so.
    pub too_large: bool,
}

/// The lease a result names.
pub fn lease_of(r: &pb::TaskResult) -> LeaseRef {
    LeaseRef {
        task: r.task_id,
        attempt: r.attempt,
    }
}

/// Check one result against the limit; `Err` says what is wrong with it (a protocol error).
pub fn check(r: pb::TaskResult, max_result_bytes: usize) -> Result<Checked, String> {
    let lease = lease_of(&r);
    let (answer, too_large) = match r.outcome {
        None => {
            return Err(format!(
                "result for task {} attempt {} has no outcome",
                lease.task, lease.attempt
            ));
        }
        Some(PbOutcome::Success(result)) if result.len() > max_result_bytes => {
            let error = format!(
                "result of {} bytes is over the limit of {max_result_bytes} bytes (--max-result-bytes)",
                result.len()
            );
            (Answer::Outcome(Outcome::Failure { error, retry: false }), true)
        }
        Some(PbOutcome::Success(result)) => (Answer::Outcome(Outcome::Success(result)), false),
        Some(PbOutcome::Failure(f)) => {
            let error = if f.kind.is_empty() {
                f.message
            } else {
                format!("{}: {}", f.kind, f.message)
            };
            let error = truncate(error, max_result_bytes);
            // A retry delay instead of the task's backoff (capped by the queue); 0 means the
            // backoff, and a fatal failure has no retry to delay.
            let outcome = if f.retryable && f.retry_delay_ms > 0 {
                Outcome::RetryAfter {
                    error,
                    delay_ms: f.retry_delay_ms,
                }
            } else {
                Outcome::Failure {
                    error,
                    retry: f.retryable,
                }
            };
            (Answer::Outcome(outcome), false)
        }
        Some(PbOutcome::Released(_)) => (Answer::Released, false),
    };
    Ok(Checked {
        lease,
        answer,
        too_large,
    })
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// What the worker is told of an acked answer; `None`: the log found the lease stale, ask
/// [`already_committed`].
pub fn status(acked: Acked, too_large: bool) -> Option<Status> {
    match acked {
        Acked::Completed(CompletionResult::Accepted) if too_large => Some(Status::TooLarge),
        Acked::Completed(CompletionResult::Accepted) | Acked::Released(true) => Some(Status::Accepted),
        Acked::Completed(CompletionResult::Stale) | Acked::Released(false) => None,
    }
}

/// The status of an answer the log found stale: whether `view` (the task now, on a replica
/// that has seen the answer's entry) shows this very answer as the attempt's committed one.
pub fn stale_status(view: Option<&TaskView>, lease: LeaseRef, checked: &Checked) -> Status {
    match already_committed(view, lease, &checked.answer) {
        true if checked.too_large => Status::TooLarge,
        true => Status::Accepted,
        false => Status::Stale,
    }
}

/// Whether the task's state is what committing `answer` for `lease` left: the attempt is
/// still the task's last one, and its outcome is this answer's.
pub fn already_committed(view: Option<&TaskView>, lease: LeaseRef, answer: &Answer) -> bool {
    let Some(v) = view.filter(|v| v.attempt == lease.attempt) else {
        return false;
    };
    match answer {
        Answer::Outcome(Outcome::Success(result)) => {
            v.state == TaskState::Succeeded && v.result.as_ref() == Some(result)
        }
        Answer::Outcome(Outcome::Failure { error, .. } | Outcome::RetryAfter { error, .. }) => {
            matches!(
                v.state,
                TaskState::Dead | TaskState::Retrying | TaskState::Pending
            ) && v.error.as_deref() == Some(error.as_str())
        }
        // Released and not leased again since (a later lease has a later attempt).
        Answer::Released => v.state == TaskState::Pending,
    }
}

/// A success result, for tests.
#[cfg(test)]
pub fn success(task: u64, attempt: u32, result: &'static [u8]) -> pb::TaskResult {
    pb::TaskResult {
        task_id: task,
        attempt,
        outcome: Some(PbOutcome::Success(bytes::Bytes::from_static(result))),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn view(state: TaskState, attempt: u32, result: Option<&'static [u8]>, error: Option<&str>) -> TaskView {
        TaskView {
            id: 1,
            name: "t".into(),
            queue: "default".into(),
            state,
            waiting: false,
            attempt,
            max_retries: 0,
            result: result.map(Bytes::from_static),
            error: error.map(str::to_string),
            created_ms: 0,
            updated_ms: 0,
            progress: None,
        }
    }

    #[test]
    fn a_success_over_the_limit_fails_the_task_for_good() {
        let c = check(success(1, 2, b"12345"), 4).unwrap();
        assert!(c.too_large);
        let Answer::Outcome(Outcome::Failure { error, retry: false }) = &c.answer else {
            panic!("{c:?}");
        };
        assert!(
            error.contains("result of 5 bytes is over the limit of 4 bytes"),
            "{error}"
        );
        assert!(!check(success(1, 2, b"1234"), 4).unwrap().too_large);
    }

    #[test]
    fn a_failure_keeps_its_kind_and_is_cut_to_the_limit() {
        let r = pb::TaskResult {
            task_id: 1,
            attempt: 1,
            outcome: Some(PbOutcome::Failure(pb::Failure {
                message: "bad é".into(),
                retryable: true,
                retry_delay_ms: 0,
                kind: "ValueError".into(),
            })),
        };
        let c = check(r, 15).unwrap();
        // "ValueError: bad é" is 18 bytes; cut on a character boundary.
        let want = Outcome::Failure {
            error: "ValueError: bad".into(),
            retry: true,
        };
        assert_eq!(c.answer, Answer::Outcome(want));
        let empty = pb::TaskResult {
            outcome: None,
            ..success(3, 1, b"")
        };
        assert!(check(empty, 10).unwrap_err().contains("no outcome"));
    }

    #[test]
    fn a_retry_delay_asks_for_a_retry_after_it_unless_the_failure_is_fatal() {
        let failure = |retryable, retry_delay_ms| pb::TaskResult {
            task_id: 1,
            attempt: 1,
            outcome: Some(PbOutcome::Failure(pb::Failure {
                message: "429".into(),
                retryable,
                retry_delay_ms,
                kind: String::new(),
            })),
        };
        let answer = |r| check(r, 100).unwrap().answer;
        assert_eq!(
            answer(failure(true, 30_000)),
            Answer::Outcome(Outcome::RetryAfter {
                error: "429".into(),
                delay_ms: 30_000
            })
        );
        assert_eq!(
            answer(failure(false, 30_000)),
            Answer::Outcome(Outcome::Failure {
                error: "429".into(),
                retry: false
            })
        );
    }

    #[test]
    fn only_a_repeat_of_the_committed_answer_is_accepted_again() {
        let lease = LeaseRef { task: 1, attempt: 2 };
        let ok = Answer::Outcome(Outcome::Success(Bytes::from_static(b"4")));
        let done = view(TaskState::Succeeded, 2, Some(b"4"), None);
        assert!(already_committed(Some(&done), lease, &ok));
        let other = Answer::Outcome(Outcome::Success(Bytes::from_static(b"5")));
        assert!(!already_committed(Some(&done), lease, &other));
        let later = view(TaskState::Succeeded, 3, Some(b"4"), None);
        assert!(!already_committed(Some(&later), lease, &ok));
        assert!(!already_committed(None, lease, &ok));
        let fail = Answer::Outcome(Outcome::Failure {
            error: "boom".into(),
            retry: true,
        });
        let retrying = view(TaskState::Retrying, 2, None, Some("boom"));
        assert!(already_committed(Some(&retrying), lease, &fail));
        let expired = view(TaskState::Pending, 2, None, Some("lease expired (worker lost)"));
        assert!(!already_committed(Some(&expired), lease, &fail));
        assert!(already_committed(Some(&expired), lease, &Answer::Released));
        let leased = view(TaskState::Leased, 2, None, None);
        assert!(!already_committed(Some(&leased), lease, &Answer::Released));
    }

    #[test]
    fn statuses() {
        let accepted = Acked::Completed(CompletionResult::Accepted);
        assert_eq!(status(accepted, false), Some(Status::Accepted));
        assert_eq!(status(accepted, true), Some(Status::TooLarge));
        assert_eq!(status(Acked::Released(true), false), Some(Status::Accepted));
        assert_eq!(status(Acked::Released(false), false), None);
        assert_eq!(status(Acked::Completed(CompletionResult::Stale), true), None);
    }
}
