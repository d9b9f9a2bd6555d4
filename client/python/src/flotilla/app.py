"""[`Flotilla`]: the application object, like Celery's: it holds the cluster connection and the
tasks defined with ``@app.task``, submits them (``send_task``, ``submit_many``) and is what a
worker runs (``flotilla-worker -A module``)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Callable, Optional, Union, overload

from flotilla.client import Client, Nodes
from flotilla.events import Event
from flotilla.info import ScheduleAdded, Workers
from flotilla.result import AsyncResult
from flotilla.retry import RetryPolicy
from flotilla.schedule import schedule_request
from flotilla.spec import Eta, SubmitOptions, build_spec
from flotilla.task import Signature, Task

_current_app: Optional[Flotilla] = None
_current_lock = threading.Lock()


def current_app() -> Flotilla:
    """The app created last: the default of ``AsyncResult(id)``."""
    if _current_app is None:
        raise RuntimeError("no Flotilla app created yet")
    return _current_app


class Flotilla:
    """A Flotilla application on the cluster at ``nodes`` (``"host:port"``, a comma-separated
    list, or a list of them); calls fail over between the nodes. ``tls_ca``: see ``Client``.
    ``token`` (default: ``$FLOTILLA_TOKEN``) is presented on every call: a submit token for an
    app that submits, a worker token for a worker."""

    def __init__(
        self,
        nodes: Nodes = "127.0.0.1:7000",
        *,
        retry: Optional[RetryPolicy] = None,
        request_timeout: float = 10.0,
        max_batch_size: int = 1000,
        tls_ca: Optional[str] = None,
        token: Optional[str] = None,
    ) -> None:
        global _current_app
        self.nodes = nodes
        self.client = Client(
            nodes,
            retry=retry,
            request_timeout=request_timeout,
            max_batch_size=max_batch_size,
            tls_ca=tls_ca,
            token=token,
        )
        #: Tasks defined on this app, by name.
        self.tasks: dict[str, Task] = {}
        with _current_lock:
            _current_app = self

    def __repr__(self) -> str:
        return f"<Flotilla {self.client.addrs} tasks={sorted(self.tasks)}>"

    def close(self) -> None:
        self.client.close()

    @overload
    def task(self, fn: Callable[..., Any], /) -> Task: ...

    @overload
    def task(
        self,
        /,
        *,
        name: Optional[str] = None,
        queue: Optional[str] = None,
        max_retries: Optional[int] = None,
        time_limit: Optional[float] = None,
        soft_time_limit: Optional[float] = None,
        retry_backoff: Optional[float] = None,
        priority: Optional[int] = None,
        result_ttl: Optional[float] = None,
        bind: bool = False,
    ) -> Callable[[Callable[..., Any]], Task]: ...

    def task(
        self,
        fn: Optional[Callable[..., Any]] = None,
        /,
        *,
        name: Optional[str] = None,
        queue: Optional[str] = None,
        max_retries: Optional[int] = None,
        time_limit: Optional[float] = None,
        soft_time_limit: Optional[float] = None,
        retry_backoff: Optional[float] = None,
        priority: Optional[int] = None,
        result_ttl: Optional[float] = None,
        bind: bool = False,
    ) -> Union[Task, Callable[[Callable[..., Any]], Task]]:
        """Defines a task: ``@app.task`` or ``@app.task(name=..., queue=..., ...)``.

        The name defaults to ``module.function`` (Celery's rule). The options are the defaults
        of every submit of it (seconds for durations). ``bind=True`` passes the task itself as
        the first argument, for ``self.request`` and ``self.retry()``.
        """
        options = SubmitOptions(
            queue=queue,
            priority=priority,
            max_retries=max_retries,
            time_limit=time_limit,
            soft_time_limit=soft_time_limit,
            retry_backoff=retry_backoff,
            result_ttl=result_ttl,
        )

        def define(f: Callable[..., Any]) -> Task:
            task_name = name or f"{f.__module__}.{f.__qualname__}"
            t = Task(self, f, task_name, options, bind)
            self.tasks[task_name] = t
            return t

        return define(fn) if fn is not None else define

    def signature(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Optional[Mapping[str, Any]] = None,
        **options: Any,
    ) -> Signature:
        """A call of the task ``name`` (defined here or not), with SubmitOptions fields."""
        base = self.tasks[name].options if name in self.tasks else SubmitOptions()
        return Signature(self, name, tuple(args), dict(kwargs or {}), base).set(**options)

    def events(
        self,
        *,
        queues: Iterable[str] = (),
        task_names: Iterable[str] = (),
        kinds: Iterable[str] = (),
        from_position: Optional[tuple[int, int]] = None,
    ) -> Iterator[Event]:
        """The cluster's events as they happen (``flotilla events``): see
        :mod:`flotilla.events`. ``kinds`` names them (``"dead"``, ``"started"``...)."""
        return self.client.events(
            queues=queues, task_names=task_names, kinds=kinds, from_position=from_position
        )

    def workers(self) -> Workers:
        """Every pool and remote worker of the cluster (``flotilla workers``): name, node,
        kind, queues, concurrency, busy, leased, and how long ago it connected and was seen."""
        return self.client.workers()

    def send_task(
        self,
        name: str,
        args: Sequence[Any] = (),
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
        """Submits the task ``name``, which need not be defined in this process (a task of
        another service, a Rust built-in such as ``echo`` or ``sleep``)."""
        return self.signature(
            name,
            args,
            kwargs,
            countdown=countdown,
            eta=eta,
            priority=priority,
            queue=queue,
            idempotency_key=idempotency_key,
            concurrency_key=concurrency_key,
            headers=dict(headers or {}),
            max_retries=max_retries,
            time_limit=time_limit,
            soft_time_limit=soft_time_limit,
            retry_backoff=retry_backoff,
            result_ttl=result_ttl,
        ).apply_async()

    def submit_many(self, calls: Iterable[Signature]) -> list[AsyncResult]:
        """Submits many calls in batches (one replicated log entry each); results in order.

        Safe to repeat after an error: every call's idempotency key is fixed before the first
        batch is sent, so the calls already accepted come back as duplicates.
        """
        specs = [build_spec(c.name, c.args, c.kwargs, c.options) for c in calls]
        return [AsyncResult(s.id, self, duplicate=s.duplicate) for s in self.client.submit(specs)]

    def schedule(
        self,
        name: str,
        task: Union[Task, str],
        *,
        cron: Optional[str] = None,
        tz: str = "",
        every: Optional[float] = None,
        args: Sequence[Any] = (),
        kwargs: Optional[Mapping[str, Any]] = None,
        catch_up: str = "skip",
        grace: Optional[float] = None,
        replace: bool = True,
        **options: Any,
    ) -> ScheduleAdded:
        """Has the cluster call ``task`` (a task of this app, or a task name) with ``args`` and
        ``kwargs`` at every time of ``cron`` in IANA zone ``tz`` (empty: UTC), or every
        ``every`` seconds: like an entry of Celery's ``beat_schedule``, kept and fired by the
        cluster (needs an admin token). ``options`` are SubmitOptions fields (``queue``,
        ``max_retries``, ...; not ``eta``, ``countdown`` nor ``idempotency_key``).

        Meant to run at every start of the application: the same schedule again changes
        nothing; a changed one replaces the old (``replace=False`` refuses instead)::

            app.schedule("nightly-report", build_report, cron="30 2 * * *", tz="Europe/Berlin")
            app.schedule("heartbeat", "noop", every=10)
        """
        task_name = task if isinstance(task, str) else task.name
        sig = self.signature(task_name, args, kwargs, **options)
        spec = build_spec(sig.name, sig.args, sig.kwargs, sig.options)
        request = schedule_request(
            name,
            spec,
            cron=cron,
            tz=tz,
            every=every,
            catch_up=catch_up,
            grace=grace,
            replace=replace,
        )
        return self.client.add_schedule(request)

    def AsyncResult(self, task_id: int) -> AsyncResult:  # noqa: N802 (Celery's name)
        """A handle on the task ``task_id`` of this app's cluster."""
        return AsyncResult(task_id, self)
