"""[`Worker`]: the SDK's worker: ``SessionShell`` (``shell.py``: the gRPC stream, the loop that
owns the core, reconnects) with a pool of threads or processes running the app's handlers.
The pool's threads and signal handlers only put events on the loop's queue.
"""

from __future__ import annotations

import logging
import os
import platform
import socket
from collections import deque
from collections.abc import Sequence
from typing import Any, Optional

from flotilla import __version__
from flotilla.app import Flotilla
from flotilla.client import Nodes, parse_nodes
from flotilla.task import TaskContext
from flotilla.v1 import worker_pb2 as wpb
from flotilla.worker.core import Abandon, Action, Exit, Identity, SessionCore
from flotilla.worker.outcome import Outcome
from flotilla.worker.pools import Pool, process_pool, thread_pool
from flotilla.worker.shell import Event, SessionShell

log = logging.getLogger("flotilla.worker")


class Worker(SessionShell):
    """Runs ``app``'s tasks for the cluster at ``nodes`` (default: the app's).

    ``concurrency`` attempts run at once. ``prefetch``: ``None`` (``auto``, the default) lets
    the node lease ahead for this worker by its rule (as many as the worker finishes in one
    commit and stream round trip; none for long tasks) and send those tasks down, to wait here
    for a free slot (the worker says it queues: ``Hello.queue_ahead``); a number holds exactly
    that many more here instead, whatever the tasks' length (0: none at all).
    """

    def __init__(
        self,
        app: Flotilla,
        *,
        nodes: Optional[Nodes] = None,
        queues: Optional[Sequence[str]] = None,
        concurrency: int = 8,
        prefetch: Optional[int] = None,
        pool: str = "threads",
        app_ref: Optional[str] = None,
        name: Optional[str] = None,
    ) -> None:
        self.app = app
        # Declared on the queue the worker serves them from: a submit that names no queue goes
        # there (the node reads a name's default queue from the catalogue).
        tasks = [(t.name, t.queue) for t in app.tasks.values()]
        if not tasks:
            raise ValueError("the app defines no task")
        queues = list(queues or dict.fromkeys(t.queue for t in app.tasks.values()))
        self.identity = Identity(
            name=name or f"{socket.gethostname()}-{os.getpid()}@{queues[0]}",
            queues=queues,
            tasks=tasks,
            concurrency=concurrency,
            prefetch=prefetch,
            agent=f"flotilla-python/{__version__} "
            f"{platform.python_implementation()}/{platform.python_version()}",
        )
        # The app's client's TLS (its CA) and token for the worker's nodes too.
        self._init_shell(
            parse_nodes(nodes if nodes is not None else app.nodes),
            SessionCore(self.identity),
            app.client.tls_root,
            app.client.token,
        )
        #: Outcomes reported by the pool and not handled yet (see :meth:`_report`).
        self._done: deque[tuple[Any, Outcome]] = deque()
        self._done_signalled = False
        if pool == "threads":
            self.pool: Pool = thread_pool(app.tasks, concurrency, self._report)
        elif pool == "processes":
            if app_ref is None:
                raise ValueError("a process pool needs the app's import path (app_ref)")
            self.pool = process_pool(app_ref, concurrency, self._report)
        else:
            raise ValueError(f"unknown pool {pool!r}: threads or processes")
        self._contexts: dict[int, TaskContext] = {}

    # ---- control, from any thread -------------------------------------------------------

    def drain(self) -> None:
        """Finish and answer what runs, take nothing more, then :meth:`run` returns 0."""
        self._events.put(("drain",))

    def stop(self) -> None:
        """Return from :meth:`run` now (code 1); the node releases what the worker held."""
        self._events.put(("stop",))

    def _report(self, token: Any, outcome: Outcome) -> None:
        # From a pool thread: `token` is (run, lease). Outcomes wait in `_done`; only the first
        # since the loop last emptied it puts an event, so the loop wakes once for every
        # outcome that ended meanwhile, not once each. (`deque.append` and the flag's test and
        # set run under the GIL; the loop clears the flag *before* emptying the deque, so an
        # outcome appended after it looked is either emptied now or signalled again.)
        self._done.append((token, outcome))
        if not self._done_signalled:
            self._done_signalled = True
            self._events.put(("done",))

    # ---- the loop ----------------------------------------------------------------------

    def run(self) -> int:
        """Runs until drained (0) or stopped (1)."""
        log.info(
            "worker starting: name=%s queues=%s nodes=%s",
            self.identity.name,
            ",".join(self.identity.queues),
            ",".join(self.addrs),
        )
        return self._loop()

    def _on_event(self, event: Event) -> list[Action]:
        kind = event[0]
        if kind == "done":
            self._done_signalled = False
            actions: list[Action] = []
            done, contexts, on_done = self._done, self._contexts, self.core.on_done
            while done:
                (run, lease), outcome = done.popleft()
                contexts.pop(run, None)
                actions += on_done(run, lease, outcome)
            return actions
        if kind == "drain":
            return self.core.drain()
        if kind == "stop":
            return [Exit(1)]
        return []

    def _start(self, run: int, task: wpb.Task) -> None:
        ctx = TaskContext(
            id=task.task_id,
            attempt=task.attempt,
            name=task.name,
            queue=task.queue,
            retries_left=task.retries_left,
            # Most tasks have none: copying an empty protobuf map costs a few µs per task.
            headers=dict(task.headers) if task.headers else {},
            time_limit_ms=task.time_limit_ms,
        )
        self._contexts[run] = ctx
        self.pool.submit((run, (task.task_id, task.attempt)), ctx, task.args)

    def _abandon(self, action: Abandon) -> None:
        ctx = self._contexts.get(action.run)
        if ctx is not None:
            ctx.aborted.set()

    def _close(self) -> None:
        self.pool.shutdown()
