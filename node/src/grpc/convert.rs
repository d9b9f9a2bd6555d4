//! Conversions between the generated protobuf types and the queue's domain types.

use flotilla_proto::v1 as pb;

use crate::network::peer::ConnectedWorker;
use crate::queue::QueueCounts;
use crate::queue::TaskState;
use crate::queue::TaskView;

impl From<TaskState> for pb::TaskState {
    fn from(s: TaskState) -> Self {
        match s {
            TaskState::Scheduled => pb::TaskState::Scheduled,
            TaskState::Pending => pb::TaskState::Pending,
            TaskState::Leased => pb::TaskState::Leased,
            TaskState::Retrying => pb::TaskState::Retrying,
            TaskState::Succeeded => pb::TaskState::Succeeded,
            TaskState::Dead => pb::TaskState::Dead,
            TaskState::Cancelled => pb::TaskState::Cancelled,
        }
    }
}

impl From<TaskView> for pb::TaskInfo {
    fn from(t: TaskView) -> Self {
        pb::TaskInfo {
            id: t.id,
            name: t.name,
            queue: t.queue,
            state: if t.waiting {
                pb::TaskState::Waiting
            } else {
                pb::TaskState::from(t.state)
            } as i32,
            attempt: t.attempt,
            max_retries: t.max_retries,
            result: t.result.unwrap_or_default(),
            error: t.error.unwrap_or_default(),
            created_unix_ms: t.created_ms,
            updated_unix_ms: t.updated_ms,
            not_found: false,
            progress: t.progress.as_ref().map(|p| p.data.clone()).unwrap_or_default(),
            progress_attempt: t.progress.as_ref().map_or(0, |p| p.attempt),
            progress_unix_ms: t.progress.as_ref().map_or(0, |p| p.at_ms),
        }
    }
}

/// The `WaitResults` entry for an id the cluster does not hold.
pub fn not_found(id: u64) -> pb::TaskInfo {
    pb::TaskInfo {
        id,
        not_found: true,
        ..Default::default()
    }
}

pub fn queue_stats(queue: String, c: QueueCounts) -> pb::QueueStats {
    pb::QueueStats {
        queue,
        scheduled: c.scheduled,
        pending: c.pending,
        leased: c.leased,
        retrying: c.retrying,
        succeeded: c.succeeded,
        dead: c.dead,
        cancelled: c.cancelled,
        paused: c.paused,
    }
}

impl From<crate::queue::Role> for pb::TokenRole {
    fn from(r: crate::queue::Role) -> Self {
        use crate::queue::Role;
        match r {
            Role::Submit => pb::TokenRole::Submit,
            Role::Worker => pb::TokenRole::Worker,
            Role::Admin => pb::TokenRole::Admin,
            Role::Join => pb::TokenRole::Join,
        }
    }
}

/// The role of a request, if it names one.
pub fn role(r: pb::TokenRole) -> Option<crate::queue::Role> {
    use crate::queue::Role;
    match r {
        pb::TokenRole::Unspecified => None,
        pb::TokenRole::Submit => Some(Role::Submit),
        pb::TokenRole::Worker => Some(Role::Worker),
        pb::TokenRole::Admin => Some(Role::Admin),
        pb::TokenRole::Join => Some(Role::Join),
    }
}

impl From<crate::queue::TokenInfo> for pb::ApiToken {
    fn from(t: crate::queue::TokenInfo) -> Self {
        pb::ApiToken {
            id: t.id,
            role: pb::TokenRole::from(t.role) as i32,
            label: t.label,
            created_unix_ms: t.created_ms,
            expires_unix_ms: t.expires_ms,
        }
    }
}

impl From<crate::queue::TaskNameInfo> for pb::TaskName {
    fn from(t: crate::queue::TaskNameInfo) -> Self {
        pb::TaskName {
            name: t.name,
            default_queue: t.default_queue,
            declarers: t
                .declarers
                .into_iter()
                .map(|(declarer, queue)| pb::TaskNameDeclarer { declarer, queue })
                .collect(),
            held: t.held,
            workers: Vec::new(),
        }
    }
}

/// `names` with each name's connected workers: those whose Hello declared it.
pub fn task_names(names: Vec<crate::queue::TaskNameInfo>, workers: &[ConnectedWorker]) -> Vec<pb::TaskName> {
    names
        .into_iter()
        .map(|t| {
            let connected = workers
                .iter()
                .filter(|w| w.tasks.contains(&t.name))
                .map(|w| pb::ConnectedWorker {
                    node_id: w.node_id,
                    name: w.name.clone(),
                    queues: w.queues.clone(),
                    concurrency: w.concurrency,
                })
                .collect();
            pb::TaskName {
                workers: connected,
                ..pb::TaskName::from(t)
            }
        })
        .collect()
}
