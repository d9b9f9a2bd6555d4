//! [`ClientError`]: every way a client call can fail, and the one mapping from gRPC status codes.

use tonic::{Code, Status};

use crate::task::TaskId;

/// Result alias used throughout the client.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// An error from a client call.
///
/// Transient failures (`UNAVAILABLE`, connection errors, request timeouts) are retried inside the
/// client; they only surface as [`ClientError::Unavailable`] once the retry policy gives up.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No node could serve the call before the retry policy's time ran out.
    #[error("cluster unavailable after {attempts} attempts: {last}")]
    Unavailable {
        /// Attempts made, the first one included.
        attempts: u32,
        /// The last failure seen.
        last: String,
    },
    /// The server rejected the request (size limit, unknown task name, malformed); not retried.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// No task with this id exists (or its result expired).
    #[error("task {0} not found")]
    NotFound(TaskId),
    /// A wait (or a call, per the server's deadline) ran out of time.
    #[error("timed out")]
    Timeout,
    /// The client's options are invalid (no addresses, an address that is not a URI, a zero size).
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// A call failed on this side of the connection in a way that is not retried.
    #[error("transport error: {0}")]
    Transport(String),
    /// Arguments or results could not be encoded or decoded as JSON.
    #[error("serialization error: {0}")]
    Serialization(#[from] serde_json::Error),
    /// The call carried no token, or one the cluster does not know (or that was revoked or
    /// expired): give a valid token (`--token`, `FLOTILLA_TOKEN`).
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The token is valid but its role may not make this call.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The events stream's position is no longer held by the node (its ring of recent events
    /// moved on, or it started recording later): take a fresh view and watch from `oldest`.
    #[error("events from {asked} are no longer held by the node; the oldest it holds is {oldest}")]
    EventsLost {
        asked: crate::events::Position,
        oldest: crate::events::Position,
    },
    /// Any other gRPC status the server returned (e.g. `INTERNAL`).
    #[error("server error ({code:?}): {message}")]
    Server {
        /// The gRPC status code.
        code: Code,
        /// The server's message.
        message: String,
    },
}

impl ClientError {
    /// Maps a status that will not be retried to an error. `id` names the task a `NOT_FOUND` is
    /// about, when the call was about exactly one task.
    pub(crate) fn from_status(status: &Status, id: Option<TaskId>) -> ClientError {
        match (status.code(), id) {
            (Code::InvalidArgument, _) => ClientError::InvalidArgument(status.message().to_owned()),
            (Code::NotFound, Some(id)) => ClientError::NotFound(id),
            (Code::DeadlineExceeded, _) => ClientError::Timeout,
            (Code::Unauthenticated, _) => ClientError::Unauthenticated(status.message().to_owned()),
            (Code::PermissionDenied, _) => ClientError::PermissionDenied(status.message().to_owned()),
            (code, _) => ClientError::Server {
                code,
                message: status.message().to_owned(),
            },
        }
    }

    /// A reply that breaks the protocol (e.g. fewer results than tasks submitted).
    pub(crate) fn protocol(message: impl Into<String>) -> ClientError {
        ClientError::Server {
            code: Code::Internal,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_typed_errors() {
        let e = ClientError::from_status(&Status::invalid_argument("payload too large"), None);
        assert!(matches!(e, ClientError::InvalidArgument(ref m) if m == "payload too large"));
        let e = ClientError::from_status(&Status::not_found("no such task"), Some(TaskId(7)));
        assert!(matches!(e, ClientError::NotFound(TaskId(7))));
        let e = ClientError::from_status(&Status::not_found("no such queue"), None);
        assert!(matches!(
            e,
            ClientError::Server {
                code: Code::NotFound,
                ..
            }
        ));
        let e = ClientError::from_status(&Status::deadline_exceeded("wait timed out"), None);
        assert!(matches!(e, ClientError::Timeout));
        let e = ClientError::from_status(&Status::unauthenticated("no token"), None);
        assert!(matches!(e, ClientError::Unauthenticated(ref m) if m == "no token"));
        let e = ClientError::from_status(&Status::permission_denied("needs admin"), None);
        assert_eq!(e.to_string(), "permission denied: needs admin");
        let e = ClientError::from_status(&Status::internal("storage failed"), None);
        assert_eq!(e.to_string(), "server error (Internal): storage failed");
    }

    #[test]
    fn messages_are_lowercase_without_trailing_period() {
        let errors = [
            ClientError::Unavailable {
                attempts: 3,
                last: "connection refused".into(),
            },
            ClientError::InvalidArgument("bad".into()),
            ClientError::NotFound(TaskId(1)),
            ClientError::Timeout,
            ClientError::Transport("invalid uri".into()),
        ];
        for e in errors {
            let m = e.to_string();
            assert!(m.starts_with(|c: char| c.is_lowercase()), "{m}");
            assert!(!m.ends_with('.'), "{m}");
        }
    }
}
