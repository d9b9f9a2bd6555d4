//! How big a log entry is: its size in the log (to compact by size) and in memory (to bound
//! raft-log's entry cache). Estimates, not exact; tested in `state/tests/request.rs`.

use super::*;

impl Request {
    /// Roughly how many bytes this entry takes in the log (payloads plus a fixed cost per
    /// command and task). Used to compact the log by size; it need not be exact.
    pub fn approx_size(&self) -> u64 {
        let len = |s: &str| s.len() as u64;
        let per_command = |c: &Command| -> u64 {
            match c {
                Command::Submit { tasks } => tasks
                    .iter()
                    .map(|t| {
                        64 + len(&t.name)
                            + len(&t.queue)
                            + t.args.len() as u64
                            + t.idempotency_key.as_deref().map_or(0, len)
                            + t.headers.iter().map(|(k, v)| 2 + len(k) + len(v)).sum::<u64>()
                            + t.concurrency_key.as_deref().map_or(0, len)
                    })
                    .sum(),
                Command::Complete { completions, .. } => completions
                    .iter()
                    .map(|c| {
                        24 + match &c.outcome {
                            Outcome::Success(r) => r.len() as u64,
                            Outcome::Failure { error, .. } | Outcome::RetryAfter { error, .. } => len(error),
                        }
                    })
                    .sum(),
                Command::Heartbeat { leases, .. } | Command::Release { leases, .. } => {
                    32 + 12 * leases.len() as u64
                }
                Command::Cancel { ids } | Command::Retry { ids } => 16 + 8 * ids.len() as u64,
                Command::Revoke { ids, reason } => 16 + len(reason) + 8 * ids.len() as u64,
                Command::Progress { reports } => reports.iter().map(|r| 16 + r.data.len() as u64).sum(),
                Command::CreateToken { label, .. } => 64 + len(label),
                Command::DeclareTasks { declarer, tasks } => {
                    32 + len(declarer)
                        + tasks
                            .iter()
                            .map(|t| 8 + len(&t.name) + len(&t.queue))
                            .sum::<u64>()
                }
                Command::AddSchedule { schedule, .. } => schedule.size() as u64,
                Command::RemoveSchedule { name } | Command::PauseSchedule { name, .. } => 32 + len(name),
                Command::SubmitWorkflow { workflow } => workflow
                    .tasks
                    .iter()
                    .map(|t| {
                        64 + 9 * t.parents.len() as u64
                            + len(&t.spec.name)
                            + len(&t.spec.queue)
                            + t.spec.args.len() as u64
                            + t.spec
                                .headers
                                .iter()
                                .map(|(k, v)| 2 + len(k) + len(v))
                                .sum::<u64>()
                    })
                    .sum::<u64>()
                    .saturating_add(8 * workflow.shape.len() as u64),
                _ => 32,
            }
        };
        16 + self.commands.iter().map(per_command).sum::<u64>()
    }
}

impl Request {
    /// Roughly how many bytes of memory a copy of this entry holds: its structs (at their
    /// `size_of`) plus every heap block, each rounded up as an allocator does (16-byte steps
    /// plus an 8-byte header). This, not [`Self::approx_size`], is what bounds raft-log's entry
    /// cache: in memory a submitted task takes about four times its encoded size (a
    /// [`TaskSpec`] is 200 bytes before its strings).
    pub fn approx_mem_size(&self) -> u64 {
        fn heap(len: usize) -> u64 {
            if len == 0 {
                0
            } else {
                (len as u64 + 8).next_multiple_of(16)
            }
        }
        fn vec<T>(v: &[T]) -> u64 {
            heap(std::mem::size_of_val(v))
        }
        let s = |x: &str| heap(x.len());
        let per_command = |c: &Command| -> u64 {
            match c {
                Command::Submit { tasks } => {
                    vec(tasks)
                        + tasks
                            .iter()
                            .map(|t| {
                                s(&t.name)
                                    + s(&t.queue)
                                    + heap(t.args.len())
                                    + t.idempotency_key.as_deref().map_or(0, s)
                                    + t.headers.iter().map(|(k, v)| 64 + s(k) + s(v)).sum::<u64>()
                                    + t.concurrency_key.as_deref().map_or(0, s)
                            })
                            .sum::<u64>()
                }
                Command::Lease { pool, queues, .. } => {
                    s(pool) + vec(queues) + queues.iter().map(|q| s(q)).sum::<u64>()
                }
                Command::Complete { pool, completions } => {
                    s(pool)
                        + vec(completions)
                        + completions
                            .iter()
                            .map(|c| match &c.outcome {
                                Outcome::Success(r) => heap(r.len()),
                                Outcome::Failure { error, .. } | Outcome::RetryAfter { error, .. } => {
                                    s(error)
                                }
                            })
                            .sum::<u64>()
                }
                Command::Heartbeat { pool, leases, .. } | Command::Release { pool, leases } => {
                    s(pool) + vec(leases)
                }
                Command::ReleasePool { pool } | Command::ClearStanding { pool } => s(pool),
                Command::Cancel { ids } | Command::Retry { ids } => vec(ids),
                Command::Revoke { ids, reason } => vec(ids) + s(reason),
                Command::Progress { reports } => {
                    vec(reports) + reports.iter().map(|r| heap(r.data.len())).sum::<u64>()
                }
                Command::PurgeQueue { queue } | Command::PauseQueue { queue, .. } => s(queue),
                Command::Tick
                | Command::AllocateNodeId
                | Command::RevokeToken { .. }
                | Command::RecordAttempts => 0,
                Command::CreateToken { label, .. } => s(label),
                Command::DeclareTasks { declarer, tasks } => {
                    s(declarer) + vec(tasks) + tasks.iter().map(|t| s(&t.name) + s(&t.queue)).sum::<u64>()
                }
                Command::AddSchedule { schedule, .. } => {
                    let cadence = match &schedule.cadence {
                        Cadence::Cron { expr, tz } => s(expr) + s(tz),
                        Cadence::Interval { .. } => 0,
                    };
                    let t = &schedule.task;
                    s(&schedule.name) + cadence + s(&t.name) + s(&t.queue) + heap(t.args.len())
                }
                Command::RemoveSchedule { name } | Command::PauseSchedule { name, .. } => s(name),
                Command::SetLimit { scope, .. } | Command::RemoveLimit { scope } => match scope {
                    LimitScope::Queue(n) | LimitScope::Task(n) | LimitScope::Key(n) => s(n),
                    LimitScope::AnyKey => 0,
                },
                Command::SubmitWorkflow { workflow } => {
                    vec(&workflow.tasks)
                        + workflow
                            .tasks
                            .iter()
                            .map(|t| {
                                let spec = &t.spec;
                                vec(&t.parents)
                                    + s(&spec.name)
                                    + s(&spec.queue)
                                    + heap(spec.args.len())
                                    + spec.headers.iter().map(|(k, v)| 64 + s(k) + s(v)).sum::<u64>()
                                    + spec.concurrency_key.as_deref().map_or(0, s)
                            })
                            .sum::<u64>()
                        + vec(&workflow.shape)
                        + workflow
                            .shape
                            .iter()
                            .map(|n| match n {
                                ShapeNode::Chain(v) | ShapeNode::Group(v) => vec(v),
                                _ => 0,
                            })
                            .sum::<u64>()
                }
            }
        };
        std::mem::size_of::<Self>() as u64
            + vec(&self.commands)
            + self.commands.iter().map(per_command).sum::<u64>()
    }
}
