from flotilla.v1 import queue_pb2 as _queue_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CatchUp(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CATCH_UP_UNSPECIFIED: _ClassVar[CatchUp]
    CATCH_UP_SKIP: _ClassVar[CatchUp]
    CATCH_UP_ONCE: _ClassVar[CatchUp]
CATCH_UP_UNSPECIFIED: CatchUp
CATCH_UP_SKIP: CatchUp
CATCH_UP_ONCE: CatchUp

class Schedule(_message.Message):
    __slots__ = ("name", "cron", "time_zone", "every_ms", "catch_up", "grace_ms", "task")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CRON_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    EVERY_MS_FIELD_NUMBER: _ClassVar[int]
    CATCH_UP_FIELD_NUMBER: _ClassVar[int]
    GRACE_MS_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    name: str
    cron: str
    time_zone: str
    every_ms: int
    catch_up: CatchUp
    grace_ms: int
    task: _queue_pb2.TaskSpec
    def __init__(self, name: _Optional[str] = ..., cron: _Optional[str] = ..., time_zone: _Optional[str] = ..., every_ms: _Optional[int] = ..., catch_up: _Optional[_Union[CatchUp, str]] = ..., grace_ms: _Optional[int] = ..., task: _Optional[_Union[_queue_pb2.TaskSpec, _Mapping]] = ...) -> None: ...

class AddScheduleRequest(_message.Message):
    __slots__ = ("schedule", "replace")
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    schedule: Schedule
    replace: bool
    def __init__(self, schedule: _Optional[_Union[Schedule, _Mapping]] = ..., replace: bool = ...) -> None: ...

class AddScheduleResponse(_message.Message):
    __slots__ = ("id", "outcome", "next_unix_ms")
    ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    NEXT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    id: int
    outcome: str
    next_unix_ms: int
    def __init__(self, id: _Optional[int] = ..., outcome: _Optional[str] = ..., next_unix_ms: _Optional[int] = ...) -> None: ...

class ListSchedulesRequest(_message.Message):
    __slots__ = ("upcoming",)
    UPCOMING_FIELD_NUMBER: _ClassVar[int]
    upcoming: int
    def __init__(self, upcoming: _Optional[int] = ...) -> None: ...

class ScheduleInfo(_message.Message):
    __slots__ = ("id", "schedule", "paused", "created_unix_ms", "next_unix_ms", "last_slot_unix_ms", "last_task_id", "fired", "outages")
    ID_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    NEXT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_SLOT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_TASK_ID_FIELD_NUMBER: _ClassVar[int]
    FIRED_FIELD_NUMBER: _ClassVar[int]
    OUTAGES_FIELD_NUMBER: _ClassVar[int]
    id: int
    schedule: Schedule
    paused: bool
    created_unix_ms: int
    next_unix_ms: _containers.RepeatedScalarFieldContainer[int]
    last_slot_unix_ms: int
    last_task_id: int
    fired: int
    outages: int
    def __init__(self, id: _Optional[int] = ..., schedule: _Optional[_Union[Schedule, _Mapping]] = ..., paused: bool = ..., created_unix_ms: _Optional[int] = ..., next_unix_ms: _Optional[_Iterable[int]] = ..., last_slot_unix_ms: _Optional[int] = ..., last_task_id: _Optional[int] = ..., fired: _Optional[int] = ..., outages: _Optional[int] = ...) -> None: ...

class ListSchedulesResponse(_message.Message):
    __slots__ = ("schedules",)
    SCHEDULES_FIELD_NUMBER: _ClassVar[int]
    schedules: _containers.RepeatedCompositeFieldContainer[ScheduleInfo]
    def __init__(self, schedules: _Optional[_Iterable[_Union[ScheduleInfo, _Mapping]]] = ...) -> None: ...

class PauseScheduleRequest(_message.Message):
    __slots__ = ("name", "paused")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    name: str
    paused: bool
    def __init__(self, name: _Optional[str] = ..., paused: bool = ...) -> None: ...

class PauseScheduleResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RemoveScheduleRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class RemoveScheduleResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
