from flotilla.v1 import queue_pb2 as _queue_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WorkflowState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WORKFLOW_STATE_UNSPECIFIED: _ClassVar[WorkflowState]
    WORKFLOW_STATE_RUNNING: _ClassVar[WorkflowState]
    WORKFLOW_STATE_SUCCEEDED: _ClassVar[WorkflowState]
    WORKFLOW_STATE_FAILED: _ClassVar[WorkflowState]
WORKFLOW_STATE_UNSPECIFIED: WorkflowState
WORKFLOW_STATE_RUNNING: WorkflowState
WORKFLOW_STATE_SUCCEEDED: WorkflowState
WORKFLOW_STATE_FAILED: WorkflowState

class Canvas(_message.Message):
    __slots__ = ("task", "chain", "group", "chord")
    TASK_FIELD_NUMBER: _ClassVar[int]
    CHAIN_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    CHORD_FIELD_NUMBER: _ClassVar[int]
    task: CanvasTask
    chain: CanvasList
    group: CanvasList
    chord: Chord
    def __init__(self, task: _Optional[_Union[CanvasTask, _Mapping]] = ..., chain: _Optional[_Union[CanvasList, _Mapping]] = ..., group: _Optional[_Union[CanvasList, _Mapping]] = ..., chord: _Optional[_Union[Chord, _Mapping]] = ...) -> None: ...

class CanvasTask(_message.Message):
    __slots__ = ("spec", "parents", "immutable")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    PARENTS_FIELD_NUMBER: _ClassVar[int]
    IMMUTABLE_FIELD_NUMBER: _ClassVar[int]
    spec: _queue_pb2.TaskSpec
    parents: _containers.RepeatedScalarFieldContainer[int]
    immutable: bool
    def __init__(self, spec: _Optional[_Union[_queue_pb2.TaskSpec, _Mapping]] = ..., parents: _Optional[_Iterable[int]] = ..., immutable: bool = ...) -> None: ...

class CanvasList(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Canvas]
    def __init__(self, items: _Optional[_Iterable[_Union[Canvas, _Mapping]]] = ...) -> None: ...

class Chord(_message.Message):
    __slots__ = ("header", "body")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    header: Canvas
    body: Canvas
    def __init__(self, header: _Optional[_Union[Canvas, _Mapping]] = ..., body: _Optional[_Union[Canvas, _Mapping]] = ...) -> None: ...

class SubmitWorkflowRequest(_message.Message):
    __slots__ = ("canvas", "on_error", "idempotency_key")
    CANVAS_FIELD_NUMBER: _ClassVar[int]
    ON_ERROR_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    canvas: Canvas
    on_error: _queue_pb2.TaskSpec
    idempotency_key: str
    def __init__(self, canvas: _Optional[_Union[Canvas, _Mapping]] = ..., on_error: _Optional[_Union[_queue_pb2.TaskSpec, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class SubmitWorkflowResponse(_message.Message):
    __slots__ = ("id", "task_ids", "duplicate")
    ID_FIELD_NUMBER: _ClassVar[int]
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    id: int
    task_ids: _containers.RepeatedScalarFieldContainer[int]
    duplicate: bool
    def __init__(self, id: _Optional[int] = ..., task_ids: _Optional[_Iterable[int]] = ..., duplicate: bool = ...) -> None: ...

class GetWorkflowRequest(_message.Message):
    __slots__ = ("id", "task_id", "stale_ok")
    ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    STALE_OK_FIELD_NUMBER: _ClassVar[int]
    id: int
    task_id: int
    stale_ok: bool
    def __init__(self, id: _Optional[int] = ..., task_id: _Optional[int] = ..., stale_ok: bool = ...) -> None: ...

class WorkflowTask(_message.Message):
    __slots__ = ("task", "id", "waiting", "parents", "errback")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    PARENTS_FIELD_NUMBER: _ClassVar[int]
    ERRBACK_FIELD_NUMBER: _ClassVar[int]
    task: _queue_pb2.TaskInfo
    id: int
    waiting: bool
    parents: _containers.RepeatedScalarFieldContainer[int]
    errback: bool
    def __init__(self, task: _Optional[_Union[_queue_pb2.TaskInfo, _Mapping]] = ..., id: _Optional[int] = ..., waiting: bool = ..., parents: _Optional[_Iterable[int]] = ..., errback: bool = ...) -> None: ...

class GetWorkflowResponse(_message.Message):
    __slots__ = ("id", "state", "result", "error", "created_unix_ms", "tasks")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    id: int
    state: WorkflowState
    result: bytes
    error: str
    created_unix_ms: int
    tasks: _containers.RepeatedCompositeFieldContainer[WorkflowTask]
    def __init__(self, id: _Optional[int] = ..., state: _Optional[_Union[WorkflowState, str]] = ..., result: _Optional[bytes] = ..., error: _Optional[str] = ..., created_unix_ms: _Optional[int] = ..., tasks: _Optional[_Iterable[_Union[WorkflowTask, _Mapping]]] = ...) -> None: ...
