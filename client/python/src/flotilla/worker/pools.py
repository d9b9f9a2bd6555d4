"""Where attempts run: a thread pool (default; I/O-bound tasks, no start-up cost) or a process
pool (``--pool processes``: CPU-bound tasks, one interpreter each, so no GIL between them).

Both take an attempt with a token and call ``report(token, outcome)`` exactly once when it
ends, from any thread.
Neither can stop a handler that is running: an aborted attempt runs to its end and its result
is dropped (``TaskContext.aborted`` lets a thread handler notice and stop early).
"""

from __future__ import annotations

import importlib
import multiprocessing
import queue
import threading
from collections.abc import Mapping
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import fields
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol

from flotilla.task import Task, TaskContext
from flotilla.worker.outcome import Failure, Outcome, execute

if TYPE_CHECKING:
    from flotilla.app import Flotilla

#: Called once per attempt, from any thread, with the attempt's token and its outcome.
Report = Callable[[Any, Outcome], None]


def load_app(ref: str) -> Flotilla:
    """The app of ``-A``: ``module`` (its ``app``, or its only Flotilla app) or ``module:attr``."""
    from flotilla.app import Flotilla

    module_name, _, attr = ref.partition(":")
    module = importlib.import_module(module_name)
    if attr:
        found = getattr(module, attr)
        if not isinstance(found, Flotilla):
            raise TypeError(f"{ref} is a {type(found).__name__}, not a Flotilla app")
        return found
    if isinstance(getattr(module, "app", None), Flotilla):
        app: Flotilla = module.app
        return app
    apps = [v for v in vars(module).values() if isinstance(v, Flotilla)]
    if len(apps) != 1:
        raise LookupError(
            f"module {module_name} has {len(apps)} Flotilla apps: name one as {ref}:attr"
        )
    return apps[0]


class Pool(Protocol):
    """Runs attempts and reports each one's outcome once, with the token it was given."""

    def submit(self, token: Any, ctx: TaskContext, args: bytes) -> None: ...

    def shutdown(self) -> None:
        """Stops taking attempts; does not wait for the ones running (they may be abandoned)."""


class ThreadPool:
    """``concurrency`` threads taking attempts from one queue. Not an Executor: no Future,
    lock or callback per attempt, which a worker running thousands of short tasks a second
    feels (see scripts/bench_worker.py)."""

    def __init__(self, tasks: Mapping[str, Task], concurrency: int, report: Report) -> None:
        self._tasks = tasks
        self._report = report
        self._queue: queue.SimpleQueue[Optional[tuple[Any, TaskContext, bytes]]] = (
            queue.SimpleQueue()
        )
        self._threads = [
            threading.Thread(target=self._work, name=f"flotilla-task-{i}", daemon=True)
            for i in range(concurrency)
        ]
        for t in self._threads:
            t.start()

    def submit(self, token: Any, ctx: TaskContext, args: bytes) -> None:
        self._queue.put((token, ctx, args))

    def shutdown(self) -> None:
        for _ in self._threads:
            self._queue.put(None)

    def _work(self) -> None:
        tasks, report, get = self._tasks, self._report, self._queue.get
        while (item := get()) is not None:
            token, ctx, args = item
            try:
                outcome: Outcome = execute(tasks, ctx, args)
            except BaseException as e:  # SystemExit from a handler, ...
                outcome = Failure(str(e) or repr(e), type(e).__name__)
            report(token, outcome)


class ExecutorPool:
    """Attempts on an Executor (the process pool)."""

    def __init__(
        self,
        executor: Executor,
        run: Callable[[TaskContext, bytes], Future[Outcome]],
        report: Report,
    ):
        self._executor = executor
        self._run = run
        self._report = report

    def submit(self, token: Any, ctx: TaskContext, args: bytes) -> None:
        def finished(f: Future[Outcome]) -> None:
            try:
                outcome = f.result()
            except BaseException as e:  # a handler that killed its process, SystemExit, ...
                outcome = Failure(str(e) or repr(e), type(e).__name__)
            self._report(token, outcome)

        try:
            future = self._run(ctx, args)
        except Exception as e:  # a broken pool (a child died), arguments that do not pickle
            self._report(token, Failure(f"could not start the attempt: {e}", type(e).__name__))
            return
        future.add_done_callback(finished)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def thread_pool(tasks: Mapping[str, Task], concurrency: int, report: Report) -> Pool:
    return ThreadPool(tasks, concurrency, report)


def process_pool(app_ref: str, concurrency: int, report: Report) -> Pool:
    # Spawned, not forked: the parent runs gRPC threads, which do not survive a fork.
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(concurrency)  # handed over at spawn: it cannot be pickled later
    executor = ProcessPoolExecutor(
        concurrency, mp_context=context, initializer=_child_init, initargs=(app_ref, barrier)
    )
    # Start every child now, before this process runs gRPC: a fork (even one followed by exec)
    # while gRPC's threads run can kill the child (seen on CPython 3.9, whose subprocess fork
    # runs gRPC's at-fork handlers). Each warm-up call waits until all have started, so each
    # runs in its own process; an app the children cannot import fails here, at start.
    for warm_up in [executor.submit(_child_ready) for _ in range(concurrency)]:
        warm_up.result(timeout=STARTUP_TIMEOUT_S)

    def run(ctx: TaskContext, args: bytes) -> Future[Outcome]:
        # Not `asdict`: it deep-copies, and the abort Event does not cross processes anyway.
        picklable = {f.name: getattr(ctx, f.name) for f in fields(ctx) if f.name != "_aborted"}
        return executor.submit(_child_run, picklable, args)

    return ExecutorPool(executor, run, report)


#: How long the process pool's children get to start and import the app.
STARTUP_TIMEOUT_S = 120.0

_child_tasks: Optional[Mapping[str, Task]] = None
_child_barrier: Any = None


def _child_init(app_ref: str, barrier: Any) -> None:
    global _child_tasks, _child_barrier
    _child_tasks = load_app(app_ref).tasks
    _child_barrier = barrier


def _child_ready() -> None:
    _child_barrier.wait(STARTUP_TIMEOUT_S)


def _child_run(fields: dict[str, Any], args: bytes) -> Outcome:
    assert _child_tasks is not None, "process pool child without its app"
    return execute(_child_tasks, TaskContext(**fields), args)
