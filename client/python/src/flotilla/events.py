"""The events stream (docs/OPERATIONS.md, "Watching events"): ``app.events(...)`` or
``Client.events(...)`` yields :class:`Event` as tasks are submitted, start, report progress,
succeed, are retried, released, die or are cancelled, as pools come and go and leaders change.

Every event has a position ``(index, ordinal)``: the log index of the entry that caused it and
its place among that entry's events, the same on every node. The generator resumes by itself
from the position after the last event it yielded (on the next node after a transient failure,
at once after the node cut it off for reading too slowly). Keep ``event.position_after`` to
resume after a restart (``from_position=``). A position the node no longer holds raises
:class:`EventsLost`, naming the oldest it holds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, cast

import grpc

from flotilla.errors import FlotillaError
from flotilla.retry import Backoff, describe, is_transient
from flotilla.v1 import events_pb2 as epb

if TYPE_CHECKING:
    from flotilla.client import Client

#: Event kinds, as the ``kind`` of an :class:`Event` and the ``kinds=`` filter name them.
KINDS = (
    "submitted",
    "started",
    "progress",
    "succeeded",
    "retried",
    "released",
    "dead",
    "cancelled",
    "pool_online",
    "pool_offline",
    "leader_changed",
)

Position = tuple[int, int]


class EventsLost(FlotillaError):
    """The node no longer holds the position asked for (its ring of recent events moved on, or
    it started recording later): take a fresh view and watch from :attr:`oldest`."""

    def __init__(self, asked: Position, oldest: Position) -> None:
        super().__init__(
            f"events from {asked[0]}:{asked[1]} are no longer held by the node; "
            f"the oldest it holds is {oldest[0]}:{oldest[1]}"
        )
        self.asked = asked
        self.oldest = oldest


@dataclass(frozen=True)
class Event:
    """One event. Task kinds carry ``task_id``, ``queue``, ``task_name`` and ``attempt``."""

    index: int
    ordinal: int
    at_ms: int
    kind: str
    task_id: int = 0
    queue: str = ""
    task_name: str = ""
    attempt: int = 0
    #: ``started``: the pool it runs on; pool kinds: the pool.
    pool: str = ""
    #: ``retried``, ``dead``: the task's last error.
    error: Optional[str] = None
    #: ``progress``: the worker's report (decoded JSON).
    progress: Any = None
    #: ``leader_changed``: the term and its leader (0: unknown to the node).
    term: int = 0
    leader: int = 0

    @property
    def position(self) -> Position:
        return (self.index, self.ordinal)

    @property
    def position_after(self) -> Position:
        """Where to resume to see what follows this event, and not it again."""
        return (self.index, self.ordinal + 1)

    @classmethod
    def from_wire(cls, e: epb.Event) -> Event:
        progress: Any = None
        if e.progress:
            try:
                progress = json.loads(e.progress)
            except ValueError:
                progress = e.progress.decode("utf-8", "replace")
        return cls(
            index=e.index,
            ordinal=e.ordinal,
            at_ms=e.at_ms,
            kind=KINDS[e.kind - 1] if 1 <= e.kind <= len(KINDS) else "unknown",
            task_id=e.task_id,
            queue=e.queue,
            task_name=e.task_name,
            attempt=e.attempt,
            pool=e.pool,
            error=e.error or None,
            progress=progress,
            term=e.term,
            leader=e.leader,
        )


def _kind_wire(kind: str) -> epb.EventKind:
    if kind not in KINDS:
        raise ValueError(f"{kind!r} is not an event kind ({', '.join(KINDS)})")
    return cast("epb.EventKind", epb.EventKind.Value(f"EVENT_KIND_{kind.upper()}"))


def watch(
    client: Client,
    *,
    queues: Iterable[str] = (),
    task_names: Iterable[str] = (),
    kinds: Iterable[str] = (),
    from_position: Optional[Position] = None,
) -> Iterator[Event]:
    """See the module doc; :meth:`Client.events` is this."""
    request = epb.WatchRequest(
        queues=list(queues), task_names=list(task_names), kinds=[_kind_wire(k) for k in kinds]
    )
    nxt: Optional[Position] = from_position
    backoff = Backoff(client.retry, time.monotonic())
    node = client._node()
    while True:
        if nxt is not None:
            request.from_index, request.from_ordinal = nxt
        else:
            request.ClearField("from_index")
            request.from_ordinal = 0
        try:
            for msg in client._stub(node).watch(request):
                backoff.reset(time.monotonic())
                told = (msg.next_index, msg.next_ordinal)
                if msg.end == epb.WATCH_END_LOST:
                    raise EventsLost(nxt or told, (msg.oldest_index, msg.oldest_ordinal))
                for e in msg.events:
                    event = Event.from_wire(e)
                    nxt = event.position_after
                    yield event
                nxt = max(told, nxt) if nxt is not None else told
                if msg.end == epb.WATCH_END_FELL_BEHIND:
                    break
            else:
                failure = "the events stream ended"
                node = client._retry_after(node, backoff, failure, None)
            continue
        except grpc.RpcError as e:
            code = e.code() if isinstance(e, grpc.Call) else None
            if not is_transient(code):
                from flotilla.client import _final_error

                raise _final_error(e, None) from None
            node = client._retry_after(node, backoff, describe(e), None)
