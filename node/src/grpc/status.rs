//! Every error a client can see, and the one mapping from errors to gRPC status codes.

use tonic::Code;
use tonic::Status;

use crate::cluster::AdminError;
use crate::error::ProposeError;
use crate::queue::TaskId;

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or over a limit; nothing was stored.
    #[error("{0}")]
    InvalidArgument(String),
    #[error("task {0} not found")]
    NotFound(TaskId),
    #[error("timed out after {0} ms waiting for results")]
    WaitTimeout(u64),
    /// A linearizable read could not be confirmed (no leader, or not the leader).
    #[error("read not confirmed by a leader: {0}")]
    ReadBarrier(String),
    #[error(transparent)]
    Propose(#[from] ProposeError),
    #[error(transparent)]
    Admin(#[from] AdminError),
}

impl ApiError {
    /// The gRPC code of each error. UNAVAILABLE means "retry, possibly elsewhere".
    pub fn code(&self) -> Code {
        match self {
            ApiError::InvalidArgument(_) => Code::InvalidArgument,
            ApiError::NotFound(_) => Code::NotFound,
            ApiError::WaitTimeout(_) => Code::DeadlineExceeded,
            ApiError::ReadBarrier(_) => Code::Unavailable,
            ApiError::Admin(e) => match e {
                AdminError::NoLeader | AdminError::Forward(_) => Code::Unavailable,
                AdminError::Refused(_) => Code::FailedPrecondition,
                AdminError::Raft(_) => Code::Internal,
            },
            ApiError::Propose(e) => match e {
                ProposeError::NoLeader
                | ProposeError::NotLeader { .. }
                | ProposeError::Forward(_)
                | ProposeError::ShuttingDown => Code::Unavailable,
                ProposeError::Invalid(_) => Code::InvalidArgument,
                ProposeError::NotAMember => Code::FailedPrecondition,
                ProposeError::Fatal(_) => Code::Internal,
            },
        }
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        Status::new(e.code(), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_errors_are_unavailable_and_bad_input_is_invalid_argument() {
        assert_eq!(
            Status::from(ApiError::Propose(ProposeError::NoLeader)).code(),
            Code::Unavailable
        );
        assert_eq!(
            Status::from(ApiError::Propose(ProposeError::Forward("x".into()))).code(),
            Code::Unavailable
        );
        assert_eq!(
            Status::from(ApiError::InvalidArgument("too big".into())).code(),
            Code::InvalidArgument
        );
        assert_eq!(Status::from(ApiError::NotFound(7)).code(), Code::NotFound);
        assert_eq!(
            Status::from(ApiError::Propose(ProposeError::Fatal("disk".into()))).code(),
            Code::Internal
        );
        assert_eq!(ApiError::NotFound(7).to_string(), "task 7 not found");
    }
}
