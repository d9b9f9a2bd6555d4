//! Small helpers of the session: building node messages, reading tonic's errors, timers.

use flotilla_proto::v1 as pb;
use flotilla_proto::v1::node_message::Msg as Out;
use tokio::time::Instant;
use tonic::Status;

use crate::queue::LeaseRef;

pub(super) fn message(msg: Out) -> pb::NodeMessage {
    pb::NodeMessage { msg: Some(msg) }
}

pub(super) fn ack(lease: LeaseRef, status: pb::result_ack::Status) -> pb::ResultAck {
    pb::ResultAck {
        task_id: lease.task,
        attempt: lease.attempt,
        status: status as i32,
    }
}

/// Whether tonic failed to decode a message (rather than lose the stream).
pub(super) fn is_decode_error(status: &Status) -> bool {
    status.code() == tonic::Code::Internal && status.message().contains("decode")
}

pub(super) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
