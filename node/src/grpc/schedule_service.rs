//! `flotilla.v1.ScheduleService`: periodic schedules (`queue/state/schedule.rs`,
//! docs/SCHEDULES.md). A schedule's task is validated exactly as a submitted task is (its name
//! known, its queue a queue name, its payload within the limit: `QueueApi::validate_all`);
//! the rest (the cron expression, the time zone, the grace, the bounds) is judged by the state
//! machine when the command applies, and a refusal comes back as this call's error. Listing
//! reads this node's replica behind a read barrier, like every read.

use flotilla_proto::v1 as pb;
use flotilla_proto::v1::schedule_service_server::ScheduleService;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use super::queue_service::QueueApi;
use super::status::ApiError;
use crate::proposer::Proposer;
use crate::queue::AddOutcome;
use crate::queue::Cadence;
use crate::queue::CatchUp;
use crate::queue::DEFAULT_GRACE_MS;
use crate::queue::ScheduleInfo;
use crate::queue::ScheduleSpec;
use crate::queue::TaskSpec;
use crate::queue::ops;
use crate::queue::state::schedule::Slots;

/// Most next run times one schedule lists.
const MAX_UPCOMING: u32 = 100;

/// The schedule service: task validation and reads are the queue service's.
#[derive(Clone)]
pub struct ScheduleApi {
    queue: QueueApi,
    proposer: Proposer,
}

impl ScheduleApi {
    pub fn new(queue: QueueApi, proposer: Proposer) -> Self {
        Self { queue, proposer }
    }

    /// The domain schedule of a request, or what is wrong with it.
    async fn spec(&self, s: pb::Schedule) -> Result<ScheduleSpec, ApiError> {
        let bad = |m: &str| ApiError::InvalidArgument(format!("schedule '{}': {m}", s.name));
        let cadence = match (s.cron.is_empty(), s.every_ms) {
            (false, 0) => Cadence::Cron {
                expr: s.cron.clone(),
                tz: s.time_zone.clone(),
            },
            (true, every_ms) if every_ms > 0 && s.time_zone.is_empty() => Cadence::Interval { every_ms },
            (true, _) if !s.time_zone.is_empty() => return Err(bad("a time zone needs a cron expression")),
            _ => return Err(bad("give exactly one of a cron expression and an interval")),
        };
        let catch_up = match pb::CatchUp::try_from(s.catch_up) {
            Ok(pb::CatchUp::Unspecified | pb::CatchUp::Skip) => CatchUp::Skip,
            Ok(pb::CatchUp::Once) => CatchUp::Once,
            Err(_) => return Err(bad("unknown catch-up policy")),
        };
        let task = s.task.clone().ok_or_else(|| bad("no task"))?;
        let task = self.queue.validate_all(vec![task]).await?.remove(0);
        Ok(ScheduleSpec {
            name: s.name,
            cadence,
            catch_up,
            grace_ms: if s.grace_ms == 0 {
                DEFAULT_GRACE_MS
            } else {
                s.grace_ms
            },
            task,
        })
    }
}

/// A domain schedule on the wire.
fn schedule_pb(spec: ScheduleSpec) -> pb::Schedule {
    let (cron, time_zone, every_ms) = match spec.cadence {
        Cadence::Cron { expr, tz } => (expr, tz, 0),
        Cadence::Interval { every_ms } => (String::new(), String::new(), every_ms),
    };
    pb::Schedule {
        name: spec.name,
        cron,
        time_zone,
        every_ms,
        catch_up: match spec.catch_up {
            CatchUp::Skip => pb::CatchUp::Skip,
            CatchUp::Once => pb::CatchUp::Once,
        } as i32,
        grace_ms: spec.grace_ms,
        task: Some(task_pb(spec.task)),
    }
}

fn task_pb(t: TaskSpec) -> pb::TaskSpec {
    pb::TaskSpec {
        name: t.name,
        queue: t.queue,
        args: t.args,
        priority: u32::from(t.priority),
        max_retries: t.max_retries,
        retry_backoff_ms: t.backoff_ms,
        time_limit_ms: t.time_limit_ms.unwrap_or(0),
        result_ttl_ms: t.result_ttl_ms,
        ..pb::TaskSpec::default()
    }
}

/// A listed schedule with its next `upcoming` run times.
fn info_pb(info: ScheduleInfo, upcoming: usize) -> pb::ScheduleInfo {
    let next = match info.next_ms {
        Some(next) => {
            let later = Slots::new(&info.spec.cadence, info.created_ms)
                .map(|slots| slots.upcoming(next, upcoming.saturating_sub(1)))
                .unwrap_or_default();
            std::iter::once(next).chain(later).collect()
        }
        None => Vec::new(),
    };
    pb::ScheduleInfo {
        id: info.id,
        schedule: Some(schedule_pb(info.spec)),
        paused: info.paused,
        created_unix_ms: info.created_ms,
        next_unix_ms: next,
        last_slot_unix_ms: info.last_slot_ms,
        last_task_id: info.last_task,
        fired: info.fired,
        outages: info.outages,
    }
}

#[tonic::async_trait]
impl ScheduleService for ScheduleApi {
    async fn add_schedule(
        &self,
        request: Request<pb::AddScheduleRequest>,
    ) -> Result<Response<pb::AddScheduleResponse>, Status> {
        let req = request.into_inner();
        let schedule = req
            .schedule
            .ok_or_else(|| ApiError::InvalidArgument("no schedule in the request".into()))?;
        let spec = self.spec(schedule).await?;
        let added = self
            .proposer
            .op(ops::AddSchedule {
                schedule: spec.into(),
                replace: req.replace,
            })
            .await
            .map_err(ApiError::from)?
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::AddScheduleResponse {
            id: added.id,
            outcome: match added.outcome {
                AddOutcome::Added => "added",
                AddOutcome::Unchanged => "unchanged",
                AddOutcome::Replaced => "replaced",
            }
            .into(),
            next_unix_ms: added.next_ms,
        }))
    }

    async fn list_schedules(
        &self,
        request: Request<pb::ListSchedulesRequest>,
    ) -> Result<Response<pb::ListSchedulesResponse>, Status> {
        let upcoming = request.into_inner().upcoming.clamp(1, MAX_UPCOMING) as usize;
        self.queue.read_barrier().await?;
        let list = self.queue.replica().read(|q| q.schedules().list());
        Ok(Response::new(pb::ListSchedulesResponse {
            schedules: list.into_iter().map(|i| info_pb(i, upcoming)).collect(),
        }))
    }

    async fn pause_schedule(
        &self,
        request: Request<pb::PauseScheduleRequest>,
    ) -> Result<Response<pb::PauseScheduleResponse>, Status> {
        let req = request.into_inner();
        let found = self
            .proposer
            .op(ops::PauseSchedule {
                name: req.name.clone(),
                paused: req.paused,
            })
            .await
            .map_err(ApiError::from)?;
        if !found {
            return Err(ApiError::NoSchedule(req.name).into());
        }
        Ok(Response::new(pb::PauseScheduleResponse {}))
    }

    async fn remove_schedule(
        &self,
        request: Request<pb::RemoveScheduleRequest>,
    ) -> Result<Response<pb::RemoveScheduleResponse>, Status> {
        let name = request.into_inner().name;
        let found = self
            .proposer
            .op(ops::RemoveSchedule { name: name.clone() })
            .await
            .map_err(ApiError::from)?;
        if !found {
            return Err(ApiError::NoSchedule(name).into());
        }
        Ok(Response::new(pb::RemoveScheduleResponse {}))
    }
}
