//! Conversions between the wire types of `flotilla-proto` and this crate's domain types. Nothing
//! else in the crate reads or builds prost structs field by field.

use flotilla_proto::v1 as pb;

use crate::cluster::{ClusterStatus, Member, QueueStats};
use crate::info::{TaskInfo, TaskState};
use crate::task::{Submitted, TaskId, TaskRequest};

impl From<TaskRequest> for pb::TaskSpec {
    fn from(r: TaskRequest) -> Self {
        pb::TaskSpec {
            name: r.name,
            queue: r.queue,
            args: r.args,
            priority: u32::from(r.priority),
            eta_unix_ms: r.eta_unix_ms,
            countdown_ms: r.countdown_ms,
            max_retries: r.max_retries,
            retry_backoff_ms: r.retry_backoff_ms,
            time_limit_ms: r.time_limit_ms,
            idempotency_key: r.idempotency_key,
            result_ttl_ms: r.result_ttl_ms,
            headers: r.headers.into_iter().collect(),
            concurrency_key: r.concurrency_key,
        }
    }
}

impl From<pb::SubmitResult> for Submitted {
    fn from(r: pb::SubmitResult) -> Self {
        Submitted {
            id: TaskId(r.id),
            duplicate: r.duplicate,
        }
    }
}

impl From<pb::TaskState> for TaskState {
    fn from(s: pb::TaskState) -> Self {
        match s {
            pb::TaskState::Unspecified => TaskState::Unknown,
            pb::TaskState::Scheduled => TaskState::Scheduled,
            pb::TaskState::Waiting => TaskState::Waiting,
            pb::TaskState::Pending => TaskState::Pending,
            pb::TaskState::Leased => TaskState::Leased,
            pb::TaskState::Retrying => TaskState::Retrying,
            pb::TaskState::Succeeded => TaskState::Succeeded,
            pb::TaskState::Dead => TaskState::Dead,
            pb::TaskState::Cancelled => TaskState::Cancelled,
        }
    }
}

impl From<pb::TaskInfo> for TaskInfo {
    fn from(t: pb::TaskInfo) -> Self {
        if t.not_found {
            return TaskInfo::not_found(TaskId(t.id));
        }
        // An enum value from a newer server decodes as `Unknown` rather than failing the call.
        let state = pb::TaskState::try_from(t.state)
            .map(TaskState::from)
            .unwrap_or(TaskState::Unknown);
        TaskInfo {
            id: TaskId(t.id),
            name: t.name,
            queue: t.queue,
            state,
            attempt: t.attempt,
            max_retries: t.max_retries,
            result: t.result,
            error: (!t.error.is_empty()).then_some(t.error),
            created_unix_ms: t.created_unix_ms,
            updated_unix_ms: t.updated_unix_ms,
        }
    }
}

impl From<pb::Member> for Member {
    fn from(m: pb::Member) -> Self {
        Member {
            id: m.id,
            addr: m.addr,
            role: m.role,
            zone: (!m.zone.is_empty()).then_some(m.zone),
            lag: m.lag,
        }
    }
}

impl From<pb::ClusterStatusResponse> for ClusterStatus {
    fn from(s: pb::ClusterStatusResponse) -> Self {
        ClusterStatus {
            node_id: s.node_id,
            leader_id: s.leader_id,
            term: s.term,
            commit_index: s.commit_index,
            applied_index: s.applied_index,
            members: s.members.into_iter().map(Member::from).collect(),
            snapshot_index: s.snapshot_index,
            purged_index: s.purged_index,
            voter_sets: s.voter_sets.into_iter().map(|v| v.ids).collect(),
        }
    }
}

impl From<pb::QueueStats> for QueueStats {
    fn from(q: pb::QueueStats) -> Self {
        QueueStats {
            queue: q.queue,
            scheduled: q.scheduled,
            pending: q.pending,
            leased: q.leased,
            retrying: q.retrying,
            succeeded: q.succeeded,
            dead: q.dead,
            cancelled: q.cancelled,
            paused: q.paused,
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn task_info_from_wire() {
        let wire = pb::TaskInfo {
            id: 9,
            name: "echo".into(),
            queue: "default".into(),
            state: pb::TaskState::Dead as i32,
            attempt: 2,
            max_retries: 1,
            result: Bytes::new(),
            error: "boom".into(),
            created_unix_ms: 5,
            updated_unix_ms: 6,
            not_found: false,
            ..Default::default()
        };
        let t = TaskInfo::from(wire.clone());
        assert_eq!((t.id, t.state, t.attempt), (TaskId(9), TaskState::Dead, 2));
        assert_eq!(t.error.as_deref(), Some("boom"));
        let t = TaskInfo::from(pb::TaskInfo {
            state: 99,
            error: String::new(),
            ..wire.clone()
        });
        assert_eq!((t.state, t.error), (TaskState::Unknown, None));
        let t = TaskInfo::from(pb::TaskInfo {
            state: pb::TaskState::Waiting as i32,
            error: String::new(),
            ..wire.clone()
        });
        assert_eq!((t.state, t.state.as_str()), (TaskState::Waiting, "waiting"));
        let t = TaskInfo::from(pb::TaskInfo {
            not_found: true,
            ..wire
        });
        assert_eq!(
            (t.id, t.state, t.name.as_str()),
            (TaskId(9), TaskState::NotFound, "")
        );
    }

    #[test]
    fn request_to_wire_keeps_every_field() {
        let r = TaskRequest::new("noop")
            .queue("q")
            .priority(255)
            .max_retries(4)
            .idempotency_key("k");
        let spec = pb::TaskSpec::from(r);
        assert_eq!((spec.name.as_str(), spec.queue.as_str()), ("noop", "q"));
        assert_eq!((spec.priority, spec.max_retries), (255, 4));
        assert_eq!(spec.idempotency_key, "k");
        assert_eq!(&spec.args[..], b"null");
    }

    #[test]
    fn member_zone_empty_is_none() {
        let m = Member::from(pb::Member {
            id: 1,
            addr: "a:1".into(),
            role: "leader".into(),
            zone: String::new(),
            lag: Some(0),
        });
        assert_eq!((m.zone, m.lag), (None, Some(0)));
    }
}
