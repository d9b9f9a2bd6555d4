//! Typed proposals: each command paired with the type of its answer.
//!
//! `QueueState::apply` answers a [`Command`] with the [`Response`] variant of the same name, and
//! nothing else. [`Op`] writes that pairing down once, so a caller proposes a [`Lease`] and gets
//! `Vec<Grant>` back instead of matching on `Response` with an "unexpected response" arm of its
//! own. The one place a mismatch could be noticed is [`Op::answer`]; it would mean replicas run
//! a different build than the proposer, and is reported as [`WrongAnswer`].

use std::sync::Arc;

use super::command::*;

/// The state machine answered a command with another command's response.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the queue answered {command} with {answer}")]
pub struct WrongAnswer {
    pub command: &'static str,
    pub answer: String,
}

/// A command whose answer has a type of its own.
pub trait Op {
    /// What the queue answers.
    type Answer;
    /// The command's name, for errors.
    const NAME: &'static str;
    /// The command to put in the log.
    fn command(self) -> Command;
    /// The typed answer, from the response `apply` gave to this op's command.
    fn answer(response: Response) -> Result<Self::Answer, WrongAnswer>;
}

/// The typed answer of an entry that held `O` alone, from the responses `apply` gave it.
pub fn answer_one<O: Op>(responses: Vec<Response>) -> Result<O::Answer, WrongAnswer> {
    let [response] = <[Response; 1]>::try_from(responses).map_err(|r| miscounted::<O>(r.len(), 1))?;
    O::answer(response)
}

/// The typed answers of an entry that held `A` then `B` (applied together, all or none).
pub fn answer_pair<A: Op, B: Op>(responses: Vec<Response>) -> Result<(A::Answer, B::Answer), WrongAnswer> {
    let [a, b] = <[Response; 2]>::try_from(responses).map_err(|r| miscounted::<A>(r.len(), 2))?;
    Ok((A::answer(a)?, B::answer(b)?))
}

fn miscounted<O: Op>(got: usize, commands: usize) -> WrongAnswer {
    WrongAnswer {
        command: O::NAME,
        answer: format!("{got} responses to an entry of {commands} commands"),
    }
}

/// Builds a `WrongAnswer` for `Op` `O`.
fn wrong<O: Op>(response: &Response) -> WrongAnswer {
    WrongAnswer {
        command: O::NAME,
        answer: format!("{response:?}").chars().take(120).collect(),
    }
}

macro_rules! op {
    ($(#[$doc:meta])* $name:ident { $($field:ident : $ty:ty),* $(,)? } => $variant:ident($answer:ty)) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct $name { $(pub $field: $ty),* }

        impl Op for $name {
            type Answer = $answer;
            const NAME: &'static str = stringify!($name);
            fn command(self) -> Command {
                let Self { $($field),* } = self;
                Command::$name { $($field),* }
            }
            fn answer(response: Response) -> Result<$answer, WrongAnswer> {
                match response {
                    Response::$variant(answer) => Ok(answer),
                    other => Err(wrong::<Self>(&other)),
                }
            }
        }
    };
}

op!(
    /// [`Command::Submit`]: one [`Submitted`] per task, in order.
    Submit { tasks: Arc<[TaskSpec]> } => Submitted(Vec<Submitted>)
);
op!(
    /// [`Command::Lease`]: the tasks granted.
    Lease { pool: String, queues: Vec<String>, max: u32, lease_ms: u64, standing_ticket: Option<u64> }
        => Leased(Vec<Grant>)
);
op!(
    /// [`Command::Complete`]: per completion, accepted or stale.
    Complete { pool: String, completions: Vec<Completion> } => Completed(Vec<CompletionResult>)
);
op!(
    /// [`Command::Heartbeat`]: per lease, whether it was extended.
    Heartbeat { pool: String, leases: Vec<LeaseRef>, lease_ms: u64 } => Heartbeated(Vec<bool>)
);
op!(
    /// [`Command::Release`]: per lease, whether it was released.
    Release { pool: String, leases: Vec<LeaseRef> } => Released(Vec<bool>)
);
op!(
    /// [`Command::ReleasePool`]: how many leases were released.
    ReleasePool { pool: String } => ReleasedPool(u64)
);
op!(
    /// [`Command::ClearStanding`]: whether there was standing capacity to drop.
    ClearStanding { pool: String } => ClearedStanding(bool)
);
op!(
    /// [`Command::Cancel`]: per id, whether this cancelled it.
    Cancel { ids: Vec<TaskId> } => Cancelled(Vec<bool>)
);
op!(
    /// [`Command::PurgeQueue`]: how many tasks were cancelled.
    PurgeQueue { queue: String } => Purged(u64)
);
op!(
    /// [`Command::AllocateNodeId`]: the id handed out.
    AllocateNodeId {} => NodeId(u64)
);
op!(
    /// [`Command::CreateToken`]: the new token's id (`None`: its hash is taken).
    CreateToken { role: Role, hash: TokenHash, label: String, ttl_ms: Option<u64> }
        => TokenCreated(Option<TokenId>)
);
op!(
    /// [`Command::RevokeToken`]: whether the token existed.
    RevokeToken { id: TokenId } => TokenRevoked(bool)
);

op!(
    /// [`Command::DeclareTasks`]: how many declarations were new or changed a queue, or why
    /// nothing changed.
    DeclareTasks { declarer: String, tasks: Vec<TaskDecl> } => TasksDeclared(Result<u32, CatalogRefusal>)
);

op!(
    /// [`Command::Progress`]: per report, whether it was kept.
    Progress { reports: Vec<ProgressReport> } => Progressed(Vec<bool>)
);
op!(
    /// [`Command::AddSchedule`]: what was added, or why nothing changed.
    AddSchedule { schedule: Box<ScheduleSpec>, replace: bool } => ScheduleAdded(Result<ScheduleAdded, ScheduleRefusal>)
);
op!(
    /// [`Command::RemoveSchedule`]: whether the schedule existed.
    RemoveSchedule { name: String } => ScheduleRemoved(bool)
);
op!(
    /// [`Command::PauseSchedule`]: whether the schedule existed.
    PauseSchedule { name: String, paused: bool } => SchedulePaused(bool)
);

op!(
    /// [`Command::SetLimit`]: the rule was taken, or why not.
    SetLimit { scope: LimitScope, rule: LimitRule } => LimitSet(Result<(), LimitError>)
);

op!(
    /// [`Command::RemoveLimit`]: whether there was a limit.
    RemoveLimit { scope: LimitScope } => LimitRemoved(bool)
);

op!(
    /// [`Command::Retry`]: per id, whether it was requeued.
    Retry { ids: Vec<TaskId> } => Retried(Vec<bool>)
);

op!(
    /// [`Command::Revoke`]: per id, what it did.
    Revoke { ids: Vec<TaskId>, reason: String } => Revoked(Vec<Revoked>)
);

op!(
    /// [`Command::SubmitWorkflow`]: the workflow and its task ids, or why nothing was created.
    SubmitWorkflow { workflow: Box<WorkflowSpec> }
        => WorkflowSubmitted(Result<WorkflowSubmitted, WorkflowRefusal>)
);

/// [`Command::RecordAttempts`]: whether it switched recording on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordAttempts;

impl Op for RecordAttempts {
    type Answer = bool;
    const NAME: &'static str = "RecordAttempts";
    fn command(self) -> Command {
        Command::RecordAttempts
    }
    fn answer(response: Response) -> Result<bool, WrongAnswer> {
        match response {
            Response::RecordingAttempts(on) => Ok(on),
            other => Err(wrong::<Self>(&other)),
        }
    }
}

/// [`Command::Tick`]: advances time only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tick;

impl Op for Tick {
    type Answer = ();
    const NAME: &'static str = "Tick";
    fn command(self) -> Command {
        Command::Tick
    }
    fn answer(response: Response) -> Result<(), WrongAnswer> {
        match response {
            Response::Ticked => Ok(()),
            other => Err(wrong::<Self>(&other)),
        }
    }
}

/// [`Command::PauseQueue`]: pauses or resumes leasing from a queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PauseQueue {
    pub queue: String,
    pub paused: bool,
}

impl Op for PauseQueue {
    type Answer = ();
    const NAME: &'static str = "PauseQueue";
    fn command(self) -> Command {
        Command::PauseQueue {
            queue: self.queue,
            paused: self.paused,
        }
    }
    fn answer(response: Response) -> Result<(), WrongAnswer> {
        match response {
            Response::Paused => Ok(()),
            other => Err(wrong::<Self>(&other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::ApplyEffects;
    use crate::queue::QueueState;

    /// Applies `op` alone and decodes its answer: the pairing holds for the real state machine.
    fn run<O: Op>(q: &mut QueueState, op: O) -> Result<O::Answer, WrongAnswer> {
        let req = Request {
            now_ms: 1_000,
            commands: vec![op.command()],
        };
        let mut responses = q.apply(&req, &mut ApplyEffects::default());
        assert_eq!(responses.len(), 1);
        O::answer(responses.remove(0))
    }

    #[test]
    fn every_op_decodes_the_answer_apply_gives_it() {
        let mut q = QueueState::new();
        let spec = TaskSpec {
            name: "t".into(),
            queue: String::new(),
            args: Default::default(),
            priority: 0,
            eta_ms: None,
            countdown_ms: None,
            max_retries: 0,
            backoff_ms: 0,
            time_limit_ms: None,
            idempotency_key: None,
            result_ttl_ms: 60_000,
            headers: Default::default(),
            concurrency_key: None,
        };
        let two: Arc<[TaskSpec]> = vec![spec.clone(), spec.clone()].into();
        let submitted = run(&mut q, Submit { tasks: two }).unwrap();
        assert_eq!(submitted.len(), 2);
        let w = || "w".to_string();
        let grants = run(
            &mut q,
            Lease {
                pool: w(),
                queues: vec![],
                max: 1,
                lease_ms: 10_000,
                standing_ticket: None,
            },
        )
        .unwrap();
        let lease = grants[0].lease;
        assert_eq!(
            run(
                &mut q,
                Heartbeat {
                    pool: w(),
                    leases: vec![lease],
                    lease_ms: 10_000
                }
            )
            .unwrap(),
            vec![true]
        );
        let completion = Completion {
            lease,
            outcome: Outcome::Success(Default::default()),
        };
        let done = run(
            &mut q,
            Complete {
                pool: w(),
                completions: vec![completion],
            },
        )
        .unwrap();
        assert_eq!(done, vec![CompletionResult::Accepted]);
        assert_eq!(
            run(
                &mut q,
                Release {
                    pool: w(),
                    leases: vec![lease]
                }
            )
            .unwrap(),
            vec![false]
        );
        assert_eq!(run(&mut q, ReleasePool { pool: w() }).unwrap(), 0);
        assert!(!run(&mut q, ClearStanding { pool: w() }).unwrap());
        assert_eq!(
            run(
                &mut q,
                Cancel {
                    ids: vec![submitted[1].id]
                }
            )
            .unwrap(),
            vec![true]
        );
        assert_eq!(run(&mut q, PurgeQueue { queue: String::new() }).unwrap(), 0);
        run(
            &mut q,
            PauseQueue {
                queue: "q".into(),
                paused: true,
            },
        )
        .unwrap();
        run(&mut q, Tick).unwrap();
        assert_eq!(run(&mut q, AllocateNodeId {}).unwrap(), 2);
        let declare = || DeclareTasks {
            declarer: "node:1".into(),
            tasks: vec![TaskDecl {
                name: "t".into(),
                queue: String::new(),
            }],
        };
        assert_eq!(run(&mut q, declare()).unwrap(), Ok(1));
        assert_eq!(run(&mut q, declare()).unwrap(), Ok(0));
        let schedule = ScheduleSpec {
            name: "s".into(),
            cadence: Cadence::Interval { every_ms: 60_000 },
            catch_up: CatchUp::Skip,
            grace_ms: DEFAULT_GRACE_MS,
            task: TaskSpec {
                idempotency_key: None,
                ..spec
            },
        };
        let added = run(
            &mut q,
            AddSchedule {
                schedule: schedule.into(),
                replace: false,
            },
        )
        .unwrap()
        .unwrap();
        assert_eq!((added.outcome, added.next_ms), (AddOutcome::Added, Some(61_000)));
        let pause = PauseSchedule {
            name: "s".into(),
            paused: true,
        };
        assert!(run(&mut q, pause).unwrap());
        assert!(run(&mut q, RemoveSchedule { name: "s".into() }).unwrap());
        let cancelled = submitted[1].id;
        assert_eq!(run(&mut q, Retry { ids: vec![cancelled] }).unwrap(), vec![true]);
        let revoke = Revoke {
            ids: vec![cancelled, 99],
            reason: String::new(),
        };
        assert_eq!(
            run(&mut q, revoke).unwrap(),
            vec![Revoked::Cancelled, Revoked::Unchanged]
        );
    }

    #[test]
    fn entries_of_one_and_two_ops_decode_in_order_and_refuse_a_miscount() {
        let grants = answer_one::<Lease>(vec![Response::Leased(vec![])]).unwrap();
        assert!(grants.is_empty());
        let (done, leased) = answer_pair::<Complete, Lease>(vec![
            Response::Completed(vec![CompletionResult::Stale]),
            Response::Leased(vec![]),
        ])
        .unwrap();
        assert_eq!((done, leased), (vec![CompletionResult::Stale], vec![]));
        let swapped =
            answer_pair::<Complete, Lease>(vec![Response::Leased(vec![]), Response::Completed(vec![])]);
        assert_eq!(swapped.unwrap_err().command, "Complete");
        let short = answer_pair::<Complete, Lease>(vec![Response::Completed(vec![])]).unwrap_err();
        assert_eq!(short.answer, "1 responses to an entry of 2 commands");
        assert!(answer_one::<Tick>(vec![]).is_err());
    }

    #[test]
    fn a_mismatched_answer_is_an_error_naming_both() {
        let err = Tick::answer(Response::Purged(3)).unwrap_err();
        assert_eq!(err.command, "Tick");
        assert_eq!(err.to_string(), "the queue answered Tick with Purged(3)");
    }
}
