from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CompleteRequest(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[TaskResult]
    def __init__(self, results: _Optional[_Iterable[_Union[TaskResult, _Mapping]]] = ...) -> None: ...

class CompleteResponse(_message.Message):
    __slots__ = ("acks",)
    ACKS_FIELD_NUMBER: _ClassVar[int]
    acks: _containers.RepeatedCompositeFieldContainer[ResultAck]
    def __init__(self, acks: _Optional[_Iterable[_Union[ResultAck, _Mapping]]] = ...) -> None: ...

class WorkerMessage(_message.Message):
    __slots__ = ("hello", "results", "progress", "pong", "drain")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    PONG_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    results: Results
    progress: Progress
    pong: Pong
    drain: Drain
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., results: _Optional[_Union[Results, _Mapping]] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., pong: _Optional[_Union[Pong, _Mapping]] = ..., drain: _Optional[_Union[Drain, _Mapping]] = ...) -> None: ...

class NodeMessage(_message.Message):
    __slots__ = ("welcome", "tasks", "acks", "ping", "abort", "drained", "error", "take_back")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    ACKS_FIELD_NUMBER: _ClassVar[int]
    PING_FIELD_NUMBER: _ClassVar[int]
    ABORT_FIELD_NUMBER: _ClassVar[int]
    DRAINED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TAKE_BACK_FIELD_NUMBER: _ClassVar[int]
    welcome: Welcome
    tasks: Tasks
    acks: Acks
    ping: Ping
    abort: Abort
    drained: Drained
    error: WorkerError
    take_back: TakeBack
    def __init__(self, welcome: _Optional[_Union[Welcome, _Mapping]] = ..., tasks: _Optional[_Union[Tasks, _Mapping]] = ..., acks: _Optional[_Union[Acks, _Mapping]] = ..., ping: _Optional[_Union[Ping, _Mapping]] = ..., abort: _Optional[_Union[Abort, _Mapping]] = ..., drained: _Optional[_Union[Drained, _Mapping]] = ..., error: _Optional[_Union[WorkerError, _Mapping]] = ..., take_back: _Optional[_Union[TakeBack, _Mapping]] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("name", "queues", "tasks", "concurrency", "resume", "protocol_version", "agent", "prefetch", "queue_ahead")
    NAME_FIELD_NUMBER: _ClassVar[int]
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    PREFETCH_FIELD_NUMBER: _ClassVar[int]
    QUEUE_AHEAD_FIELD_NUMBER: _ClassVar[int]
    name: str
    queues: _containers.RepeatedScalarFieldContainer[str]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskDecl]
    concurrency: int
    resume: _containers.RepeatedCompositeFieldContainer[LeaseId]
    protocol_version: int
    agent: str
    prefetch: int
    queue_ahead: int
    def __init__(self, name: _Optional[str] = ..., queues: _Optional[_Iterable[str]] = ..., tasks: _Optional[_Iterable[_Union[TaskDecl, _Mapping]]] = ..., concurrency: _Optional[int] = ..., resume: _Optional[_Iterable[_Union[LeaseId, _Mapping]]] = ..., protocol_version: _Optional[int] = ..., agent: _Optional[str] = ..., prefetch: _Optional[int] = ..., queue_ahead: _Optional[int] = ...) -> None: ...

class TaskDecl(_message.Message):
    __slots__ = ("name", "queue")
    NAME_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    queue: str
    def __init__(self, name: _Optional[str] = ..., queue: _Optional[str] = ...) -> None: ...

class LeaseId(_message.Message):
    __slots__ = ("task_id", "attempt")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    task_id: int
    attempt: int
    def __init__(self, task_id: _Optional[int] = ..., attempt: _Optional[int] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("session", "node_id", "lease_ms", "ping_interval_ms", "max_result_bytes", "protocol_version")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_MS_FIELD_NUMBER: _ClassVar[int]
    PING_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_RESULT_BYTES_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    session: int
    node_id: int
    lease_ms: int
    ping_interval_ms: int
    max_result_bytes: int
    protocol_version: int
    def __init__(self, session: _Optional[int] = ..., node_id: _Optional[int] = ..., lease_ms: _Optional[int] = ..., ping_interval_ms: _Optional[int] = ..., max_result_bytes: _Optional[int] = ..., protocol_version: _Optional[int] = ...) -> None: ...

class Tasks(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[Task]
    def __init__(self, tasks: _Optional[_Iterable[_Union[Task, _Mapping]]] = ...) -> None: ...

class Results(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[TaskResult]
    def __init__(self, results: _Optional[_Iterable[_Union[TaskResult, _Mapping]]] = ...) -> None: ...

class Acks(_message.Message):
    __slots__ = ("acks",)
    ACKS_FIELD_NUMBER: _ClassVar[int]
    acks: _containers.RepeatedCompositeFieldContainer[ResultAck]
    def __init__(self, acks: _Optional[_Iterable[_Union[ResultAck, _Mapping]]] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("task_id", "attempt", "name", "queue", "args", "headers", "time_limit_ms", "retries_left", "created_unix_ms")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    TIME_LIMIT_MS_FIELD_NUMBER: _ClassVar[int]
    RETRIES_LEFT_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    task_id: int
    attempt: int
    name: str
    queue: str
    args: bytes
    headers: _containers.ScalarMap[str, str]
    time_limit_ms: int
    retries_left: int
    created_unix_ms: int
    def __init__(self, task_id: _Optional[int] = ..., attempt: _Optional[int] = ..., name: _Optional[str] = ..., queue: _Optional[str] = ..., args: _Optional[bytes] = ..., headers: _Optional[_Mapping[str, str]] = ..., time_limit_ms: _Optional[int] = ..., retries_left: _Optional[int] = ..., created_unix_ms: _Optional[int] = ...) -> None: ...

class TaskResult(_message.Message):
    __slots__ = ("task_id", "attempt", "success", "failure", "released")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    task_id: int
    attempt: int
    success: bytes
    failure: Failure
    released: Released
    def __init__(self, task_id: _Optional[int] = ..., attempt: _Optional[int] = ..., success: _Optional[bytes] = ..., failure: _Optional[_Union[Failure, _Mapping]] = ..., released: _Optional[_Union[Released, _Mapping]] = ...) -> None: ...

class Released(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Failure(_message.Message):
    __slots__ = ("message", "retryable", "retry_delay_ms", "kind")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    RETRY_DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    message: str
    retryable: bool
    retry_delay_ms: int
    kind: str
    def __init__(self, message: _Optional[str] = ..., retryable: bool = ..., retry_delay_ms: _Optional[int] = ..., kind: _Optional[str] = ...) -> None: ...

class ResultAck(_message.Message):
    __slots__ = ("task_id", "attempt", "status")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[ResultAck.Status]
        STATUS_ACCEPTED: _ClassVar[ResultAck.Status]
        STATUS_STALE: _ClassVar[ResultAck.Status]
        STATUS_TOO_LARGE: _ClassVar[ResultAck.Status]
    STATUS_UNSPECIFIED: ResultAck.Status
    STATUS_ACCEPTED: ResultAck.Status
    STATUS_STALE: ResultAck.Status
    STATUS_TOO_LARGE: ResultAck.Status
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    task_id: int
    attempt: int
    status: ResultAck.Status
    def __init__(self, task_id: _Optional[int] = ..., attempt: _Optional[int] = ..., status: _Optional[_Union[ResultAck.Status, str]] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("task_id", "attempt", "progress")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    task_id: int
    attempt: int
    progress: bytes
    def __init__(self, task_id: _Optional[int] = ..., attempt: _Optional[int] = ..., progress: _Optional[bytes] = ...) -> None: ...

class Ping(_message.Message):
    __slots__ = ("nonce",)
    NONCE_FIELD_NUMBER: _ClassVar[int]
    nonce: int
    def __init__(self, nonce: _Optional[int] = ...) -> None: ...

class Pong(_message.Message):
    __slots__ = ("nonce",)
    NONCE_FIELD_NUMBER: _ClassVar[int]
    nonce: int
    def __init__(self, nonce: _Optional[int] = ...) -> None: ...

class Abort(_message.Message):
    __slots__ = ("task_id", "attempt", "reason")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    task_id: int
    attempt: int
    reason: str
    def __init__(self, task_id: _Optional[int] = ..., attempt: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class TakeBack(_message.Message):
    __slots__ = ("task_id", "attempt")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    task_id: int
    attempt: int
    def __init__(self, task_id: _Optional[int] = ..., attempt: _Optional[int] = ...) -> None: ...

class Drain(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Drained(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WorkerError(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: str
    def __init__(self, message: _Optional[str] = ...) -> None: ...
