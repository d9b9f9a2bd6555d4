"""Every error the SDK raises. :class:`FlotillaError` is the base of all of them.

Client calls: transient failures (``UNAVAILABLE``, a node that does not answer) are retried on
the next node; they surface as :class:`Unavailable` only when the retry policy gives up. Task
outcomes: :meth:`AsyncResult.get` raises :class:`TaskFailed` (the remote error's message) or
:class:`TaskCancelled`. Handlers raise :class:`Reject` (fatal) or :class:`Retry` (retry after a
delay) to steer their own outcome; any other exception is a retryable failure.
"""

from __future__ import annotations

from typing import Optional


class FlotillaError(Exception):
    """Base of every error of this SDK."""


class Unavailable(FlotillaError):
    """No node could serve the call before the retry policy's time ran out."""

    def __init__(self, attempts: int, last: str) -> None:
        super().__init__(f"cluster unavailable after {attempts} attempts: {last}")
        self.attempts = attempts
        self.last = last


class InvalidArgument(FlotillaError, ValueError):
    """The node refused the request (unknown task name, payload too large, malformed)."""


class ServerError(FlotillaError):
    """Any other status a node returned (e.g. ``INTERNAL``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"server error ({code}): {message}")
        self.code = code
        self.message = message


class Unauthenticated(ServerError):
    """The call carried no token, or one the cluster does not know (revoked, expired): give a
    valid one (``token=`` or ``$FLOTILLA_TOKEN``)."""


class PermissionDenied(ServerError):
    """The token is valid, but its role may not make this call (e.g. a submit token removing a
    node)."""


class PayloadError(FlotillaError, ValueError):
    """Arguments or a result that are not JSON (see docs/PAYLOADS.md)."""


class TaskNotFound(FlotillaError, LookupError):
    """No task with this id exists (or its result expired)."""

    def __init__(self, task_id: int) -> None:
        super().__init__(f"task {task_id} not found")
        self.task_id = task_id


class ResultTimeout(FlotillaError, TimeoutError):
    """A wait for a result ran out of time; the task itself goes on."""


class TaskFailed(FlotillaError):
    """The task is dead: its last attempt failed and no retry is left (or it was fatal).

    ``message`` is the remote error's message; ``kind`` its type name when known (e.g.
    ``"ValueError"``).
    """

    def __init__(self, task_id: int, message: str, kind: str = "") -> None:
        super().__init__(message)
        self.task_id = task_id
        self.message = message
        self.kind = kind


class TaskCancelled(FlotillaError):
    """The task was cancelled before it ran."""

    def __init__(self, task_id: int) -> None:
        super().__init__(f"task {task_id} was cancelled")
        self.task_id = task_id


class Reject(Exception):
    """Raised by a handler: the attempt failed and another cannot help; the task is dead."""


class Retry(Exception):
    """Raised by a handler (or :meth:`TaskContext.retry`): retry after ``countdown`` seconds
    (``None``: the task's backoff), counted against its retries."""

    def __init__(self, message: str = "retry requested", countdown: Optional[float] = None) -> None:
        super().__init__(message)
        self.countdown = countdown


class SoftTimeLimitExceeded(FlotillaError):
    """Raised inside a running task when its soft time limit (``soft_time_limit=``) passes,
    before the hard ``time_limit`` fails the attempt: catch it to clean up, save what you have,
    or return early (Celery's exception of the same name). Uncaught, it fails the attempt like
    any other exception (retried while retries are left). It is raised asynchronously in the
    thread running the task, at the next Python bytecode: a handler blocked in one long C call
    (a sleep, a socket read) hears it when that call returns."""
