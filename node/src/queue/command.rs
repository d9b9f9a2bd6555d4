//! The commands the replicated queue accepts and the responses it gives.
//!
//! A log entry is a [`Request`]: the proposer's clock reading plus a batch of commands, so one
//! fsync'd entry can carry thousands of submits, leases and completions. Everything here is
//! plain data (serde); the behaviour lives in [`super::state::QueueState::apply`]. An entry's
//! encoding is versioned: [`entry_format`] says how, and what adding a command requires.

use std::fmt;

use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use serde::Serialize;

mod catalog;
pub mod entry_format;
mod limits;
mod schedule;
mod token;
mod wire;

pub use catalog::CatalogRefusal;
pub use catalog::MAX_CATALOG_NAME_LEN;
pub use catalog::MAX_DECLARERS_PER_NAME;
pub use catalog::MAX_TASK_NAMES;
pub use catalog::NODE_DECLARER_PREFIX;
pub use catalog::TaskDecl;
pub use catalog::TaskNameInfo;
pub use catalog::name_prefix;
pub use catalog::node_declarer;
pub use entry_format::ENTRY_FORMAT;
pub use entry_format::EntryFormatError;
pub use limits::LimitError;
pub use limits::LimitInfo;
pub use limits::LimitRule;
pub use limits::LimitScope;
pub use limits::MAX_CONCURRENCY_KEY_LEN;
pub use limits::MAX_LIMITS;
pub use limits::MAX_RATE_PERIOD_MS;
pub use limits::MAX_RATE_TOKENS;
pub use limits::Rate;
pub use schedule::*;
pub use token::Role;
pub use token::TokenHash;
pub use token::TokenId;
pub use token::TokenInfo;

/// Cluster-assigned task id: a sequence number, unique for the life of the cluster.
pub type TaskId = u64;

/// Milliseconds since the Unix epoch, as read by the proposing leader.
pub type UnixMs = u64;

/// Name of the default queue.
pub const DEFAULT_QUEUE: &str = "default";

/// One log entry: a batch of commands proposed together at `now_ms`. Its encoding (serde, for
/// bincode only) is versioned by hand in [`entry_format`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The proposer's wall clock. The machine uses `max(previous now, now_ms)`, so time never
    /// runs backwards across leader changes.
    pub now_ms: UnixMs,
    /// Applied in order; `apply` returns one [`Response`] per command.
    pub commands: Vec<Command>,
}

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
                Command::Tick | Command::AllocateNodeId | Command::RevokeToken { .. } => 0,
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
            }
        };
        std::mem::size_of::<Self>() as u64
            + vec(&self.commands)
            + self.commands.iter().map(per_command).sum::<u64>()
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "request(now_ms={}, commands={})",
            self.now_ms,
            self.commands.len()
        )
    }
}

/// A state change of the queue. Only these, through the log, change task state.
///
/// Stored in the log: append new variants at the end only, and give each its
/// [`Command::format`] (see [`entry_format`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Enqueue tasks (atomically, in order).
    Submit {
        /// Shared, not copied: the proposer, openraft and raft-log's entry cache each hold the
        /// entry, and copying every task's strings per holder was a measured per-task cost
        /// (docs/BENCHMARKS.md, "CPU per task with many workers"). Encoded as a sequence,
        /// exactly like the `Vec` it was.
        #[serde(with = "shared_slice")]
        tasks: Arc<[TaskSpec]>,
    },
    /// A pool (a node's local pool, or a remote worker's session) asks for up to `max`
    /// pending tasks from `queues` (in the given order of preference; within a queue by
    /// priority, then submit order). Each grant starts a new
    /// attempt leased until `now + lease_ms`.
    Lease {
        pool: String,
        queues: Vec<String>,
        max: u32,
        lease_ms: u64,
        /// `Some(ticket)`: leave what was not granted as *standing capacity* of `pool`
        /// (added to what it had, all of it renewed until `now + lease_ms`): tasks that become
        /// pending later are granted to it in the same apply. The ticket is only echoed in
        /// the apply effects, so the pool can tell when its own replica applied this lease.
        /// `None`: an ordinary lease that leaves nothing behind.
        standing_ticket: Option<u64>,
    },
    /// Results of attempts. A completion whose `(task, attempt)` is not the task's current
    /// lease is stale and changes nothing.
    Complete {
        pool: String,
        completions: Vec<Completion>,
    },
    /// Extend the leases `(task, attempt)` to `now + lease_ms`. Stale ones are ignored.
    Heartbeat {
        pool: String,
        leases: Vec<LeaseRef>,
        lease_ms: u64,
    },
    /// Give leased tasks back without counting a failure (a draining pool that did not start
    /// or finish them): the task is pending again. The attempt number stays used, so the next
    /// lease gets a new one and the released lease can never complete it.
    Release { pool: String, leases: Vec<LeaseRef> },
    /// Release every lease held by `pool`: a pool proposes this when it starts, since
    /// whatever an earlier run of the same pool (same name) held died with that process. The
    /// tasks are pending again without a failure counted.
    ReleasePool { pool: String },
    /// Drop `pool`'s standing capacity (a draining pool): nothing more is granted to it.
    ClearStanding { pool: String },
    /// Cancel tasks that are scheduled, pending or retrying.
    Cancel { ids: Vec<TaskId> },
    /// Advance time only: expire leases, release due ETA/retry tasks, purge expired results.
    /// (Every command advances time first; `Tick` exists for when nothing else is proposed.)
    Tick,
    /// Drop every pending, scheduled and retrying task of a queue (they become cancelled).
    PurgeQueue { queue: String },
    /// Stop (or resume) leasing from a queue.
    PauseQueue { queue: String, paused: bool },
    /// Hand out the next node id for a joining node. Ids come from the replicated state so they
    /// are unique and never reused, even after a member is removed.
    AllocateNodeId,
    /// Store an API token: its role and the SHA-256 of its secret (never the secret), valid for
    /// `ttl_ms` from now (`None`: until revoked). Entry format 2.
    CreateToken {
        role: Role,
        hash: TokenHash,
        /// The operator's note (`token create --label`), shown by `token list`.
        label: String,
        ttl_ms: Option<u64>,
    },
    /// Remove an API token: it grants nothing from this entry on. Entry format 2.
    RevokeToken { id: TokenId },
    /// Declare task names in the catalogue (`state/catalog.rs`): `declarer` runs them (a node's
    /// built-in registry, `node:<id>`, or a remote worker's name), each with its default queue.
    /// All or nothing; re-declaring what is declared changes nothing. Entry format 3.
    DeclareTasks { declarer: String, tasks: Vec<TaskDecl> },
    /// Keep each report as its task's latest progress, if its lease is the task's current one
    /// (stale reports change nothing). Not a change of state: `updated_ms` stays. Entry
    /// format 4.
    Progress { reports: Vec<ProgressReport> },
    /// Add a periodic schedule (`state/schedule.rs`); the same name with the same spec changes
    /// nothing, with another spec it is refused unless `replace`. Entry format 5.
    AddSchedule {
        schedule: Box<ScheduleSpec>,
        replace: bool,
    },
    /// Remove the schedule named `name`. Entry format 5.
    RemoveSchedule { name: String },
    /// Pause (or resume) the schedule named `name`. Entry format 5.
    PauseSchedule { name: String, paused: bool },
    /// Set (or replace) the flow-control limit of `scope` (`state/limits.rs`). Entry format 7.
    SetLimit { scope: LimitScope, rule: LimitRule },
    /// Remove the limit of `scope`; what it held back may be granted. Entry format 7.
    RemoveLimit { scope: LimitScope },
    /// Requeue final tasks (an operator's retry, `state/operator.rs`): each `Dead` or
    /// `Cancelled` task becomes `Pending` with a fresh retry budget (failures and lost leases
    /// back to 0; its attempt number keeps counting, so no old lease can complete it). Any
    /// other task, or an unknown id, is left alone. Entry format 8.
    Retry { ids: Vec<TaskId> },
    /// Cancel tasks, running ones too (`cancel --terminate`, `state/operator.rs`): a
    /// scheduled, pending, retrying or leased task becomes `Cancelled` with `reason` as its
    /// error; a leased one's lease is fenced (its completion is stale from here on) and its
    /// pool hears of it in the apply's effects, to abort the run. Entry format 8.
    Revoke { ids: Vec<TaskId>, reason: String },
}

/// Most bytes of a [`Command::Revoke`] reason, checked where it enters (the gRPC edge).
pub const MAX_REVOKE_REASON_LEN: usize = 256;

/// What [`Command::Revoke`] did to one task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Revoked {
    /// It was waiting (scheduled, pending, retrying): cancelled before it ran.
    Cancelled,
    /// It was running: cancelled, its lease fenced, its pool told to abort it.
    Terminated,
    /// Final already, or unknown: nothing changed.
    Unchanged,
}

/// Most bytes of one progress report: a session writes the latest of each running task to
/// the log at most once per flush interval, so this bounds what a chatty worker costs.
pub const MAX_PROGRESS_BYTES: usize = 4 * 1024;

/// Progress of one attempt, as the worker sent it (JSON, at most [`MAX_PROGRESS_BYTES`],
/// checked where it enters).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressReport {
    pub lease: LeaseRef,
    pub data: Bytes,
}

/// Headers given at submit and handed to the worker with each grant (trace context, Celery's
/// message headers): not interpreted by the cluster. Ordered, so every replica holds the same.
pub type Headers = std::collections::BTreeMap<String, String>;

/// Most headers one task may carry.
pub const MAX_HEADERS: usize = 64;

/// Most bytes one task's headers may take, names and values together: they are kept on every
/// replica with the task, and sent with every grant.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Why headers are refused at submit: over [`MAX_HEADERS`] or [`MAX_HEADER_BYTES`], or an empty
/// name. Checked where a submit enters (the gRPC edge), never by `apply`.
pub fn check_headers(headers: &Headers) -> Result<(), String> {
    if headers.len() > MAX_HEADERS {
        return Err(format!(
            "{} headers is over the limit of {MAX_HEADERS}",
            headers.len()
        ));
    }
    let bytes: usize = headers.iter().map(|(k, v)| k.len() + v.len()).sum();
    if bytes > MAX_HEADER_BYTES {
        return Err(format!(
            "headers of {bytes} bytes are over the limit of {MAX_HEADER_BYTES} bytes"
        ));
    }
    if headers.contains_key("") {
        return Err("a header name is empty".into());
    }
    Ok(())
}

/// A task to enqueue, as the client describes it. Its encoding (`command/wire.rs`) keeps the
/// bytes of entry format 1 for a spec without headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskSpec {
    pub name: String,
    /// Queue name; empty means [`DEFAULT_QUEUE`].
    pub queue: String,
    /// JSON arguments for the handler.
    pub args: Bytes,
    /// Higher runs first within a queue.
    pub priority: u8,
    /// Earliest run time (absolute).
    pub eta_ms: Option<UnixMs>,
    /// Earliest run time relative to the applying entry's `now`.
    pub countdown_ms: Option<u64>,
    /// Retries after the first failed attempt.
    pub max_retries: u32,
    /// Base retry delay; attempt n (n ≥ 1) waits `backoff_ms * 2^(n-1)`, capped at
    /// [`MAX_BACKOFF_MS`].
    pub backoff_ms: u64,
    /// Hard limit of one attempt's run time, enforced by the worker.
    pub time_limit_ms: Option<u64>,
    /// Exactly-once enqueue: a key seen before returns the earlier task's id.
    pub idempotency_key: Option<String>,
    /// How long the task and its result are kept after it ends.
    pub result_ttl_ms: u64,
    /// Handed to the worker with each grant; bounded by [`check_headers`] at submit.
    pub headers: Headers,
    /// Concurrency key (a tenant id, say): limits of `key:` scopes apply to it, and keys take
    /// fair turns (`state/limits.rs`). At most [`MAX_CONCURRENCY_KEY_LEN`] bytes, checked at
    /// the gRPC edge. Written in the log only when present (`command/wire.rs`).
    pub concurrency_key: Option<String>,
}

/// A task whose lease expires this many times (its worker died or was cut off each time) is
/// dead: it is probably what kills its workers. Lost leases do not use up `max_retries`, so a
/// node crash never costs a task one of its retries.
pub const MAX_LOST_LEASES: u8 = 5;

/// Upper bound of one retry delay.
pub const MAX_BACKOFF_MS: u64 = 60 * 60 * 1000;

/// Identifies one attempt of one task: the fencing token of a lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LeaseRef {
    pub task: TaskId,
    pub attempt: u32,
}

/// The result of one attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    pub lease: LeaseRef,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The handler returned this JSON result.
    Success(Bytes),
    /// The attempt failed. `retry: false` makes the task dead at once (bad arguments, unknown
    /// task name): retrying cannot help.
    Failure { error: String, retry: bool },
    /// The attempt failed retryably, and the worker asks for the retry after `delay_ms`
    /// (capped at [`MAX_BACKOFF_MS`] by `apply`) instead of the task's backoff: a rate limit's
    /// `Retry-After`. Entry format 4.
    RetryAfter { error: String, delay_ms: u64 },
}

impl Outcome {
    /// `(error, retryable)` of a failure; `None` for a success.
    pub fn failure(&self) -> Option<(&str, bool)> {
        match self {
            Outcome::Success(_) => None,
            Outcome::Failure { error, retry } => Some((error, *retry)),
            Outcome::RetryAfter { error, .. } => Some((error, true)),
        }
    }
}

/// A task handed to a worker by a `Lease`. Its encoding (`command/wire.rs`) keeps the bytes of
/// a grant without headers as they were before headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub lease: LeaseRef,
    pub name: String,
    pub queue: String,
    pub args: Bytes,
    pub time_limit_ms: Option<u64>,
    /// When the lease runs out unless heartbeated.
    pub lease_deadline_ms: UnixMs,
    /// The task's submit headers.
    pub headers: Headers,
}

/// What a submitted task became.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitted {
    pub id: TaskId,
    /// The idempotency key had been seen; no task was created.
    pub duplicate: bool,
}

/// Outcome of one completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompletionResult {
    /// Recorded: it changed the task's state.
    Accepted,
    /// The lease was not the task's current one (or the task is gone): nothing changed.
    Stale,
}

/// One response per command, in the same order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Submitted(Vec<Submitted>),
    Leased(Vec<Grant>),
    Completed(Vec<CompletionResult>),
    /// Per lease: was it extended.
    Heartbeated(Vec<bool>),
    /// Per lease: was it released.
    Released(Vec<bool>),
    /// How many leases `ReleasePool` released.
    ReleasedPool(u64),
    /// Whether `ClearStanding` found standing capacity to drop.
    ClearedStanding(bool),
    /// Per id: was it cancelled by this command.
    Cancelled(Vec<bool>),
    Ticked,
    /// How many tasks were purged.
    Purged(u64),
    Paused,
    /// The id allocated by `AllocateNodeId`.
    NodeId(u64),
    /// The new token's id; `None` when a token with the same hash exists (nothing stored).
    TokenCreated(Option<TokenId>),
    /// Whether `RevokeToken` found the token.
    TokenRevoked(bool),
    /// How many of `DeclareTasks`' declarations were new or changed a queue; or why it
    /// changed nothing.
    TasksDeclared(Result<u32, CatalogRefusal>),
    /// Per report: was it kept (its lease current).
    Progressed(Vec<bool>),
    /// What `AddSchedule` did, or why it changed nothing.
    ScheduleAdded(Result<ScheduleAdded, ScheduleRefusal>),
    /// Whether `RemoveSchedule` found the schedule.
    ScheduleRemoved(bool),
    /// Whether `PauseSchedule` found the schedule.
    SchedulePaused(bool),
    /// Whether `SetLimit` took the rule, or why not.
    LimitSet(Result<(), LimitError>),
    /// Whether `RemoveLimit` found a limit.
    LimitRemoved(bool),
    /// Per id of `Retry`: was it requeued by this command.
    Retried(Vec<bool>),
    /// Per id of `Revoke`: what it did.
    Revoked(Vec<Revoked>),
}

/// Lifecycle state of a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TaskState {
    /// Waiting for its ETA.
    Scheduled,
    /// Ready to lease.
    Pending,
    /// Held by a worker.
    Leased,
    /// Failed, waiting out its backoff.
    Retrying,
    /// Final: finished with a result.
    Succeeded,
    /// Final: failed with no retries left, or not retryable.
    Dead,
    /// Final: cancelled before it ran, or while it ran (`Revoke`).
    Cancelled,
}

impl TaskState {
    /// Final states never change again (until the result expires and the task is purged).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskState::Succeeded | TaskState::Dead | TaskState::Cancelled
        )
    }
}

/// A read-only view of one task, for `GetTask`, `WaitResults` and tests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskView {
    pub id: TaskId,
    pub name: String,
    pub queue: String,
    pub state: TaskState,
    /// Attempts started so far.
    pub attempt: u32,
    pub max_retries: u32,
    pub result: Option<Bytes>,
    pub error: Option<String>,
    pub created_ms: UnixMs,
    pub updated_ms: UnixMs,
    /// The latest progress a worker reported, with its attempt and time.
    pub progress: Option<crate::queue::state::Progress>,
}

/// Counts of one queue's tasks by state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueCounts {
    pub scheduled: u64,
    pub pending: u64,
    pub leased: u64,
    pub retrying: u64,
    pub succeeded: u64,
    pub dead: u64,
    pub cancelled: u64,
    pub paused: bool,
}

/// Serde for `Arc<[T]>` as a plain sequence (the encoding of `Vec<T>`), without serde's `rc`
/// feature.
mod shared_slice {
    use std::sync::Arc;

    use serde::Deserialize;
    use serde::Deserializer;
    use serde::Serialize;
    use serde::Serializer;

    pub fn serialize<T: Serialize, S: Serializer>(v: &Arc<[T]>, s: S) -> Result<S::Ok, S::Error> {
        v[..].serialize(s)
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Arc<[T]>, D::Error> {
        Vec::<T>::deserialize(d).map(Arc::from)
    }
}
