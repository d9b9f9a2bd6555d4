//! The dashboard's JSON API: each route checks the caller's right to the gRPC method it calls,
//! then calls that method of the node's service and turns its reply into JSON. A `Status` of
//! the service becomes the HTTP status of the same meaning (400 bad input, 404 unknown id, 503
//! no leader), with `{"error": message}`.

use axum::extract::Path;
use axum::extract::RawQuery;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::response::Response;
use flotilla_proto::v1 as pb;
use flotilla_proto::v1::ops_service_server::OpsService;
use flotilla_proto::v1::queue_service_server::QueueService;
use flotilla_proto::v1::schedule_service_server::ScheduleService;
use serde_json::Value;
use serde_json::json;
use tonic::Request;

use super::ACT_HEADER;
use super::Dashboard;

pub(super) const LIST_TASKS: &str = "/flotilla.v1.OpsService/ListTasks";
const DESCRIBE_TASK: &str = "/flotilla.v1.OpsService/DescribeTask";
const RETRY: &str = "/flotilla.v1.OpsService/Retry";
const PAUSE: &str = "/flotilla.v1.OpsService/PauseQueue";
const RESUME: &str = "/flotilla.v1.OpsService/ResumeQueue";
const QUEUE_STATS: &str = "/flotilla.v1.QueueService/QueueStats";
const CLUSTER_STATUS: &str = "/flotilla.v1.QueueService/ClusterStatus";
const LIST_SCHEDULES: &str = "/flotilla.v1.ScheduleService/ListSchedules";
const LIST_WORKERS: &str = "/flotilla.v1.QueueService/ListWorkers";

/// Longest query string the task list reads: filters are short, anything longer is a mistake.
const MAX_QUERY_LEN: usize = 2048;

/// A JSON error reply.
pub(super) fn error(status: StatusCode, message: &str) -> Response {
    json_reply(status, &json!({ "error": message }))
}

/// A refused request: its status and message (a `Response` is too large for an `Err`).
pub(super) struct Refusal(pub(super) StatusCode, pub(super) String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error(self.0, &self.1)
    }
}

fn json_reply(status: StatusCode, body: &Value) -> Response {
    (status, [(CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// The HTTP status of a service's gRPC status.
fn status_of(s: &tonic::Status) -> Response {
    use tonic::Code;
    let http = match s.code() {
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unavailable | Code::DeadlineExceeded => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(http, s.message())
}

fn reply<T>(r: Result<tonic::Response<T>, tonic::Status>, body: impl FnOnce(T) -> Value) -> Response {
    match r {
        Ok(r) => json_reply(StatusCode::OK, &body(r.into_inner())),
        Err(s) => status_of(&s),
    }
}

/// A mutating call: POST (the router's), the dashboard header, and the method's right.
fn may_act(dash: &Dashboard, method: &str, headers: &HeaderMap) -> Result<(), Refusal> {
    if !headers.contains_key(ACT_HEADER) {
        return Err(Refusal(
            StatusCode::FORBIDDEN,
            format!("a dashboard action needs the header {ACT_HEADER}"),
        ));
    }
    dash.allow(method, headers)
}

fn state_name(s: i32) -> &'static str {
    match pb::TaskState::try_from(s) {
        Ok(pb::TaskState::Scheduled) => "scheduled",
        Ok(pb::TaskState::Waiting) => "waiting",
        Ok(pb::TaskState::Pending) => "pending",
        Ok(pb::TaskState::Leased) => "leased",
        Ok(pb::TaskState::Retrying) => "retrying",
        Ok(pb::TaskState::Succeeded) => "succeeded",
        Ok(pb::TaskState::Dead) => "dead",
        Ok(pb::TaskState::Cancelled) => "cancelled",
        _ => "unknown",
    }
}

fn state_number(name: &str) -> Option<pb::TaskState> {
    Some(match name {
        "scheduled" => pb::TaskState::Scheduled,
        "waiting" => pb::TaskState::Waiting,
        "pending" => pb::TaskState::Pending,
        "leased" => pb::TaskState::Leased,
        "retrying" => pb::TaskState::Retrying,
        "succeeded" => pb::TaskState::Succeeded,
        "dead" => pb::TaskState::Dead,
        "cancelled" => pb::TaskState::Cancelled,
        _ => return None,
    })
}

/// JSON bytes of a task (result, progress, args) as JSON when they parse, else as text.
fn json_bytes(b: &[u8]) -> Value {
    if b.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(b).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(b).into_owned()))
}

pub(super) fn task_json(t: &pb::TaskInfo) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "queue": t.queue,
        "state": state_name(t.state),
        "attempt": t.attempt,
        "max_retries": t.max_retries,
        "error": t.error,
        "created_unix_ms": t.created_unix_ms,
        "updated_unix_ms": t.updated_unix_ms,
        "result": json_bytes(&t.result),
        "progress": json_bytes(&t.progress),
        "progress_attempt": t.progress_attempt,
        "progress_unix_ms": t.progress_unix_ms,
    })
}

pub(super) fn cluster_json(c: &pb::ClusterStatusResponse) -> Value {
    let members: Vec<Value> = c
        .members
        .iter()
        .map(|m| json!({ "id": m.id, "addr": m.addr, "role": m.role, "zone": m.zone, "lag": m.lag }))
        .collect();
    json!({
        "node_id": c.node_id,
        "leader_id": c.leader_id,
        "term": c.term,
        "commit_index": c.commit_index,
        "applied_index": c.applied_index,
        "members": members,
    })
}

pub(super) fn queues_json(q: &pb::QueueStatsResponse) -> Value {
    let queues: Vec<Value> = q
        .queues
        .iter()
        .map(|s| {
            json!({
                "queue": s.queue, "paused": s.paused, "scheduled": s.scheduled,
                "pending": s.pending, "leased": s.leased, "retrying": s.retrying,
                "succeeded": s.succeeded, "dead": s.dead, "cancelled": s.cancelled,
            })
        })
        .collect();
    json!({ "queues": queues })
}

pub(super) async fn cluster(State(dash): State<Dashboard>, headers: HeaderMap) -> Response {
    if let Err(r) = dash.allow(CLUSTER_STATUS, &headers) {
        return r.into_response();
    }
    let r = dash
        .queue
        .cluster_status(Request::new(pb::ClusterStatusRequest {}))
        .await;
    reply(r, |c| cluster_json(&c))
}

pub(super) async fn queues(State(dash): State<Dashboard>, headers: HeaderMap) -> Response {
    if let Err(r) = dash.allow(QUEUE_STATS, &headers) {
        return r.into_response();
    }
    let r = dash
        .queue
        .queue_stats(Request::new(pb::QueueStatsRequest {}))
        .await;
    reply(r, |q| queues_json(&q))
}

pub(super) async fn schedules(State(dash): State<Dashboard>, headers: HeaderMap) -> Response {
    if let Err(r) = dash.allow(LIST_SCHEDULES, &headers) {
        return r.into_response();
    }
    let r = dash
        .schedules
        .list_schedules(Request::new(pb::ListSchedulesRequest { upcoming: 1 }))
        .await;
    reply(r, |l| {
        let list: Vec<Value> = l
            .schedules
            .iter()
            .map(|s| {
                let spec = s.schedule.clone().unwrap_or_default();
                json!({
                    "id": s.id, "name": spec.name, "cron": spec.cron, "time_zone": spec.time_zone,
                    "every_ms": spec.every_ms, "task": spec.task.map(|t| t.name).unwrap_or_default(),
                    "paused": s.paused, "next_unix_ms": s.next_unix_ms.first(),
                    "last_task_id": s.last_task_id, "fired": s.fired,
                })
            })
            .collect();
        json!({ "schedules": list })
    })
}

/// Every pool and remote worker of the cluster (`QueueService.ListWorkers`).
pub(super) async fn workers(State(dash): State<Dashboard>, headers: HeaderMap) -> Response {
    if let Err(r) = dash.allow(LIST_WORKERS, &headers) {
        return r.into_response();
    }
    let r = dash
        .queue
        .list_workers(Request::new(pb::ListWorkersRequest {}))
        .await;
    reply(r, |l| workers_json(&l))
}

pub(super) fn workers_json(l: &pb::ListWorkersResponse) -> Value {
    let workers: Vec<Value> = l
        .workers
        .iter()
        .map(|w| {
            let kind = match pb::WorkerKind::try_from(w.kind) {
                Ok(pb::WorkerKind::Pool) => "pool",
                Ok(pb::WorkerKind::Remote) => "remote",
                _ => "unknown",
            };
            json!({
                "node_id": w.node_id, "name": w.name, "kind": kind, "queues": w.queues,
                "concurrency": w.concurrency, "busy": w.busy, "leased": w.leased,
                "standing": w.standing, "connected_ms_ago": w.connected_ms_ago,
                "last_seen_ms_ago": w.last_seen_ms_ago,
            })
        })
        .collect();
    json!({ "workers": workers, "unreachable_nodes": l.unreachable_nodes })
}

/// The task list's query: `queue`, `state` (a name), `name`, `cursor`, `limit`.
pub(super) fn list_request(query: Option<&str>) -> Result<pb::ListTasksRequest, String> {
    let query = query.unwrap_or("");
    if query.len() > MAX_QUERY_LEN {
        return Err(format!("a query is limited to {MAX_QUERY_LEN} bytes"));
    }
    let mut req = pb::ListTasksRequest {
        filter: Some(pb::TaskFilter::default()),
        stale_ok: true,
        ..Default::default()
    };
    let filter = req.filter.get_or_insert_default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = decode(value).ok_or_else(|| format!("'{key}' is not valid percent-encoded UTF-8"))?;
        if value.is_empty() {
            continue;
        }
        match key {
            "queue" => filter.queue = value,
            "name" => filter.name = value,
            "state" => {
                let s = state_number(&value).ok_or_else(|| format!("no task state is called '{value}'"))?;
                filter.states.push(s as i32);
            }
            "cursor" => req.cursor = value,
            "limit" => {
                req.page_size = value
                    .parse()
                    .map_err(|_| format!("limit '{value}' is not a number"))?;
            }
            other => return Err(format!("the task list has no parameter '{other}'")),
        }
    }
    Ok(req)
}

/// Percent-decoding of a query value (`+` is a space, as forms send it).
fn decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = [bytes.next()?, bytes.next()?];
                out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            }
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

pub(super) async fn tasks(
    State(dash): State<Dashboard>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = dash.allow(LIST_TASKS, &headers) {
        return r.into_response();
    }
    let req = match list_request(query.as_deref()) {
        Ok(req) => req,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    let r = dash.ops.list_tasks(Request::new(req)).await;
    reply(r, |page| {
        let tasks: Vec<Value> = page.tasks.iter().map(task_json).collect();
        json!({ "tasks": tasks, "next_cursor": page.next_cursor, "scanned": page.scanned })
    })
}

fn id_of(text: &str) -> Result<u64, Refusal> {
    text.parse()
        .map_err(|_| Refusal(StatusCode::BAD_REQUEST, format!("'{text}' is not a task id")))
}

pub(super) async fn task(
    State(dash): State<Dashboard>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = dash.allow(DESCRIBE_TASK, &headers) {
        return r.into_response();
    }
    let id = match id_of(&id) {
        Ok(id) => id,
        Err(r) => return r.into_response(),
    };
    let r = dash
        .ops
        .describe_task(Request::new(pb::DescribeTaskRequest { id, stale_ok: true }))
        .await;
    reply(r, |d| {
        json!({
            "task": d.task.as_ref().map(task_json),
            "holder": d.holder,
            "timer_unix_ms": d.timer_unix_ms,
            "failures": d.failures,
            "lost_leases": d.lost_leases,
            "priority": d.priority,
            "args": json_bytes(&d.args),
            "time_limit_ms": d.time_limit_ms,
            "attempts": d.attempts.iter().map(attempt_json).collect::<Vec<_>>(),
        })
    })
}

pub(super) async fn retry(
    State(dash): State<Dashboard>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = may_act(&dash, RETRY, &headers) {
        return r.into_response();
    }
    let id = match id_of(&id) {
        Ok(id) => id,
        Err(r) => return r.into_response(),
    };
    let req = pb::RetryRequest {
        ids: vec![id],
        ..Default::default()
    };
    let r = dash.ops.retry(Request::new(req)).await;
    reply(
        r,
        |r| json!({ "retried": r.retried.first().copied().unwrap_or(false) }),
    )
}

pub(super) async fn pause(
    State(dash): State<Dashboard>,
    Path(queue): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = may_act(&dash, PAUSE, &headers) {
        return r.into_response();
    }
    let r = dash
        .ops
        .pause_queue(Request::new(pb::PauseQueueRequest { queue }))
        .await;
    reply(r, |_| json!({ "paused": true }))
}

pub(super) async fn resume(
    State(dash): State<Dashboard>,
    Path(queue): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = may_act(&dash, RESUME, &headers) {
        return r.into_response();
    }
    let r = dash
        .ops
        .resume_queue(Request::new(pb::ResumeQueueRequest { queue }))
        .await;
    reply(r, |_| json!({ "paused": false }))
}

/// One attempt of a task's history, for the task detail.
fn attempt_json(a: &pb::Attempt) -> serde_json::Value {
    let end = match pb::AttemptEnd::try_from(a.end).unwrap_or(pb::AttemptEnd::Unspecified) {
        pb::AttemptEnd::Unspecified => None,
        pb::AttemptEnd::Succeeded => Some("succeeded"),
        pb::AttemptEnd::Failed => Some("failed"),
        pb::AttemptEnd::FailedFatal => Some("failed-fatal"),
        pb::AttemptEnd::LostLease => Some("lost-lease"),
        pb::AttemptEnd::Released => Some("released"),
        pb::AttemptEnd::Revoked => Some("revoked"),
    };
    json!({
        "attempt": a.attempt,
        "holder": a.holder,
        "granted_unix_ms": a.granted_unix_ms,
        "ended_unix_ms": end.map(|_| a.ended_unix_ms),
        "end": end,
    })
}
