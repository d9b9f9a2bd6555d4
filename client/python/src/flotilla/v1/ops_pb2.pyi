from flotilla.v1 import queue_pb2 as _queue_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AttemptEnd(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ATTEMPT_END_UNSPECIFIED: _ClassVar[AttemptEnd]
    ATTEMPT_END_SUCCEEDED: _ClassVar[AttemptEnd]
    ATTEMPT_END_FAILED: _ClassVar[AttemptEnd]
    ATTEMPT_END_FAILED_FATAL: _ClassVar[AttemptEnd]
    ATTEMPT_END_LOST_LEASE: _ClassVar[AttemptEnd]
    ATTEMPT_END_RELEASED: _ClassVar[AttemptEnd]
    ATTEMPT_END_REVOKED: _ClassVar[AttemptEnd]

class RevokeOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVOKE_OUTCOME_UNSPECIFIED: _ClassVar[RevokeOutcome]
    REVOKE_OUTCOME_CANCELLED: _ClassVar[RevokeOutcome]
    REVOKE_OUTCOME_TERMINATED: _ClassVar[RevokeOutcome]
    REVOKE_OUTCOME_UNCHANGED: _ClassVar[RevokeOutcome]
ATTEMPT_END_UNSPECIFIED: AttemptEnd
ATTEMPT_END_SUCCEEDED: AttemptEnd
ATTEMPT_END_FAILED: AttemptEnd
ATTEMPT_END_FAILED_FATAL: AttemptEnd
ATTEMPT_END_LOST_LEASE: AttemptEnd
ATTEMPT_END_RELEASED: AttemptEnd
ATTEMPT_END_REVOKED: AttemptEnd
REVOKE_OUTCOME_UNSPECIFIED: RevokeOutcome
REVOKE_OUTCOME_CANCELLED: RevokeOutcome
REVOKE_OUTCOME_TERMINATED: RevokeOutcome
REVOKE_OUTCOME_UNCHANGED: RevokeOutcome

class TaskFilter(_message.Message):
    __slots__ = ("queue", "states", "name", "created_from_unix_ms", "created_before_unix_ms")
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_FROM_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    queue: str
    states: _containers.RepeatedScalarFieldContainer[_queue_pb2.TaskState]
    name: str
    created_from_unix_ms: int
    created_before_unix_ms: int
    def __init__(self, queue: _Optional[str] = ..., states: _Optional[_Iterable[_Union[_queue_pb2.TaskState, str]]] = ..., name: _Optional[str] = ..., created_from_unix_ms: _Optional[int] = ..., created_before_unix_ms: _Optional[int] = ...) -> None: ...

class ListTasksRequest(_message.Message):
    __slots__ = ("filter", "page_size", "cursor", "stale_ok")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    STALE_OK_FIELD_NUMBER: _ClassVar[int]
    filter: TaskFilter
    page_size: int
    cursor: str
    stale_ok: bool
    def __init__(self, filter: _Optional[_Union[TaskFilter, _Mapping]] = ..., page_size: _Optional[int] = ..., cursor: _Optional[str] = ..., stale_ok: bool = ...) -> None: ...

class ListTasksResponse(_message.Message):
    __slots__ = ("tasks", "next_cursor", "scanned")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    SCANNED_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[_queue_pb2.TaskInfo]
    next_cursor: str
    scanned: int
    def __init__(self, tasks: _Optional[_Iterable[_Union[_queue_pb2.TaskInfo, _Mapping]]] = ..., next_cursor: _Optional[str] = ..., scanned: _Optional[int] = ...) -> None: ...

class DescribeTaskRequest(_message.Message):
    __slots__ = ("id", "stale_ok")
    ID_FIELD_NUMBER: _ClassVar[int]
    STALE_OK_FIELD_NUMBER: _ClassVar[int]
    id: int
    stale_ok: bool
    def __init__(self, id: _Optional[int] = ..., stale_ok: bool = ...) -> None: ...

class DescribeTaskResponse(_message.Message):
    __slots__ = ("task", "holder", "timer_unix_ms", "failures", "lost_leases", "priority", "args", "headers", "idempotency_key", "retry_backoff_ms", "time_limit_ms", "result_ttl_ms", "attempts")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TASK_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    TIMER_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    LOST_LEASES_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    RETRY_BACKOFF_MS_FIELD_NUMBER: _ClassVar[int]
    TIME_LIMIT_MS_FIELD_NUMBER: _ClassVar[int]
    RESULT_TTL_MS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    task: _queue_pb2.TaskInfo
    holder: str
    timer_unix_ms: int
    failures: int
    lost_leases: int
    priority: int
    args: bytes
    headers: _containers.ScalarMap[str, str]
    idempotency_key: str
    retry_backoff_ms: int
    time_limit_ms: int
    result_ttl_ms: int
    attempts: _containers.RepeatedCompositeFieldContainer[Attempt]
    def __init__(self, task: _Optional[_Union[_queue_pb2.TaskInfo, _Mapping]] = ..., holder: _Optional[str] = ..., timer_unix_ms: _Optional[int] = ..., failures: _Optional[int] = ..., lost_leases: _Optional[int] = ..., priority: _Optional[int] = ..., args: _Optional[bytes] = ..., headers: _Optional[_Mapping[str, str]] = ..., idempotency_key: _Optional[str] = ..., retry_backoff_ms: _Optional[int] = ..., time_limit_ms: _Optional[int] = ..., result_ttl_ms: _Optional[int] = ..., attempts: _Optional[_Iterable[_Union[Attempt, _Mapping]]] = ...) -> None: ...

class Attempt(_message.Message):
    __slots__ = ("attempt", "holder", "granted_unix_ms", "ended_unix_ms", "end")
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    GRANTED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    ENDED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    attempt: int
    holder: str
    granted_unix_ms: int
    ended_unix_ms: int
    end: AttemptEnd
    def __init__(self, attempt: _Optional[int] = ..., holder: _Optional[str] = ..., granted_unix_ms: _Optional[int] = ..., ended_unix_ms: _Optional[int] = ..., end: _Optional[_Union[AttemptEnd, str]] = ...) -> None: ...

class RetryRequest(_message.Message):
    __slots__ = ("ids", "filter", "limit", "cursor")
    IDS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[int]
    filter: TaskFilter
    limit: int
    cursor: str
    def __init__(self, ids: _Optional[_Iterable[int]] = ..., filter: _Optional[_Union[TaskFilter, _Mapping]] = ..., limit: _Optional[int] = ..., cursor: _Optional[str] = ...) -> None: ...

class RetryResponse(_message.Message):
    __slots__ = ("retried", "retried_ids", "next_cursor")
    RETRIED_FIELD_NUMBER: _ClassVar[int]
    RETRIED_IDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    retried: _containers.RepeatedScalarFieldContainer[bool]
    retried_ids: _containers.RepeatedScalarFieldContainer[int]
    next_cursor: str
    def __init__(self, retried: _Optional[_Iterable[bool]] = ..., retried_ids: _Optional[_Iterable[int]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class RevokeRequest(_message.Message):
    __slots__ = ("ids", "terminate", "reason")
    IDS_FIELD_NUMBER: _ClassVar[int]
    TERMINATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[int]
    terminate: bool
    reason: str
    def __init__(self, ids: _Optional[_Iterable[int]] = ..., terminate: bool = ..., reason: _Optional[str] = ...) -> None: ...

class RevokeResponse(_message.Message):
    __slots__ = ("outcomes",)
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    outcomes: _containers.RepeatedScalarFieldContainer[RevokeOutcome]
    def __init__(self, outcomes: _Optional[_Iterable[_Union[RevokeOutcome, str]]] = ...) -> None: ...

class PauseQueueRequest(_message.Message):
    __slots__ = ("queue",)
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    queue: str
    def __init__(self, queue: _Optional[str] = ...) -> None: ...

class PauseQueueResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ResumeQueueRequest(_message.Message):
    __slots__ = ("queue",)
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    queue: str
    def __init__(self, queue: _Optional[str] = ...) -> None: ...

class ResumeQueueResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PurgeQueueRequest(_message.Message):
    __slots__ = ("queue",)
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    queue: str
    def __init__(self, queue: _Optional[str] = ...) -> None: ...

class PurgeQueueResponse(_message.Message):
    __slots__ = ("purged",)
    PURGED_FIELD_NUMBER: _ClassVar[int]
    purged: int
    def __init__(self, purged: _Optional[int] = ...) -> None: ...
