from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_STATE_UNSPECIFIED: _ClassVar[TaskState]
    TASK_STATE_SCHEDULED: _ClassVar[TaskState]
    TASK_STATE_PENDING: _ClassVar[TaskState]
    TASK_STATE_LEASED: _ClassVar[TaskState]
    TASK_STATE_RETRYING: _ClassVar[TaskState]
    TASK_STATE_SUCCEEDED: _ClassVar[TaskState]
    TASK_STATE_DEAD: _ClassVar[TaskState]
    TASK_STATE_CANCELLED: _ClassVar[TaskState]
    TASK_STATE_WAITING: _ClassVar[TaskState]

class TokenRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TOKEN_ROLE_UNSPECIFIED: _ClassVar[TokenRole]
    TOKEN_ROLE_SUBMIT: _ClassVar[TokenRole]
    TOKEN_ROLE_WORKER: _ClassVar[TokenRole]
    TOKEN_ROLE_ADMIN: _ClassVar[TokenRole]
    TOKEN_ROLE_JOIN: _ClassVar[TokenRole]

class WorkerKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WORKER_KIND_UNSPECIFIED: _ClassVar[WorkerKind]
    WORKER_KIND_POOL: _ClassVar[WorkerKind]
    WORKER_KIND_REMOTE: _ClassVar[WorkerKind]
TASK_STATE_UNSPECIFIED: TaskState
TASK_STATE_SCHEDULED: TaskState
TASK_STATE_PENDING: TaskState
TASK_STATE_LEASED: TaskState
TASK_STATE_RETRYING: TaskState
TASK_STATE_SUCCEEDED: TaskState
TASK_STATE_DEAD: TaskState
TASK_STATE_CANCELLED: TaskState
TASK_STATE_WAITING: TaskState
TOKEN_ROLE_UNSPECIFIED: TokenRole
TOKEN_ROLE_SUBMIT: TokenRole
TOKEN_ROLE_WORKER: TokenRole
TOKEN_ROLE_ADMIN: TokenRole
TOKEN_ROLE_JOIN: TokenRole
WORKER_KIND_UNSPECIFIED: WorkerKind
WORKER_KIND_POOL: WorkerKind
WORKER_KIND_REMOTE: WorkerKind

class TaskSpec(_message.Message):
    __slots__ = ("name", "queue", "args", "priority", "eta_unix_ms", "countdown_ms", "max_retries", "retry_backoff_ms", "time_limit_ms", "idempotency_key", "result_ttl_ms", "headers", "concurrency_key")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    ETA_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    COUNTDOWN_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    RETRY_BACKOFF_MS_FIELD_NUMBER: _ClassVar[int]
    TIME_LIMIT_MS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    RESULT_TTL_MS_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    name: str
    queue: str
    args: bytes
    priority: int
    eta_unix_ms: int
    countdown_ms: int
    max_retries: int
    retry_backoff_ms: int
    time_limit_ms: int
    idempotency_key: str
    result_ttl_ms: int
    headers: _containers.ScalarMap[str, str]
    concurrency_key: str
    def __init__(self, name: _Optional[str] = ..., queue: _Optional[str] = ..., args: _Optional[bytes] = ..., priority: _Optional[int] = ..., eta_unix_ms: _Optional[int] = ..., countdown_ms: _Optional[int] = ..., max_retries: _Optional[int] = ..., retry_backoff_ms: _Optional[int] = ..., time_limit_ms: _Optional[int] = ..., idempotency_key: _Optional[str] = ..., result_ttl_ms: _Optional[int] = ..., headers: _Optional[_Mapping[str, str]] = ..., concurrency_key: _Optional[str] = ...) -> None: ...

class SubmitRequest(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskSpec]
    def __init__(self, tasks: _Optional[_Iterable[_Union[TaskSpec, _Mapping]]] = ...) -> None: ...

class SubmitResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SubmitResult]
    def __init__(self, results: _Optional[_Iterable[_Union[SubmitResult, _Mapping]]] = ...) -> None: ...

class SubmitResult(_message.Message):
    __slots__ = ("id", "duplicate")
    ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    id: int
    duplicate: bool
    def __init__(self, id: _Optional[int] = ..., duplicate: bool = ...) -> None: ...

class TaskInfo(_message.Message):
    __slots__ = ("id", "name", "queue", "state", "attempt", "max_retries", "result", "error", "created_unix_ms", "updated_unix_ms", "not_found", "progress", "progress_attempt", "progress_unix_ms")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    NOT_FOUND_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    queue: str
    state: TaskState
    attempt: int
    max_retries: int
    result: bytes
    error: str
    created_unix_ms: int
    updated_unix_ms: int
    not_found: bool
    progress: bytes
    progress_attempt: int
    progress_unix_ms: int
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., queue: _Optional[str] = ..., state: _Optional[_Union[TaskState, str]] = ..., attempt: _Optional[int] = ..., max_retries: _Optional[int] = ..., result: _Optional[bytes] = ..., error: _Optional[str] = ..., created_unix_ms: _Optional[int] = ..., updated_unix_ms: _Optional[int] = ..., not_found: bool = ..., progress: _Optional[bytes] = ..., progress_attempt: _Optional[int] = ..., progress_unix_ms: _Optional[int] = ...) -> None: ...

class GetTaskRequest(_message.Message):
    __slots__ = ("id", "stale_ok")
    ID_FIELD_NUMBER: _ClassVar[int]
    STALE_OK_FIELD_NUMBER: _ClassVar[int]
    id: int
    stale_ok: bool
    def __init__(self, id: _Optional[int] = ..., stale_ok: bool = ...) -> None: ...

class GetTaskResponse(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: TaskInfo
    def __init__(self, task: _Optional[_Union[TaskInfo, _Mapping]] = ...) -> None: ...

class WaitResultsRequest(_message.Message):
    __slots__ = ("ids", "timeout_ms")
    IDS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[int]
    timeout_ms: int
    def __init__(self, ids: _Optional[_Iterable[int]] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class CancelRequest(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, ids: _Optional[_Iterable[int]] = ...) -> None: ...

class CancelResponse(_message.Message):
    __slots__ = ("cancelled",)
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    cancelled: _containers.RepeatedScalarFieldContainer[bool]
    def __init__(self, cancelled: _Optional[_Iterable[bool]] = ...) -> None: ...

class QueueStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class QueueStats(_message.Message):
    __slots__ = ("queue", "scheduled", "pending", "leased", "retrying", "succeeded", "dead", "cancelled", "paused")
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    LEASED_FIELD_NUMBER: _ClassVar[int]
    RETRYING_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    DEAD_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    queue: str
    scheduled: int
    pending: int
    leased: int
    retrying: int
    succeeded: int
    dead: int
    cancelled: int
    paused: bool
    def __init__(self, queue: _Optional[str] = ..., scheduled: _Optional[int] = ..., pending: _Optional[int] = ..., leased: _Optional[int] = ..., retrying: _Optional[int] = ..., succeeded: _Optional[int] = ..., dead: _Optional[int] = ..., cancelled: _Optional[int] = ..., paused: bool = ...) -> None: ...

class QueueStatsResponse(_message.Message):
    __slots__ = ("queues",)
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    queues: _containers.RepeatedCompositeFieldContainer[QueueStats]
    def __init__(self, queues: _Optional[_Iterable[_Union[QueueStats, _Mapping]]] = ...) -> None: ...

class ClusterStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RemoveNodeRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class RemoveNodeResponse(_message.Message):
    __slots__ = ("members",)
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    members: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, members: _Optional[_Iterable[int]] = ...) -> None: ...

class Member(_message.Message):
    __slots__ = ("id", "addr", "role", "zone", "lag")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDR_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    ZONE_FIELD_NUMBER: _ClassVar[int]
    LAG_FIELD_NUMBER: _ClassVar[int]
    id: int
    addr: str
    role: str
    zone: str
    lag: int
    def __init__(self, id: _Optional[int] = ..., addr: _Optional[str] = ..., role: _Optional[str] = ..., zone: _Optional[str] = ..., lag: _Optional[int] = ...) -> None: ...

class ClusterStatusResponse(_message.Message):
    __slots__ = ("node_id", "leader_id", "term", "commit_index", "applied_index", "members", "snapshot_index", "purged_index", "voter_sets")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    COMMIT_INDEX_FIELD_NUMBER: _ClassVar[int]
    APPLIED_INDEX_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_INDEX_FIELD_NUMBER: _ClassVar[int]
    PURGED_INDEX_FIELD_NUMBER: _ClassVar[int]
    VOTER_SETS_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    leader_id: int
    term: int
    commit_index: int
    applied_index: int
    members: _containers.RepeatedCompositeFieldContainer[Member]
    snapshot_index: int
    purged_index: int
    voter_sets: _containers.RepeatedCompositeFieldContainer[VoterSet]
    def __init__(self, node_id: _Optional[int] = ..., leader_id: _Optional[int] = ..., term: _Optional[int] = ..., commit_index: _Optional[int] = ..., applied_index: _Optional[int] = ..., members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ..., snapshot_index: _Optional[int] = ..., purged_index: _Optional[int] = ..., voter_sets: _Optional[_Iterable[_Union[VoterSet, _Mapping]]] = ...) -> None: ...

class VoterSet(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, ids: _Optional[_Iterable[int]] = ...) -> None: ...

class CreateTokenRequest(_message.Message):
    __slots__ = ("role", "label", "ttl_ms")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    role: TokenRole
    label: str
    ttl_ms: int
    def __init__(self, role: _Optional[_Union[TokenRole, str]] = ..., label: _Optional[str] = ..., ttl_ms: _Optional[int] = ...) -> None: ...

class CreateTokenResponse(_message.Message):
    __slots__ = ("id", "token")
    ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    id: int
    token: str
    def __init__(self, id: _Optional[int] = ..., token: _Optional[str] = ...) -> None: ...

class ListTokensRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ApiToken(_message.Message):
    __slots__ = ("id", "role", "label", "created_unix_ms", "expires_unix_ms")
    ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    id: int
    role: TokenRole
    label: str
    created_unix_ms: int
    expires_unix_ms: int
    def __init__(self, id: _Optional[int] = ..., role: _Optional[_Union[TokenRole, str]] = ..., label: _Optional[str] = ..., created_unix_ms: _Optional[int] = ..., expires_unix_ms: _Optional[int] = ...) -> None: ...

class ListTokensResponse(_message.Message):
    __slots__ = ("tokens",)
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedCompositeFieldContainer[ApiToken]
    def __init__(self, tokens: _Optional[_Iterable[_Union[ApiToken, _Mapping]]] = ...) -> None: ...

class RevokeTokenRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class RevokeTokenResponse(_message.Message):
    __slots__ = ("revoked",)
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    revoked: bool
    def __init__(self, revoked: bool = ...) -> None: ...

class ListTaskNamesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TaskNameDeclarer(_message.Message):
    __slots__ = ("declarer", "queue")
    DECLARER_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    declarer: str
    queue: str
    def __init__(self, declarer: _Optional[str] = ..., queue: _Optional[str] = ...) -> None: ...

class TaskName(_message.Message):
    __slots__ = ("name", "default_queue", "declarers", "held", "workers")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_QUEUE_FIELD_NUMBER: _ClassVar[int]
    DECLARERS_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    name: str
    default_queue: str
    declarers: _containers.RepeatedCompositeFieldContainer[TaskNameDeclarer]
    held: int
    workers: _containers.RepeatedCompositeFieldContainer[ConnectedWorker]
    def __init__(self, name: _Optional[str] = ..., default_queue: _Optional[str] = ..., declarers: _Optional[_Iterable[_Union[TaskNameDeclarer, _Mapping]]] = ..., held: _Optional[int] = ..., workers: _Optional[_Iterable[_Union[ConnectedWorker, _Mapping]]] = ...) -> None: ...

class ConnectedWorker(_message.Message):
    __slots__ = ("node_id", "name", "queues", "concurrency")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    name: str
    queues: _containers.RepeatedScalarFieldContainer[str]
    concurrency: int
    def __init__(self, node_id: _Optional[int] = ..., name: _Optional[str] = ..., queues: _Optional[_Iterable[str]] = ..., concurrency: _Optional[int] = ...) -> None: ...

class ListTaskNamesResponse(_message.Message):
    __slots__ = ("tasks", "unreachable_nodes")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    UNREACHABLE_NODES_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskName]
    unreachable_nodes: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, tasks: _Optional[_Iterable[_Union[TaskName, _Mapping]]] = ..., unreachable_nodes: _Optional[_Iterable[int]] = ...) -> None: ...

class DeclareTaskNamesRequest(_message.Message):
    __slots__ = ("declarer", "names", "queue")
    DECLARER_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    declarer: str
    names: _containers.RepeatedScalarFieldContainer[str]
    queue: str
    def __init__(self, declarer: _Optional[str] = ..., names: _Optional[_Iterable[str]] = ..., queue: _Optional[str] = ...) -> None: ...

class DeclareTaskNamesResponse(_message.Message):
    __slots__ = ("recorded",)
    RECORDED_FIELD_NUMBER: _ClassVar[int]
    recorded: int
    def __init__(self, recorded: _Optional[int] = ...) -> None: ...

class FindTasksByIdempotencyKeyRequest(_message.Message):
    __slots__ = ("idempotency_keys", "stale_ok")
    IDEMPOTENCY_KEYS_FIELD_NUMBER: _ClassVar[int]
    STALE_OK_FIELD_NUMBER: _ClassVar[int]
    idempotency_keys: _containers.RepeatedScalarFieldContainer[str]
    stale_ok: bool
    def __init__(self, idempotency_keys: _Optional[_Iterable[str]] = ..., stale_ok: bool = ...) -> None: ...

class FindTasksByIdempotencyKeyResponse(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, ids: _Optional[_Iterable[int]] = ...) -> None: ...

class ListWorkersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WorkerInfo(_message.Message):
    __slots__ = ("node_id", "name", "kind", "queues", "concurrency", "busy", "leased", "standing", "connected_ms_ago", "last_seen_ms_ago")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    BUSY_FIELD_NUMBER: _ClassVar[int]
    LEASED_FIELD_NUMBER: _ClassVar[int]
    STANDING_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_MS_AGO_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_MS_AGO_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    name: str
    kind: WorkerKind
    queues: _containers.RepeatedScalarFieldContainer[str]
    concurrency: int
    busy: int
    leased: int
    standing: int
    connected_ms_ago: int
    last_seen_ms_ago: int
    def __init__(self, node_id: _Optional[int] = ..., name: _Optional[str] = ..., kind: _Optional[_Union[WorkerKind, str]] = ..., queues: _Optional[_Iterable[str]] = ..., concurrency: _Optional[int] = ..., busy: _Optional[int] = ..., leased: _Optional[int] = ..., standing: _Optional[int] = ..., connected_ms_ago: _Optional[int] = ..., last_seen_ms_ago: _Optional[int] = ...) -> None: ...

class ListWorkersResponse(_message.Message):
    __slots__ = ("workers", "unreachable_nodes")
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    UNREACHABLE_NODES_FIELD_NUMBER: _ClassVar[int]
    workers: _containers.RepeatedCompositeFieldContainer[WorkerInfo]
    unreachable_nodes: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, workers: _Optional[_Iterable[_Union[WorkerInfo, _Mapping]]] = ..., unreachable_nodes: _Optional[_Iterable[int]] = ...) -> None: ...
