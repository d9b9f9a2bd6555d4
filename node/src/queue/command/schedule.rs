//! The data of periodic schedules as the log carries it: what `AddSchedule` names
//! ([`ScheduleSpec`]: a [`Cadence`], a [`CatchUp`] policy, a grace and the task to enqueue),
//! why one is refused ([`ScheduleRefusal`]), the limits that refuse it, and the view `flotilla
//! schedule list` shows ([`ScheduleInfo`]).
//!
//! The rules live in `state/schedule.rs` and the slot arithmetic in `state/schedule/slots.rs`;
//! these types are here because the commands and their responses are stored in the log and
//! sent between nodes (append-only variants). docs/SCHEDULES.md explains them with examples.

use serde::Deserialize;
use serde::Serialize;

use super::TaskId;
use super::TaskSpec;
use super::UnixMs;

/// A schedule's id: sequential from 1, never reused (a removed schedule's slots keep their
/// idempotency keys apart from any later schedule's).
pub type ScheduleId = u64;

/// Most schedules the cluster holds. An `AddSchedule` past it is refused ([`ScheduleRefusal::Full`]).
pub const MAX_SCHEDULES: usize = 100_000;

/// Largest one schedule may be ([`ScheduleSpec::size`]: its name, expression, zone, task name,
/// queue and arguments, plus a fixed part).
pub const MAX_SCHEDULE_BYTES: usize = 16 * 1024;

/// Most bytes all schedules together may take ([`ScheduleSpec::size`] summed): with
/// [`MAX_SCHEDULES`] this bounds the schedule table in memory and in every snapshot.
pub const MAX_SCHEDULES_TOTAL_BYTES: u64 = 64 * 1024 * 1024;

/// Longest schedule name.
pub const MAX_SCHEDULE_NAME_LEN: usize = 256;

/// Shortest interval. A cron expression has a resolution of one second anyway.
pub const MIN_INTERVAL_MS: u64 = 1_000;

/// Shortest grace: with a shorter one a slot would be missed whenever its entry is not applied
/// within the same millisecond.
pub const MIN_GRACE_MS: u64 = 1_000;

/// Longest grace. It bounds the slots one apply enqueues for one schedule after an outage
/// (at most `MAX_GRACE_MS / MIN_INTERVAL_MS + 1`).
pub const MAX_GRACE_MS: u64 = 60 * 60 * 1000;

/// The grace of a schedule added without one (the API's default).
pub const DEFAULT_GRACE_MS: u64 = 60 * 1000;

/// The idempotency key of the task schedule `id` enqueues for `slot`: a slot can enqueue at
/// most one live task, whatever happens (the key index holds it until the task is purged).
pub fn schedule_key(id: ScheduleId, slot: UnixMs) -> String {
    format!("schedule:{id}:{slot}")
}

/// When a schedule's slots fall. Stored in the log: append new variants at the end only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cadence {
    /// A cron expression (5 fields, minute first; or 6, second first) read in time zone `tz`
    /// (an IANA name such as `Europe/Berlin`; empty means UTC).
    Cron { expr: String, tz: String },
    /// Every `every_ms` from the moment the schedule was added (or replaced).
    Interval { every_ms: u64 },
}

/// What happens to slots that passed more than the grace ago without being enqueued (the
/// cluster could not apply an entry in time: an outage, or the schedule was added late).
/// Stored in the log: append new variants at the end only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum CatchUp {
    /// They are not run: the schedule goes on with its next slot.
    #[default]
    Skip,
    /// They are run once together: one task, keyed by the first missed slot.
    Once,
}

impl CatchUp {
    /// The name used on the command line and in the APIs.
    pub fn name(self) -> &'static str {
        match self {
            CatchUp::Skip => "skip",
            CatchUp::Once => "once",
        }
    }

    /// The policy named `name` (see [`CatchUp::name`]).
    pub fn parse(name: &str) -> Option<CatchUp> {
        [CatchUp::Skip, CatchUp::Once]
            .into_iter()
            .find(|c| c.name() == name)
    }
}

/// A schedule as `AddSchedule` gives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleSpec {
    /// Unique among schedules; names it in every other call.
    pub name: String,
    pub cadence: Cadence,
    pub catch_up: CatchUp,
    /// A slot enqueued at most this long after its time is on time; later it is missed (see
    /// [`CatchUp`]). Between [`MIN_GRACE_MS`] and [`MAX_GRACE_MS`].
    pub grace_ms: u64,
    /// The task each slot enqueues. Its `eta_ms`, `countdown_ms` and `idempotency_key` must be
    /// unset: the slot is its time, and its key is [`schedule_key`].
    pub task: TaskSpec,
}

impl ScheduleSpec {
    /// What the schedule counts for against [`MAX_SCHEDULE_BYTES`] and
    /// [`MAX_SCHEDULES_TOTAL_BYTES`]: its variable parts plus a fixed 256 bytes.
    pub fn size(&self) -> usize {
        let cadence = match &self.cadence {
            Cadence::Cron { expr, tz } => expr.len() + tz.len(),
            Cadence::Interval { .. } => 0,
        };
        256 + self.name.len() + cadence + self.task.name.len() + self.task.queue.len() + self.task.args.len()
    }
}

/// What `AddSchedule` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AddOutcome {
    /// A new schedule.
    Added,
    /// A schedule of that name with exactly this spec existed: nothing changed (adding is
    /// idempotent, so an application may add its schedules on every start).
    Unchanged,
    /// A schedule of that name with another spec was replaced (`replace: true`): same id, new
    /// spec, slots counted afresh from now.
    Replaced,
}

/// The answer to an accepted `AddSchedule`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleAdded {
    pub id: ScheduleId,
    pub outcome: AddOutcome,
    /// Its next slot (`None`: paused).
    pub next_ms: Option<UnixMs>,
}

/// Why an `AddSchedule` changed nothing. Stored in responses (append variants at the end).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ScheduleRefusal {
    #[error("a schedule name must be 1 to {MAX_SCHEDULE_NAME_LEN} bytes (got {len})")]
    BadName { len: usize },
    #[error("bad cron expression '{expr}': {why}")]
    BadCron { expr: String, why: String },
    #[error("unknown time zone '{tz}' (an IANA name such as Europe/Berlin, or empty for UTC)")]
    BadTimeZone { tz: String },
    #[error("the cron expression '{expr}' has no time after now in time zone '{tz}'")]
    NoSlot { expr: String, tz: String },
    #[error("an interval must be at least {MIN_INTERVAL_MS} ms (got {every_ms})")]
    IntervalTooShort { every_ms: u64 },
    #[error("a grace must be {MIN_GRACE_MS} to {MAX_GRACE_MS} ms (got {grace_ms})")]
    BadGrace { grace_ms: u64 },
    #[error("a scheduled task takes no {option}: its slot is its time and its key")]
    TaskOption { option: String },
    #[error("the schedule takes {size} bytes, over the limit of {MAX_SCHEDULE_BYTES}")]
    TooLarge { size: usize },
    #[error(
        "the cluster holds its most schedules ({MAX_SCHEDULES}, or {MAX_SCHEDULES_TOTAL_BYTES} \
         bytes of them): remove some first"
    )]
    Full,
    #[error("a schedule named '{name}' exists with another spec (replace it, or remove it first)")]
    Exists { name: String },
}

/// One schedule as `ListSchedules` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleInfo {
    pub id: ScheduleId,
    pub spec: ScheduleSpec,
    pub paused: bool,
    /// When it was added (or last replaced): an interval's slots count from here.
    pub created_ms: UnixMs,
    /// Its next slot; `None` while paused, or when its expression has no later time.
    pub next_ms: Option<UnixMs>,
    /// The last slot that enqueued a task, and that task.
    pub last_slot_ms: Option<UnixMs>,
    pub last_task: Option<TaskId>,
    /// Tasks enqueued so far (a catch-up run counts once).
    pub fired: u64,
    /// Applies that found slots missed (passed more than the grace ago), each counted once
    /// however many slots it skipped or ran as one catch-up.
    pub outages: u64,
}
