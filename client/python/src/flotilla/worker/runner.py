"""[`Worker`]: the shell around ``SessionCore``: the gRPC stream, the pool, the clock, the
reconnect backoff. One thread (the caller of :meth:`Worker.run`) owns the core; the stream's
reader thread, the pool's threads and signal handlers only put events on its queue.

Batching: the loop handles every event waiting in the queue (carrying out each one's actions
at once, so attempts start without delay), and only then flushes the core: the results of
everything that ended meanwhile leave in one ``Results`` message. No timer: an idle worker
answers at once, a busy one in batches as large as its backlog.
"""

from __future__ import annotations

import logging
import os
import platform
import queue
import random
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, Optional

import grpc

from flotilla import __version__, _rpc
from flotilla.app import Flotilla
from flotilla.client import Nodes, parse_nodes
from flotilla.retry import Backoff, RetryPolicy
from flotilla.task import TaskContext
from flotilla.v1 import worker_pb2 as wpb
from flotilla.worker.core import (
    Abandon,
    Action,
    CloseSend,
    Exit,
    Identity,
    Reconnect,
    Run,
    Send,
    SessionCore,
)
from flotilla.worker.outcome import Outcome
from flotilla.worker.pools import Pool, process_pool, thread_pool

log = logging.getLogger("flotilla.worker")

#: Reconnect waits: from 100 ms doubling to 5 s, for ever (a worker outlives node restarts).
RECONNECT = RetryPolicy(max_elapsed=float("inf"), initial_backoff=0.1, max_backoff=5.0)
TICK_S = 0.25
#: Most events handled before a flush, so a flood of events cannot hold results back.
MAX_EVENTS_PER_FLUSH = 1000
#: After Drained, how long the node gets to end the call before the worker cancels it.
CLOSE_WAIT_S = 1.0

_Event = tuple[Any, ...]


class _Stream:
    """One session's gRPC call: a request queue feeding the stream, a thread reading it."""

    def __init__(self, stub: _rpc.WorkerStub, conn: int, events: queue.SimpleQueue[_Event]):
        self.conn = conn
        self._outbox: queue.SimpleQueue[Optional[wpb.WorkerMessage]] = queue.SimpleQueue()
        self._events = events
        self._call = stub.session(self._requests())
        threading.Thread(target=self._read, name=f"flotilla-stream-{conn}", daemon=True).start()

    def _requests(self) -> Iterator[wpb.WorkerMessage]:
        while (m := self._outbox.get()) is not None:
            yield m

    def _read(self) -> None:
        try:
            for m in self._call:
                self._events.put(("msg", self.conn, m))
            self._events.put(("end", self.conn, "OK", "the node ended the stream"))
        except grpc.RpcError as e:
            code = e.code() if isinstance(e, grpc.Call) else None
            details = (e.details() if isinstance(e, grpc.Call) else None) or str(e)
            self._events.put(("end", self.conn, code.name if code else "UNKNOWN", details))

    def send(self, m: wpb.WorkerMessage) -> None:
        self._outbox.put(m)

    def close_send(self) -> None:
        self._outbox.put(None)

    def cancel(self) -> None:
        self._outbox.put(None)
        self._call.cancel()


class Worker:
    """Runs ``app``'s tasks for the cluster at ``nodes`` (default: the app's).

    ``concurrency`` attempts run at once. ``prefetch``: ``None`` (``auto``, the default) lets
    the node lease ahead for this worker and hold those tasks, by its rule (as many as the
    worker finishes in one commit round trip; none for long tasks); a number holds exactly that
    many more here instead, waiting for a free slot (0: none at all).
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
        self.addrs = parse_nodes(nodes if nodes is not None else app.nodes)
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
        self.core = SessionCore(self.identity)
        self._events: queue.SimpleQueue[_Event] = queue.SimpleQueue()
        if pool == "threads":
            self.pool: Pool = thread_pool(app.tasks, concurrency, self._report)
        elif pool == "processes":
            if app_ref is None:
                raise ValueError("a process pool needs the app's import path (app_ref)")
            self.pool = process_pool(app_ref, concurrency, self._report)
        else:
            raise ValueError(f"unknown pool {pool!r}: threads or processes")
        self._channels: dict[int, grpc.Channel] = {}
        self._stream: Optional[_Stream] = None
        self._conn = 0
        self._node = 0
        self._backoff = Backoff(RECONNECT, time.monotonic())
        self._reconnect_at: Optional[float] = None
        self._contexts: dict[int, TaskContext] = {}

    # ---- control, from any thread -------------------------------------------------------

    def drain(self) -> None:
        """Finish and answer what runs, take nothing more, then :meth:`run` returns 0."""
        self._events.put(("drain",))

    def stop(self) -> None:
        """Return from :meth:`run` now (code 1); the node releases what the worker held."""
        self._events.put(("stop",))

    def _report(self, token: Any, outcome: Outcome) -> None:
        # From a pool thread: `token` is (run, lease).
        self._events.put(("done", token, outcome))

    # ---- the loop ----------------------------------------------------------------------

    def run(self) -> int:
        """Runs until drained (0) or stopped (1)."""
        log.info(
            "worker starting: name=%s queues=%s nodes=%s",
            self.identity.name,
            ",".join(self.identity.queues),
            ",".join(self.addrs),
        )
        self._open()
        events, core = self._events, self.core
        try:
            while True:
                try:
                    event: Optional[_Event] = events.get(timeout=TICK_S)
                except queue.Empty:
                    event = None
                handled = 0
                while event is not None:
                    code = self._perform(self._handle(event))
                    if code is not None:
                        return code
                    handled += 1
                    if handled >= MAX_EVENTS_PER_FLUSH:
                        break
                    try:
                        event = events.get_nowait()
                    except queue.Empty:
                        event = None
                now = time.monotonic()
                code = self._perform(core.flush() + core.on_tick(now))
                if code is not None:
                    return code
                if self._reconnect_at is not None and now >= self._reconnect_at:
                    self._open()
        finally:
            self._close()

    def _handle(self, event: _Event) -> list[Action]:
        kind = event[0]
        if kind == "done":
            (run, lease), outcome = event[1], event[2]
            self._contexts.pop(run, None)
            return self.core.on_done(run, lease, outcome)
        if kind == "msg":
            if event[1] != self._conn:
                return []
            msg: wpb.NodeMessage = event[2]
            now = time.monotonic()
            if msg.WhichOneof("msg") == "welcome":
                self._backoff.reset(now)
            return self.core.on_message(msg, now)
        if kind == "end":
            if event[1] != self._conn:
                return []
            self._stream = None
            return self.core.on_stream_end(str(event[2]), str(event[3]), time.monotonic())
        if kind == "drain":
            return self.core.drain()
        if kind == "stop":
            return [Exit(1)]
        return []

    def _perform(self, actions: list[Action]) -> Optional[int]:
        for a in actions:
            if type(a) is Run:
                self._run(a.run, a.task)
            elif isinstance(a, Send):
                if self._stream is not None:
                    self._stream.send(a.message)
            elif isinstance(a, Abandon):
                ctx = self._contexts.get(a.run)
                if ctx is not None:
                    ctx.aborted.set()
            elif isinstance(a, CloseSend):
                if self._stream is not None:
                    self._stream.close_send()
            elif isinstance(a, Reconnect):
                self._schedule_reconnect(a.reason)
            elif isinstance(a, Exit):
                return a.code
        return None

    def _run(self, run: int, task: wpb.Task) -> None:
        ctx = TaskContext(
            id=task.task_id,
            attempt=task.attempt,
            name=task.name,
            queue=task.queue,
            retries_left=task.retries_left,
            headers=dict(task.headers),
            time_limit_ms=task.time_limit_ms,
        )
        self._contexts[run] = ctx
        self.pool.submit((run, (task.task_id, task.attempt)), ctx, task.args)

    def _open(self) -> None:
        self._reconnect_at = None
        self._conn += 1
        addr = self.addrs[self._node]
        channel = self._channels.get(self._node)
        if channel is None:
            # The app's client's TLS (its CA) and token for the worker's nodes too.
            channel = _rpc.open_channel(addr, self.app.client.tls_root, self.app.client.token)
            self._channels[self._node] = channel
        log.info("connecting: node=%s", addr)
        self._stream = _Stream(_rpc.WorkerStub(channel), self._conn, self._events)
        self._perform(self.core.connect(time.monotonic()))

    def _await_end(self, timeout: float) -> None:
        """Drained: both sides close; let the node end the call itself rather than cancel it
        (a cancel is an error on the node's side)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self._events.get(timeout=left)
            except queue.Empty:
                return
            if event[0] == "end" and event[1] == self._conn:
                return

    def _schedule_reconnect(self, reason: str) -> None:
        if self._stream is not None:
            self._stream.cancel()
            self._stream = None
        self._conn += 1  # events of the old stream are stale from now on
        self._node = (self._node + 1) % len(self.addrs)
        delay = self._backoff.on_failure(time.monotonic(), random.random()) or 0.0
        log.warning("reconnecting: in=%.2fs reason=%s", delay, reason)
        self._reconnect_at = time.monotonic() + delay

    def _close(self) -> None:
        if self._stream is not None:
            if self.core.exited:
                self._await_end(CLOSE_WAIT_S)
            self._stream.cancel()
            self._stream = None
        self.pool.shutdown()
        for c in self._channels.values():
            c.close()
