"""[`Task`] (what ``@app.task`` makes), [`Signature`] (a call not sent yet, for batches) and
[`TaskContext`] (what a running attempt knows about itself: ``task.request``)."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional

from flotilla.client import new_idempotency_key
from flotilla.errors import Retry
from flotilla.spec import SOFT_TIME_LIMIT_HEADER, Eta, SubmitOptions

if TYPE_CHECKING:
    from flotilla.app import Flotilla
    from flotilla.result import AsyncResult


_ABORTED_LOCK = threading.Lock()


#: The queue of a Python task that names none. Not the nodes' ``default`` queue: a node's own
#: pool serves ``default`` with the node's built-in tasks, and a pool takes every task of the
#: queues it serves, so a Python task there could go to a pool that cannot run it (leases are
#: by queue; a pool that runs only some names of a queue is not supported yet).
DEFAULT_QUEUE = "python"


@dataclass
class TaskContext:
    """The attempt a worker is running: ``task.request`` inside a handler."""

    id: int
    attempt: int
    name: str
    queue: str
    retries_left: int
    headers: dict[str, str] = field(default_factory=dict)
    time_limit_ms: int = 0
    # Made on first use: few handlers look at it, and an Event (a Condition and a Lock) per
    # attempt is a noticeable part of a short task's cost in the worker.
    _aborted: Optional[threading.Event] = field(default=None, repr=False, compare=False)

    @property
    def aborted(self) -> threading.Event:
        """Set when the node aborted the attempt (lease lost, revoked, time limit): the worker
        discards its result, so a long handler may check it and stop early."""
        event = self._aborted
        if event is None:
            with _ABORTED_LOCK:  # the worker's loop and the handler may both be first
                if self._aborted is None:
                    self._aborted = threading.Event()
                event = self._aborted
        return event

    @property
    def soft_time_limit_ms(self) -> Optional[int]:
        """The attempt's soft time limit in ms (its header), if it has one."""
        value = self.headers.get(SOFT_TIME_LIMIT_HEADER)
        if value is None or not value.strip().isdigit():
            return None
        return int(value)

    @property
    def retries(self) -> int:
        """Retries done before this attempt (Celery's ``request.retries``)."""
        return self.attempt - 1


_current = threading.local()


def current_context() -> Optional[TaskContext]:
    """The attempt running on this thread (or process), if any."""
    ctx: Optional[TaskContext] = getattr(_current, "ctx", None)
    return ctx


def set_context(ctx: Optional[TaskContext]) -> None:
    _current.ctx = ctx


class Task:
    """A task function registered on an app. Calling it runs it here; :meth:`delay` and
    :meth:`apply_async` submit it to the cluster."""

    def __init__(
        self,
        app: Flotilla,
        fn: Callable[..., Any],
        name: str,
        options: SubmitOptions,
        bind: bool,
    ) -> None:
        self.app = app
        self.fn = fn
        self.name = name
        self.options = options
        self.bind = bind
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __repr__(self) -> str:
        return f"<@task {self.name}>"

    @property
    def queue(self) -> str:
        """The queue the task is submitted to unless a call names another: its own, or
        :data:`DEFAULT_QUEUE`."""
        return self.options.queue or DEFAULT_QUEUE

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.bind:
            return self.fn(self, *args, **kwargs)
        return self.fn(*args, **kwargs)

    def run(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        """Runs the handler with decoded arguments (what a worker does)."""
        return self(*args, **kwargs)

    @property
    def request(self) -> TaskContext:
        """The running attempt (only inside a handler run by a worker)."""
        ctx = current_context()
        if ctx is None:
            raise RuntimeError(f"task {self.name} is not running in a worker")
        return ctx

    def retry(
        self, countdown: Optional[float] = None, exc: Optional[BaseException] = None
    ) -> Retry:
        """Raise (``raise self.retry(countdown=5)``) to fail this attempt and retry after
        ``countdown`` seconds; counts against ``max_retries``."""
        message = f"{type(exc).__name__}: {exc}" if exc is not None else "retry requested"
        raise Retry(message, countdown=countdown) from exc

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """This call, not sent yet (for :meth:`Flotilla.submit_many`, or a canvas: in a
        chain it gets the previous result as its first argument)."""
        return Signature(self.app, self.name, tuple(args), dict(kwargs), self.options)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        """An immutable signature: in a canvas it does not get its parents' results."""
        return Signature(self.app, self.name, tuple(args), dict(kwargs), self.options, True)

    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult:
        """Submits ``self(*args, **kwargs)`` with the task's options."""
        return self.apply_async(args, kwargs)

    def apply_async(
        self,
        args: Optional[Sequence[Any]] = None,
        kwargs: Optional[Mapping[str, Any]] = None,
        *,
        countdown: Optional[float] = None,
        eta: Optional[Eta] = None,
        priority: Optional[int] = None,
        queue: Optional[str] = None,
        idempotency_key: Optional[str] = None,
        concurrency_key: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
        max_retries: Optional[int] = None,
        time_limit: Optional[float] = None,
        soft_time_limit: Optional[float] = None,
        retry_backoff: Optional[float] = None,
        result_ttl: Optional[float] = None,
    ) -> AsyncResult:
        """Submits the task with these options over the task's own (see ``SubmitOptions``)."""
        call = SubmitOptions(
            queue=queue,
            priority=priority,
            countdown=countdown,
            eta=eta,
            max_retries=max_retries,
            retry_backoff=retry_backoff,
            time_limit=time_limit,
            soft_time_limit=soft_time_limit,
            result_ttl=result_ttl,
            idempotency_key=idempotency_key,
            concurrency_key=concurrency_key,
            headers=dict(headers or {}),
        )
        return Signature(
            self.app, self.name, tuple(args or ()), dict(kwargs or {}), call.over(self.options)
        ).apply_async()


@dataclass(frozen=True)
class Signature:
    """One call of a task by name, with its options: what a batch is made of."""

    app: Flotilla
    name: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    options: SubmitOptions = field(default_factory=SubmitOptions)
    #: In a canvas, the parents' results are not passed to it (Celery's ``.si()``).
    immutable: bool = False

    def __post_init__(self) -> None:
        # The key is fixed when the call is made, not when it is sent: submitting the same
        # signature again (after an error whose reply was lost) never makes a second task.
        if self.options.idempotency_key is None:
            keyed = self.options.keyed(new_idempotency_key())
            object.__setattr__(self, "options", keyed)

    def set(self, **options: Any) -> Signature:
        """The same call with these options (SubmitOptions fields) over its own."""
        if all(v is None for k, v in options.items() if k != "headers") and not options.get(
            "headers"
        ):
            return self  # nothing to change (``send_task`` passes every option, most unset)
        return Signature(
            self.app,
            self.name,
            self.args,
            self.kwargs,
            SubmitOptions(**options).over(self.options),
            self.immutable,
        )

    def apply_async(self) -> AsyncResult:
        return self.app.submit_many([self])[0]

    def delay(self) -> AsyncResult:
        return self.apply_async()

    def __or__(self, other: Any) -> Any:
        """``a.s() | b.s()``: a chain (``flotilla.canvas``)."""
        from flotilla.canvas import chain

        return chain(self, other)
