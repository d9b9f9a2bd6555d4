//! The commands the replicated queue accepts and the responses it gives.
//!
//! A log entry is a [`Request`]: the proposer's clock reading plus a batch of commands, so one
//! fsync'd entry can carry thousands of submits, leases and completions. Everything here is
//! plain data (serde); the behaviour lives in [`super::state::QueueState::apply`]. An entry's
//! encoding is versioned: [`entry_format`] says how, and what adding a command requires.
//!
//! Beside the entry, the commands and the responses (this file), one file per concern:
//! `task.rs` (a submitted task's spec, headers, its state and view), `lease.rs` (leases and
//! what names one: grants, completions, progress, revokes), `size.rs` (an entry's size
//! estimates), `wire.rs` (the hand-written encodings), `entry_format.rs` (versions), and the
//! types of each feature's commands (`catalog.rs`, `limits.rs`, `schedule.rs`, `token.rs`,
//! `workflow.rs`, `canvas.rs`, `attempts.rs`).

use std::fmt;

use std::sync::Arc;

use serde::Deserialize;
use serde::Serialize;

mod attempts;
mod canvas;
mod catalog;
pub mod entry_format;
mod lease;
mod limits;
mod schedule;
mod shared_slice;
mod size;
mod task;
mod token;
mod wire;
mod workflow;

pub use attempts::*;
pub use canvas::Canvas;
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
pub use lease::*;
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
pub use task::*;
pub use token::Role;
pub use token::TokenHash;
pub use token::TokenId;
pub use token::TokenInfo;
pub use workflow::*;

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
    /// Submit a workflow (`state/deps.rs`): its tasks, some waiting for parents, and its
    /// shape, all or nothing. Entry format 9.
    SubmitWorkflow { workflow: Box<WorkflowSpec> },
    /// Start recording attempt histories (`state/attempts.rs`): from this entry on, every
    /// grant opens an entry in its task's history and the attempt's end closes it. Proposed
    /// by the leader once every member's build reads entry format 10 (`leader.rs`); applying
    /// it again changes nothing. Entry format 10.
    RecordAttempts,
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
    /// The workflow `SubmitWorkflow` created (or found by its key), or why it created nothing.
    WorkflowSubmitted(Result<WorkflowSubmitted, WorkflowRefusal>),
    /// Whether `RecordAttempts` switched recording on (`false`: it was on already).
    RecordingAttempts(bool),
}
