//! Periodic schedules (docs/SCHEDULES.md): [`Client::add_schedule`] (admin) with a
//! [`ScheduleRequest`] built by [`Client::schedule_cron`] or [`Client::schedule_every`];
//! [`Client::schedules`] lists them with their next run times; [`Client::pause_schedule`],
//! [`Client::resume_schedule`] and [`Client::remove_schedule`] (admin).
//!
//! ```no_run
//! # async fn demo(client: flotilla_client::Client) -> flotilla_client::Result<()> {
//! let report = client.task("report.build").args(&serde_json::json!({"kind": "daily"}))?;
//! let nightly = client.schedule_cron("nightly-report", "30 2 * * *", "Europe/Berlin", report);
//! let added = client.add_schedule(nightly).await?;
//! println!("next run at {:?} (ms since the epoch)", added.next_unix_ms);
//! # Ok(()) }
//! ```

use std::time::Duration;

use flotilla_proto::v1 as pb;
use flotilla_proto::v1::schedule_service_client::ScheduleServiceClient;
use serde::Serialize;

use crate::client::{Client, with_timeout};
use crate::error::Result;
use crate::task::{TaskId, TaskRequest};

/// What becomes of slots missed by more than the grace (an outage).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CatchUp {
    /// Not run (the default).
    #[default]
    Skip,
    /// Run once together.
    Once,
}

impl CatchUp {
    /// `skip` or `once`.
    pub fn name(self) -> &'static str {
        match self {
            CatchUp::Skip => "skip",
            CatchUp::Once => "once",
        }
    }

    fn to_pb(self) -> pb::CatchUp {
        match self {
            CatchUp::Skip => pb::CatchUp::Skip,
            CatchUp::Once => pb::CatchUp::Once,
        }
    }
}

impl std::str::FromStr for CatchUp {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "skip" => Ok(CatchUp::Skip),
            "once" => Ok(CatchUp::Once),
            _ => Err(format!("'{s}' is not a catch-up policy: skip or once")),
        }
    }
}

/// When a schedule's slots fall.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Cadence {
    /// A cron expression read in an IANA time zone (empty: UTC).
    Cron { expr: String, time_zone: String },
    /// Every so many ms, from when the schedule was added.
    Every { every_ms: u64 },
}

/// A schedule to add: build it with [`Client::schedule_cron`] or [`Client::schedule_every`].
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleRequest {
    name: String,
    cadence: Cadence,
    catch_up: CatchUp,
    grace: Option<Duration>,
    task: TaskRequest,
    replace: bool,
}

impl ScheduleRequest {
    /// What becomes of slots missed by more than the grace (default: skip them).
    pub fn catch_up(mut self, policy: CatchUp) -> Self {
        self.catch_up = policy;
        self
    }

    /// How late a slot may be enqueued and still run (default 60 s; 1 s to 1 h).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = Some(grace);
        self
    }

    /// Replace a schedule of this name that has another spec (else adding it is refused).
    pub fn replace(mut self, replace: bool) -> Self {
        self.replace = replace;
        self
    }

    fn into_pb(self) -> pb::AddScheduleRequest {
        let (cron, time_zone, every_ms) = match self.cadence {
            Cadence::Cron { expr, time_zone } => (expr, time_zone, 0),
            Cadence::Every { every_ms } => (String::new(), String::new(), every_ms),
        };
        let mut task = pb::TaskSpec::from(self.task);
        // Each slot's task is keyed by the cluster; a submit's own key does not apply.
        task.idempotency_key.clear();
        pb::AddScheduleRequest {
            schedule: Some(pb::Schedule {
                name: self.name,
                cron,
                time_zone,
                every_ms,
                catch_up: self.catch_up.to_pb() as i32,
                grace_ms: self.grace.map_or(0, |g| ms(g).max(1)),
                task: Some(task),
            }),
            replace: self.replace,
        }
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What [`Client::add_schedule`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScheduleAdded {
    pub id: u64,
    /// `added`, `unchanged` (it existed with this spec) or `replaced`.
    pub outcome: String,
    /// Its next slot, ms since the Unix epoch (`None` while paused).
    pub next_unix_ms: Option<u64>,
}

/// A schedule as [`Client::schedules`] lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScheduleInfo {
    pub id: u64,
    pub name: String,
    pub cadence: Cadence,
    pub catch_up: CatchUp,
    pub grace_ms: u64,
    pub task: String,
    pub queue: String,
    pub paused: bool,
    pub created_unix_ms: u64,
    /// Its next run times, ms since the Unix epoch (none while paused).
    pub next_unix_ms: Vec<u64>,
    pub last_slot_unix_ms: Option<u64>,
    pub last_task: Option<TaskId>,
    /// Tasks enqueued so far.
    pub fired: u64,
    /// Times it found slots missed by an outage.
    pub outages: u64,
}

impl From<pb::ScheduleInfo> for ScheduleInfo {
    fn from(i: pb::ScheduleInfo) -> Self {
        let s = i.schedule.unwrap_or_default();
        let task = s.task.unwrap_or_default();
        ScheduleInfo {
            id: i.id,
            name: s.name,
            cadence: if s.cron.is_empty() {
                Cadence::Every { every_ms: s.every_ms }
            } else {
                Cadence::Cron {
                    expr: s.cron,
                    time_zone: s.time_zone,
                }
            },
            catch_up: if s.catch_up == pb::CatchUp::Once as i32 {
                CatchUp::Once
            } else {
                CatchUp::Skip
            },
            grace_ms: s.grace_ms,
            task: task.name,
            queue: task.queue,
            paused: i.paused,
            created_unix_ms: i.created_unix_ms,
            next_unix_ms: i.next_unix_ms,
            last_slot_unix_ms: i.last_slot_unix_ms,
            last_task: i.last_task_id.map(TaskId),
            fired: i.fired,
            outages: i.outages,
        }
    }
}

type Stub = ScheduleServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, crate::token::BearerToken>,
>;

fn stub(client: &Client, node: usize) -> Stub {
    // A full table lists up to 64 MiB of schedules (their tasks' arguments): tonic's 4 MiB
    // default refused the listing once ~270 large schedules existed.
    ScheduleServiceClient::new(client.channel(node))
        .max_decoding_message_size(crate::client::MAX_DECODING_MESSAGE_BYTES)
}

impl Client {
    /// A schedule named `name` that enqueues `task` at every local time the cron expression
    /// `expr` matches in IANA time zone `time_zone` (empty: UTC).
    pub fn schedule_cron(
        &self,
        name: impl Into<String>,
        expr: impl Into<String>,
        time_zone: impl Into<String>,
        task: TaskRequest,
    ) -> ScheduleRequest {
        ScheduleRequest {
            name: name.into(),
            cadence: Cadence::Cron {
                expr: expr.into(),
                time_zone: time_zone.into(),
            },
            catch_up: CatchUp::Skip,
            grace: None,
            task,
            replace: false,
        }
    }

    /// A schedule named `name` that enqueues `task` every `every` (at least 1 s), counted from
    /// when it is added.
    pub fn schedule_every(
        &self,
        name: impl Into<String>,
        every: Duration,
        task: TaskRequest,
    ) -> ScheduleRequest {
        ScheduleRequest {
            name: name.into(),
            cadence: Cadence::Every { every_ms: ms(every) },
            catch_up: CatchUp::Skip,
            grace: None,
            task,
            replace: false,
        }
    }

    /// Adds a schedule (needs an admin token). Adding it again with the same spec is
    /// harmless (`outcome` is `unchanged`), so an application may add its schedules on every
    /// start; with another spec it is refused unless [`ScheduleRequest::replace`].
    pub async fn add_schedule(&self, schedule: ScheduleRequest) -> Result<ScheduleAdded> {
        let request = schedule.into_pb();
        let reply = self
            .unary_on(stub, None, |mut c, t| {
                let r = with_timeout(request.clone(), t);
                async move { c.add_schedule(r).await }
            })
            .await?;
        Ok(ScheduleAdded {
            id: reply.id,
            outcome: reply.outcome,
            next_unix_ms: reply.next_unix_ms,
        })
    }

    /// Every schedule, by name, each with its next `upcoming` run times (1 to 100).
    pub async fn schedules(&self, upcoming: u32) -> Result<Vec<ScheduleInfo>> {
        let reply = self
            .unary_on(stub, None, |mut c, t| async move {
                c.list_schedules(with_timeout(pb::ListSchedulesRequest { upcoming }, t))
                    .await
            })
            .await?;
        Ok(reply.schedules.into_iter().map(ScheduleInfo::from).collect())
    }

    /// Pauses the schedule `name` (admin): slots that pass while paused do not run.
    pub async fn pause_schedule(&self, name: &str) -> Result<()> {
        self.set_paused(name, true).await
    }

    /// Resumes the schedule `name` (admin) from its next slot after now.
    pub async fn resume_schedule(&self, name: &str) -> Result<()> {
        self.set_paused(name, false).await
    }

    async fn set_paused(&self, name: &str, paused: bool) -> Result<()> {
        let request = pb::PauseScheduleRequest {
            name: name.to_string(),
            paused,
        };
        self.unary_on(stub, None, |mut c, t| {
            let r = with_timeout(request.clone(), t);
            async move { c.pause_schedule(r).await }
        })
        .await
        .map(|_| ())
    }

    /// Removes the schedule `name` (admin); the tasks it enqueued stay.
    pub async fn remove_schedule(&self, name: &str) -> Result<()> {
        let request = pb::RemoveScheduleRequest {
            name: name.to_string(),
        };
        self.unary_on(stub, None, |mut c, t| {
            let r = with_timeout(request.clone(), t);
            async move { c.remove_schedule(r).await }
        })
        .await
        .map(|_| ())
    }
}
