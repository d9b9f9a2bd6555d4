"""A task's attempt history (``DescribeTask``'s ``attempts``): which pool or worker ran each
attempt, when, and how it ended. :meth:`flotilla.client.Client.attempts` and
:attr:`flotilla.result.AsyncResult.attempts` return it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from flotilla.v1 import ops_pb2 as opb

_ENDS: dict[int, str] = {
    opb.ATTEMPT_END_SUCCEEDED: "succeeded",
    opb.ATTEMPT_END_FAILED: "failed",
    opb.ATTEMPT_END_FAILED_FATAL: "failed-fatal",
    opb.ATTEMPT_END_LOST_LEASE: "lost-lease",
    opb.ATTEMPT_END_RELEASED: "released",
    opb.ATTEMPT_END_REVOKED: "revoked",
}


@dataclass(frozen=True)
class Attempt:
    """One attempt of a task."""

    #: The attempt number (1, 2, ...).
    attempt: int
    #: The pool that held it: ``node-N`` (node N's own workers) or a remote worker's name.
    holder: str
    #: When it was granted (ms since the Unix epoch).
    granted_unix_ms: int
    #: When it ended; ``None`` while it runs.
    ended_unix_ms: Optional[int]
    #: How it ended (``succeeded``, ``failed``, ``failed-fatal``, ``lost-lease``, ``released``,
    #: ``revoked``); ``None`` while it runs.
    end: Optional[str]

    @classmethod
    def from_wire(cls, a: opb.Attempt) -> Attempt:
        end = None if a.end == opb.ATTEMPT_END_UNSPECIFIED else _ENDS.get(a.end, "unknown")
        return cls(
            attempt=a.attempt,
            holder=a.holder,
            granted_unix_ms=a.granted_unix_ms,
            ended_unix_ms=None if end is None else a.ended_unix_ms,
            end=end,
        )
