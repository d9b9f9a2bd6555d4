from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_KIND_UNSPECIFIED: _ClassVar[EventKind]
    EVENT_KIND_SUBMITTED: _ClassVar[EventKind]
    EVENT_KIND_STARTED: _ClassVar[EventKind]
    EVENT_KIND_PROGRESS: _ClassVar[EventKind]
    EVENT_KIND_SUCCEEDED: _ClassVar[EventKind]
    EVENT_KIND_RETRIED: _ClassVar[EventKind]
    EVENT_KIND_RELEASED: _ClassVar[EventKind]
    EVENT_KIND_DEAD: _ClassVar[EventKind]
    EVENT_KIND_CANCELLED: _ClassVar[EventKind]
    EVENT_KIND_POOL_ONLINE: _ClassVar[EventKind]
    EVENT_KIND_POOL_OFFLINE: _ClassVar[EventKind]
    EVENT_KIND_LEADER_CHANGED: _ClassVar[EventKind]

class WatchEnd(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WATCH_END_UNSPECIFIED: _ClassVar[WatchEnd]
    WATCH_END_FELL_BEHIND: _ClassVar[WatchEnd]
    WATCH_END_LOST: _ClassVar[WatchEnd]
EVENT_KIND_UNSPECIFIED: EventKind
EVENT_KIND_SUBMITTED: EventKind
EVENT_KIND_STARTED: EventKind
EVENT_KIND_PROGRESS: EventKind
EVENT_KIND_SUCCEEDED: EventKind
EVENT_KIND_RETRIED: EventKind
EVENT_KIND_RELEASED: EventKind
EVENT_KIND_DEAD: EventKind
EVENT_KIND_CANCELLED: EventKind
EVENT_KIND_POOL_ONLINE: EventKind
EVENT_KIND_POOL_OFFLINE: EventKind
EVENT_KIND_LEADER_CHANGED: EventKind
WATCH_END_UNSPECIFIED: WatchEnd
WATCH_END_FELL_BEHIND: WatchEnd
WATCH_END_LOST: WatchEnd

class WatchRequest(_message.Message):
    __slots__ = ("queues", "task_names", "kinds", "from_index", "from_ordinal")
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    TASK_NAMES_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    FROM_INDEX_FIELD_NUMBER: _ClassVar[int]
    FROM_ORDINAL_FIELD_NUMBER: _ClassVar[int]
    queues: _containers.RepeatedScalarFieldContainer[str]
    task_names: _containers.RepeatedScalarFieldContainer[str]
    kinds: _containers.RepeatedScalarFieldContainer[EventKind]
    from_index: int
    from_ordinal: int
    def __init__(self, queues: _Optional[_Iterable[str]] = ..., task_names: _Optional[_Iterable[str]] = ..., kinds: _Optional[_Iterable[_Union[EventKind, str]]] = ..., from_index: _Optional[int] = ..., from_ordinal: _Optional[int] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("index", "ordinal", "at_ms", "kind", "task_id", "queue", "task_name", "attempt", "pool", "error", "progress", "term", "leader")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ORDINAL_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    index: int
    ordinal: int
    at_ms: int
    kind: EventKind
    task_id: int
    queue: str
    task_name: str
    attempt: int
    pool: str
    error: str
    progress: bytes
    term: int
    leader: int
    def __init__(self, index: _Optional[int] = ..., ordinal: _Optional[int] = ..., at_ms: _Optional[int] = ..., kind: _Optional[_Union[EventKind, str]] = ..., task_id: _Optional[int] = ..., queue: _Optional[str] = ..., task_name: _Optional[str] = ..., attempt: _Optional[int] = ..., pool: _Optional[str] = ..., error: _Optional[str] = ..., progress: _Optional[bytes] = ..., term: _Optional[int] = ..., leader: _Optional[int] = ...) -> None: ...

class WatchResponse(_message.Message):
    __slots__ = ("events", "next_index", "next_ordinal", "end", "oldest_index", "oldest_ordinal")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_INDEX_FIELD_NUMBER: _ClassVar[int]
    NEXT_ORDINAL_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    OLDEST_INDEX_FIELD_NUMBER: _ClassVar[int]
    OLDEST_ORDINAL_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    next_index: int
    next_ordinal: int
    end: WatchEnd
    oldest_index: int
    oldest_ordinal: int
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ..., next_index: _Optional[int] = ..., next_ordinal: _Optional[int] = ..., end: _Optional[_Union[WatchEnd, str]] = ..., oldest_index: _Optional[int] = ..., oldest_ordinal: _Optional[int] = ...) -> None: ...
