"""[`Success`] and [`Failure`]: the outcome of one attempt (or [`Released`]: not run), and
[`execute`], which runs a handler and turns whatever happens into one of the first two.
Picklable, so a process pool returns them.

Mapping (docs/PYTHON.md): a return value is JSON-encoded; :class:`~flotilla.Reject`, bad
arguments, an unknown name or a result that is not JSON are fatal (the task is dead at once);
:class:`~flotilla.Retry` retries after its countdown; any other exception is retryable, with
``kind`` = its class name.
"""

from __future__ import annotations

import ctypes
import logging
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Optional, Union

from flotilla import payload
from flotilla.canvas import pass_parent_results
from flotilla.errors import PayloadError, Reject, Retry, SoftTimeLimitExceeded
from flotilla.task import Task, TaskContext, set_context

log = logging.getLogger("flotilla.worker")


@dataclass(frozen=True)
class Success:
    """The JSON result."""

    data: bytes


@dataclass(frozen=True)
class Failure:
    """A failed attempt, as the wire's ``Failure``."""

    message: str
    kind: str
    retryable: bool = True
    retry_delay_ms: int = 0


@dataclass(frozen=True)
class Released:
    """Not run: the task goes back to the queue, no attempt counted (a draining worker's
    prefetched tasks)."""


Outcome = Union[Success, Failure, Released]

#: What a handler that returns ``None`` answers (immutable: one for all, not one per attempt).
NULL_SUCCESS = Success(b"null")


def execute(tasks: Mapping[str, Task], ctx: TaskContext, args: bytes) -> Union[Success, Failure]:
    """Runs attempt ``ctx`` of the task ``ctx.name`` with the JSON ``args``."""
    task = tasks.get(ctx.name)
    if task is None:
        return Failure(
            f"task {ctx.name!r} is not registered in this worker", "NotRegistered", False
        )
    try:
        call_args, call_kwargs = payload.decode_call(args)
        if ctx.headers:
            # A workflow task's parents' results (docs/WORKFLOWS.md), as its canvas asked.
            call_args = pass_parent_results(ctx.headers, call_args)
    except (PayloadError, ValueError) as e:
        return Failure(f"invalid arguments for task {ctx.name!r}: {e}", "PayloadError", False)
    set_context(ctx)
    # Its header is the only way to a soft limit: no lookup for an attempt without headers.
    soft = _SoftLimit.of(ctx) if ctx.headers else None
    try:
        try:
            # Started inside the try: a limit that passes before the handler even begins (a
            # loaded machine, a limit of 1 ms) fails the attempt like any other time it passes,
            # instead of escaping to the worker's own code.
            if soft is not None:
                soft.begin()
            value = task.run(call_args, call_kwargs)
        finally:
            if soft is not None:
                soft.stop()
    except Reject as e:
        return Failure(str(e) or "rejected", _kind(e), retryable=False)
    except Retry as e:
        # None: the task's backoff (0 on the wire); a countdown, even 0, is at least 1 ms.
        delay = 0 if e.countdown is None else max(1, math.ceil(e.countdown * 1000))
        return Failure(str(e), _kind(e), retryable=True, retry_delay_ms=delay)
    except Exception as e:
        log.warning(
            "task failed: task=%s id=%d attempt=%d", ctx.name, ctx.id, ctx.attempt, exc_info=True
        )
        return Failure(str(e) or repr(e), _kind(e))
    finally:
        set_context(None)
    if value is None:
        return NULL_SUCCESS
    try:
        return Success(payload.dumps(value))
    except PayloadError as e:
        return Failure(
            f"could not encode the result of task {ctx.name!r}: {e}",
            "PayloadError",
            retryable=False,
        )


def _kind(e: BaseException) -> str:
    return type(e).__name__


def _raise_in(thread_id: int, exc: Optional[type[BaseException]]) -> None:
    """Have thread ``thread_id`` raise ``exc`` at its next bytecode (``None``: forget one
    asked for and not raised yet)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc is not None else None
    )


class _SoftLimit:
    """Raises :class:`SoftTimeLimitExceeded` in the thread running an attempt when its soft
    time limit passes (a timer thread asks the interpreter to, with
    ``PyThreadState_SetAsyncExc``), unless the attempt ended first. In a process pool it runs
    in the child process, around the handler there, alike."""

    __slots__ = ("_fired", "_lock", "_running", "_thread", "_timer")

    def __init__(self, seconds: float) -> None:
        self._thread = threading.get_ident()
        self._lock = threading.Lock()
        self._running = True
        self._fired = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    @classmethod
    def of(cls, ctx: TaskContext) -> Optional[_SoftLimit]:
        """The attempt's soft limit, not started yet (``None`` without one)."""
        ms = ctx.soft_time_limit_ms
        if ms is None:
            return None
        return cls(ms / 1000)

    def begin(self) -> None:
        """Start counting; from now on the exception may come (even before this returns)."""
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self._running:
                self._fired = True
                _raise_in(self._thread, SoftTimeLimitExceeded)

    def stop(self) -> None:
        """The handler returned or raised: no exception from now on (one asked for just now and
        not raised yet is withdrawn, so it cannot hit the worker's own code)."""
        while True:
            try:
                with self._lock:
                    self._running = False
                    self._timer.cancel()
                    if self._fired:
                        _raise_in(self._thread, None)
                return
            except SoftTimeLimitExceeded:
                # It arrived while stopping: spent; make sure nothing else is pending.
                continue
