//! Every error a caller can see, and the one mapping from errors to gRPC status codes: the
//! node builds a [`Status`] nowhere else. [`ApiError`] is what clients of `QueueService` see;
//! [`PeerCallError`] is why `RaftService` refused a peer's call before Raft saw it;
//! [`AuthError`] is why the auth layer (`auth.rs`) refused a call before its body was read.
//! None of them quotes a secret: a token is named by its id.

use tonic::Code;
use tonic::Status;

use crate::cluster::catalog::DeclareError;
use crate::cluster::tokens::TokenError;
use crate::error::ProposeError;
use crate::network::codec::CodecError;
use crate::network::peer::AdminError;
use crate::network::snapshot_stream::SnapshotStreamError;
use crate::queue::LimitError;
use crate::queue::Role;
use crate::queue::ScheduleRefusal;
use crate::queue::TaskId;
use crate::queue::TokenId;
use crate::queue::WorkflowRefusal;
use crate::types::NodeId;

use super::auth::Right;

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
    #[error(transparent)]
    Token(#[from] TokenError),
    /// An `AddSchedule` the state machine refused.
    #[error(transparent)]
    Schedule(#[from] ScheduleRefusal),
    #[error("no schedule named '{0}'")]
    NoSchedule(String),
    /// A limit refused (its text, or by the state machine).
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// A `SubmitWorkflow` refused (by its shape, or by the state machine).
    #[error(transparent)]
    Workflow(#[from] WorkflowRefusal),
    #[error("no workflow {}", if *id != 0 { id.to_string() } else { format!("holds task {task}") })]
    NoWorkflow { id: u64, task: u64 },
    /// Too many client calls are in progress on this node (the limit is the field).
    #[error("node is busy: {0} client calls in progress; retry, on another node if you can")]
    Overloaded(usize),
    /// Too many event streams are open on this node (the limit is the field).
    #[error("{0} event streams are open on this node already; close one, or watch another node")]
    TooManyWatchers(usize),
}

impl From<DeclareError> for ApiError {
    fn from(e: DeclareError) -> Self {
        match e {
            DeclareError::Refused(r) => ApiError::InvalidArgument(r.to_string()),
            DeclareError::Propose(e) => ApiError::Propose(e),
        }
    }
}

impl ApiError {
    /// The gRPC code of each error. UNAVAILABLE means "retry, possibly elsewhere".
    pub fn code(&self) -> Code {
        match self {
            ApiError::InvalidArgument(_) => Code::InvalidArgument,
            ApiError::NotFound(_) | ApiError::NoSchedule(_) | ApiError::NoWorkflow { .. } => Code::NotFound,
            ApiError::Workflow(_) => Code::InvalidArgument,
            ApiError::Schedule(e) => match e {
                ScheduleRefusal::Exists { .. } => Code::AlreadyExists,
                ScheduleRefusal::Full => Code::ResourceExhausted,
                _ => Code::InvalidArgument,
            },
            ApiError::Limit(LimitError::TooMany) => Code::ResourceExhausted,
            ApiError::TooManyWatchers(_) => Code::ResourceExhausted,
            ApiError::Limit(_) => Code::InvalidArgument,
            ApiError::WaitTimeout(_) => Code::DeadlineExceeded,
            ApiError::ReadBarrier(_) | ApiError::Overloaded(_) => Code::Unavailable,
            ApiError::Admin(e) => match e {
                AdminError::NoLeader | AdminError::Forward(_) => Code::Unavailable,
                AdminError::Refused(_) => Code::FailedPrecondition,
                AdminError::Raft(_) => Code::Internal,
                AdminError::Unauthorized(_) => Code::PermissionDenied,
            },
            ApiError::Token(e) => match e {
                TokenError::Propose(e) => ApiError::propose_code(e),
                TokenError::Taken => Code::AlreadyExists,
                TokenError::Entropy(_) | TokenError::File(_) => Code::Internal,
            },
            ApiError::Propose(e) => Self::propose_code(e),
        }
    }

    /// The code of a failed proposal.
    fn propose_code(e: &ProposeError) -> Code {
        match e {
            ProposeError::NoLeader
            | ProposeError::NotLeader { .. }
            | ProposeError::Forward(_)
            | ProposeError::ShuttingDown => Code::Unavailable,
            ProposeError::Invalid(_) => Code::InvalidArgument,
            ProposeError::NotAMember => Code::FailedPrecondition,
            ProposeError::Fatal(_) => Code::Internal,
        }
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        Status::new(e.code(), e.to_string())
    }
}

/// What tonic says when a request does not decode, by the start of its message: `INTERNAL`
/// for a body that is not the method's protobuf message (or a broken gRPC frame),
/// `OUT_OF_RANGE` for one over the size limit. In a server's answer these are always the
/// caller's fault.
const UNDECODABLE: [(Code, &str); 6] = [
    (Code::Internal, "failed to decode Protobuf message"),
    (Code::Internal, "protocol error: received message with"),
    (Code::Internal, "Unexpected EOF decoding stream"),
    (Code::Internal, "Missing request message"),
    (Code::Internal, "Error decompressing"),
    (Code::OutOfRange, "Error, decoded message length too large"),
];

/// The client's error for `status`, if it is tonic's answer to a request that did not decode
/// (see `UNDECODABLE`): the request is invalid, not the node broken.
pub fn undecodable_request(status: &Status) -> Option<ApiError> {
    let message = status.message();
    UNDECODABLE
        .iter()
        .any(|(code, start)| status.code() == *code && message.starts_with(start))
        .then(|| ApiError::InvalidArgument(format!("request does not decode: {message}")))
}

/// Why the peers-only service refused a call.
#[derive(Debug, thiserror::Error)]
pub enum PeerCallError {
    #[error("peer call without a cluster id")]
    NoClusterId,
    /// The caller is of another cluster. The message does not quote this node's cluster id:
    /// a stranger must not learn it.
    #[error("peer call with a wrong cluster id")]
    WrongCluster,
    /// With TLS: a peer call without a client certificate.
    #[error("peer calls need a node certificate of this cluster")]
    NoNodeCertificate,
    /// With TLS: a peer call whose certificate (valid for the CA) is not a node of this
    /// cluster: a client's, or another cluster's node. The cluster is not quoted.
    #[error("peer call with a certificate that is not a node of this cluster")]
    NotANodeOfThisCluster,
    /// A node that is not a member (a removed one) forwarded a write.
    #[error(
        "node {} is not a member of this cluster; its writes are refused",
        .0.map_or_else(|| "<unknown>".to_string(), |id| id.to_string())
    )]
    NotAMember(Option<NodeId>),
    /// The request did not decode.
    #[error("{0}")]
    Decode(CodecError),
    /// A caller that is not a member (a joining node with a join token) asked for more than a
    /// node id.
    #[error("a caller that is not a member may only ask for a node id")]
    JoinOnly,
    /// A Raft message whose term is absurdly far ahead of this node's: forged, or a bug. See
    /// `raft_service.rs` for the bound.
    #[error("term {term} is too far ahead of this node's term {ours}")]
    TermTooFar { term: u64, ours: u64 },
    /// A vote request whose candidate is not the node that sent it.
    #[error("vote for node {candidate} sent by node {sender}")]
    NotTheCandidate { candidate: NodeId, sender: String },
    /// A leadership-transfer vote from a node that is not a voter of this cluster.
    #[error("leadership transfer requested by node {0}, which is not a voter")]
    TransferFromNonVoter(NodeId),
    /// The reply did not encode.
    #[error("{0}")]
    Encode(CodecError),
    /// A snapshot refused: over this node's size limit, or a stream that broke off.
    #[error("{0}")]
    Snapshot(#[from] SnapshotStreamError),
}

impl PeerCallError {
    /// The gRPC code of each refusal. A forwarding node reads PERMISSION_DENIED as "this node
    /// is not a member" (`network::peer`).
    pub fn code(&self) -> Code {
        match self {
            PeerCallError::NoClusterId
            | PeerCallError::WrongCluster
            | PeerCallError::NotANodeOfThisCluster
            | PeerCallError::NotAMember(_) => Code::PermissionDenied,
            PeerCallError::NoNodeCertificate => Code::Unauthenticated,
            PeerCallError::Decode(_) => Code::InvalidArgument,
            PeerCallError::Encode(_) => Code::Internal,
            PeerCallError::JoinOnly
            | PeerCallError::NotTheCandidate { .. }
            | PeerCallError::TransferFromNonVoter(_) => Code::PermissionDenied,
            PeerCallError::TermTooFar { .. } => Code::InvalidArgument,
            PeerCallError::Snapshot(e) => match e {
                SnapshotStreamError::NoHead
                | SnapshotStreamError::Decode(_)
                | SnapshotStreamError::WrongSize { .. } => Code::InvalidArgument,
                SnapshotStreamError::TooLarge { .. } => Code::ResourceExhausted,
                SnapshotStreamError::Stalled(_) => Code::DeadlineExceeded,
                SnapshotStreamError::Stream(status) => status.code(),
            },
        }
    }
}

/// Why the auth layer refused a call, before reading its body.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(
        "this call needs a token (authorization: Bearer <token>; --token or FLOTILLA_TOKEN); \
         an admin makes one with `flotilla token create`"
    )]
    NoToken,
    #[error("unknown, revoked or expired token")]
    BadToken,
    #[error("token {token} (role {role}) may not call {method}: it needs the {} right", right.name())]
    Denied {
        token: TokenId,
        role: Role,
        right: Right,
        method: String,
    },
    /// The message does not quote this node's cluster id: a stranger must not learn it.
    #[error("peer call with a wrong cluster id")]
    WrongCluster,
    #[error("peer call with a wrong peer secret or certificate")]
    BadPeerProof,
    #[error("peer calls need this cluster's peer credentials")]
    NotAPeer,
}

impl AuthError {
    /// A refused peer call (worth a warning: a misconfigured member, or an attack).
    pub fn is_peer(&self) -> bool {
        matches!(
            self,
            AuthError::WrongCluster | AuthError::BadPeerProof | AuthError::NotAPeer
        )
    }

    /// UNAUTHENTICATED: who the caller is was not established; PERMISSION_DENIED: it was, and
    /// it may not do this.
    pub fn code(&self) -> Code {
        match self {
            AuthError::NoToken | AuthError::BadToken | AuthError::BadPeerProof | AuthError::NotAPeer => {
                Code::Unauthenticated
            }
            AuthError::Denied { .. } | AuthError::WrongCluster => Code::PermissionDenied,
        }
    }
}

impl From<AuthError> for Status {
    fn from(e: AuthError) -> Status {
        Status::new(e.code(), e.to_string())
    }
}

impl From<PeerCallError> for Status {
    fn from(e: PeerCallError) -> Status {
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

    #[test]
    fn peer_refusals_are_permission_denied_and_name_no_cluster() {
        let wrong = Status::from(PeerCallError::WrongCluster);
        assert_eq!(wrong.code(), Code::PermissionDenied);
        assert_eq!(wrong.message(), "peer call with a wrong cluster id");
        let removed = Status::from(PeerCallError::NotAMember(Some(4)));
        assert_eq!(removed.code(), Code::PermissionDenied);
        assert_eq!(
            removed.message(),
            "node 4 is not a member of this cluster; its writes are refused"
        );
        assert!(
            PeerCallError::NotAMember(None)
                .to_string()
                .starts_with("node <unknown> is not")
        );
    }
}
