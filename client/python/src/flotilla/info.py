"""A task as the cluster reports it: :class:`TaskInfo`, :class:`TaskState`, and the other
domain types of client replies, converted from the wire messages in one place each."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Optional

from flotilla import payload
from flotilla.v1 import queue_pb2 as qpb
from flotilla.v1 import schedule_pb2 as spb


class TaskState(str, enum.Enum):
    """Lifecycle state of a task (the wire's ``TaskState``, lowercase like the Rust client)."""

    SCHEDULED = "scheduled"
    #: A workflow task waiting for its parents: it becomes pending (or scheduled, if its own
    #: ETA is ahead) when they decide it, or is cancelled. A node that predates this state
    #: reports such a task as SCHEDULED; an SDK that predates it reads UNKNOWN.
    WAITING = "waiting"
    PENDING = "pending"
    LEASED = "leased"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    DEAD = "dead"
    CANCELLED = "cancelled"
    #: The id is unknown or its result expired (only reported by waits).
    NOT_FOUND = "not_found"
    #: A state this SDK does not know (a newer node).
    UNKNOWN = "unknown"

    @property
    def is_final(self) -> bool:
        """Whether the task will not change any more."""
        return self in _FINAL

    def __str__(self) -> str:
        return self.value

    @classmethod
    def from_wire(cls, state: int) -> TaskState:
        return _FROM_WIRE.get(state, cls.UNKNOWN)


_FINAL = frozenset((TaskState.SUCCEEDED, TaskState.DEAD, TaskState.CANCELLED, TaskState.NOT_FOUND))
_FROM_WIRE: dict[int, TaskState] = {
    qpb.TASK_STATE_SCHEDULED: TaskState.SCHEDULED,
    qpb.TASK_STATE_WAITING: TaskState.WAITING,
    qpb.TASK_STATE_PENDING: TaskState.PENDING,
    qpb.TASK_STATE_LEASED: TaskState.LEASED,
    qpb.TASK_STATE_RETRYING: TaskState.RETRYING,
    qpb.TASK_STATE_SUCCEEDED: TaskState.SUCCEEDED,
    qpb.TASK_STATE_DEAD: TaskState.DEAD,
    qpb.TASK_STATE_CANCELLED: TaskState.CANCELLED,
}


@dataclass(frozen=True)
class TaskInfo:
    """A task as the cluster holds it."""

    id: int
    name: str
    queue: str
    state: TaskState
    #: Attempts started so far (1 for the first run).
    attempt: int
    max_retries: int
    #: The handler's JSON result (raw bytes), when ``state`` is SUCCEEDED.
    result_bytes: bytes
    #: The last failure's message, when an attempt failed.
    error: str
    created_unix_ms: int
    updated_unix_ms: int

    @classmethod
    def from_wire(cls, info: qpb.TaskInfo) -> TaskInfo:
        state = TaskState.NOT_FOUND if info.not_found else TaskState.from_wire(info.state)
        return cls(
            id=info.id,
            name=info.name,
            queue=info.queue,
            state=state,
            attempt=info.attempt,
            max_retries=info.max_retries,
            result_bytes=info.result,
            error=info.error,
            created_unix_ms=info.created_unix_ms,
            updated_unix_ms=info.updated_unix_ms,
        )

    def result(self) -> Any:
        """The result decoded from JSON (``None`` while there is none)."""
        return payload.loads(self.result_bytes)


@dataclass(frozen=True)
class Submitted:
    """The outcome of one submitted task."""

    id: int
    #: True when the idempotency key had been seen and no new task was created.
    duplicate: bool


@dataclass(frozen=True)
class QueueStats:
    """Counts of tasks in one queue, per state."""

    queue: str
    scheduled: int
    pending: int
    leased: int
    retrying: int
    succeeded: int
    dead: int
    cancelled: int
    paused: bool

    @classmethod
    def from_wire(cls, s: qpb.QueueStats) -> QueueStats:
        return cls(
            s.queue,
            s.scheduled,
            s.pending,
            s.leased,
            s.retrying,
            s.succeeded,
            s.dead,
            s.cancelled,
            s.paused,
        )


@dataclass(frozen=True)
class Member:
    """One member of the cluster."""

    id: int
    addr: str
    role: str
    zone: str


@dataclass(frozen=True)
class ClusterStatus:
    """Members, roles and the leader as the answering node sees them."""

    node_id: int
    leader_id: Optional[int]
    term: int
    commit_index: int
    applied_index: int
    members: tuple[Member, ...]

    @classmethod
    def from_wire(cls, s: qpb.ClusterStatusResponse) -> ClusterStatus:
        return cls(
            node_id=s.node_id,
            leader_id=s.leader_id if s.HasField("leader_id") else None,
            term=s.term,
            commit_index=s.commit_index,
            applied_index=s.applied_index,
            members=tuple(Member(m.id, m.addr, m.role, m.zone) for m in s.members),
        )


@dataclass(frozen=True)
class WorkerInfo:
    """One pool or remote worker of the cluster (``flotilla workers``)."""

    #: The node that runs the pool or holds the session; 0 when ``kind`` is ``"unknown"``.
    node_id: int
    #: The name it leases under (``node-<id>`` for a node's own pool).
    name: str
    #: ``"pool"`` (a node's own), ``"remote"`` (a connected worker) or ``"unknown"`` (no
    #: member that answered runs it, but the log holds leases or capacity of the name).
    kind: str
    queues: tuple[str, ...]
    concurrency: int
    #: Tasks it runs now, as its node sees them.
    busy: int
    #: Tasks it holds leased in the replicated state.
    leased: int
    #: Its standing capacity: tasks it stands ready to be granted.
    standing: int
    connected_ms_ago: int
    last_seen_ms_ago: int

    @classmethod
    def from_wire(cls, w: qpb.WorkerInfo) -> WorkerInfo:
        kinds = {qpb.WORKER_KIND_POOL: "pool", qpb.WORKER_KIND_REMOTE: "remote"}
        return cls(
            node_id=w.node_id,
            name=w.name,
            kind=kinds.get(w.kind, "unknown"),
            queues=tuple(w.queues),
            concurrency=w.concurrency,
            busy=w.busy,
            leased=w.leased,
            standing=w.standing,
            connected_ms_ago=w.connected_ms_ago,
            last_seen_ms_ago=w.last_seen_ms_ago,
        )


@dataclass(frozen=True)
class Workers:
    """Every pool and remote worker of the cluster, and the members that did not answer."""

    #: By node, then name; the ``"unknown"`` ones last.
    workers: tuple[WorkerInfo, ...]
    #: Members that did not answer within 2 s: their workers are missing (or ``"unknown"``).
    unreachable_nodes: tuple[int, ...]

    @classmethod
    def from_wire(cls, r: qpb.ListWorkersResponse) -> Workers:
        return cls(
            workers=tuple(WorkerInfo.from_wire(w) for w in r.workers),
            unreachable_nodes=tuple(r.unreachable_nodes),
        )


@dataclass(frozen=True)
class ScheduleAdded:
    """What adding a schedule did."""

    id: int
    #: ``"added"``, ``"unchanged"`` (it existed with this spec) or ``"replaced"``.
    outcome: str
    #: Its next slot, ms since the Unix epoch (None while paused).
    next_unix_ms: Optional[int]

    @classmethod
    def from_wire(cls, r: spb.AddScheduleResponse) -> ScheduleAdded:
        return cls(r.id, r.outcome, r.next_unix_ms if r.HasField("next_unix_ms") else None)


@dataclass(frozen=True)
class ScheduleInfo:
    """A schedule as the cluster holds it."""

    id: int
    name: str
    #: The cron expression and its zone, or empty and the interval (ms).
    cron: str
    tz: str
    every_ms: int
    catch_up: str
    grace_ms: int
    task: str
    queue: str
    paused: bool
    created_unix_ms: int
    #: Its next run times, ms since the Unix epoch (none while paused).
    next_unix_ms: tuple[int, ...]
    last_slot_unix_ms: Optional[int]
    last_task_id: Optional[int]
    #: Tasks enqueued so far.
    fired: int
    #: Times it found slots missed by an outage.
    outages: int

    @classmethod
    def from_wire(cls, i: spb.ScheduleInfo) -> ScheduleInfo:
        s = i.schedule
        return cls(
            id=i.id,
            name=s.name,
            cron=s.cron,
            tz=s.time_zone,
            every_ms=s.every_ms,
            catch_up="once" if s.catch_up == spb.CATCH_UP_ONCE else "skip",
            grace_ms=s.grace_ms,
            task=s.task.name,
            queue=s.task.queue,
            paused=i.paused,
            created_unix_ms=i.created_unix_ms,
            next_unix_ms=tuple(i.next_unix_ms),
            last_slot_unix_ms=i.last_slot_unix_ms if i.HasField("last_slot_unix_ms") else None,
            last_task_id=i.last_task_id if i.HasField("last_task_id") else None,
            fired=i.fired,
            outages=i.outages,
        )
