"""[`SessionShell`]: what every client of the worker protocol does around ``SessionCore``, shared
by the SDK's worker (``runner.Worker``) and the Celery consumer (``flotilla.celery.session``):
the gRPC stream (``_Stream``: a request queue feeding the call, a thread reading it), the loop
that owns the core, and reconnects with backoff across the nodes. Subclasses say how a task is
started (``_start``) and abandoned (``_abandon``), handle their own events (``_on_event``) and
close what they own (``_close``).

One thread (the caller of :meth:`SessionShell._loop`) owns the core; the stream's reader and
everything else only put events on its queue. Batching: the loop handles every event waiting
in the queue (carrying out each one's actions at once, so attempts start without delay), and
only then flushes the core: the results of everything that ended meanwhile leave in one
``Results`` message. No timer: an idle worker answers at once, a busy one in batches as large
as its backlog.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, Optional

import grpc

from flotilla import _rpc
from flotilla.retry import Backoff, RetryPolicy
from flotilla.v1 import worker_pb2 as wpb
from flotilla.worker.core import (
    Abandon,
    Action,
    CloseSend,
    Exit,
    Reconnect,
    Run,
    Send,
    SessionCore,
)

log = logging.getLogger("flotilla.worker")

#: Reconnect waits: from 100 ms doubling to 5 s, for ever (a worker outlives node restarts).
RECONNECT = RetryPolicy(max_elapsed=float("inf"), initial_backoff=0.1, max_backoff=5.0)
TICK_S = 0.25
#: Most events handled before a flush, so a flood of events cannot hold results back.
MAX_EVENTS_PER_FLUSH = 1000
#: After Drained, how long the node gets to end the call before the worker cancels it.
CLOSE_WAIT_S = 1.0

Event = tuple[Any, ...]


class _Stream:
    """One session's gRPC call: a request queue feeding the stream, a thread reading it."""

    def __init__(self, stub: _rpc.WorkerStub, conn: int, events: queue.SimpleQueue[Event]):
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


class SessionShell:
    """The stream, loop and reconnects around a :class:`SessionCore`."""

    addrs: list[str]
    core: SessionCore

    def _init_shell(
        self,
        addrs: Sequence[str],
        core: SessionCore,
        tls_root: Optional[bytes] = None,
        token: Optional[str] = None,
    ) -> None:
        self.addrs = list(addrs)
        self.core = core
        self._tls_root = tls_root
        self._token = token
        self._events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._channels: dict[int, grpc.Channel] = {}
        self._stream: Optional[_Stream] = None
        self._conn = 0
        self._node = 0
        self._backoff = Backoff(RECONNECT, time.monotonic())
        self._reconnect_at: Optional[float] = None

    # ---- what a subclass provides --------------------------------------------------------

    def _on_event(self, event: Event) -> list[Action]:
        """An event of the subclass's own (not the stream's)."""
        raise NotImplementedError

    def _start(self, run: int, task: wpb.Task) -> None:
        """Start attempt ``run`` of ``task``; its outcome comes back as an event."""
        raise NotImplementedError

    def _abandon(self, action: Abandon) -> None:
        """The node took ``action.lease`` back: the attempt's result will be dropped."""
        raise NotImplementedError

    def _close(self) -> None:
        """The loop is over: release what the subclass holds (after :meth:`_close_stream`)."""
        raise NotImplementedError

    # ---- the loop ----------------------------------------------------------------------

    def _loop(self) -> int:
        """Run until the core exits; its exit code."""
        self._open()
        events, core = self._events, self.core
        try:
            while True:
                try:
                    event: Optional[Event] = events.get(timeout=TICK_S)
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
            self._close_stream()
            self._close()

    def _handle(self, event: Event) -> list[Action]:
        kind = event[0]
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
        return self._on_event(event)

    def _perform(self, actions: list[Action]) -> Optional[int]:
        for a in actions:
            if type(a) is Run:
                self._start(a.run, a.task)
            elif isinstance(a, Send):
                if self._stream is not None:
                    self._stream.send(a.message)
            elif isinstance(a, Abandon):
                self._abandon(a)
            elif isinstance(a, CloseSend):
                if self._stream is not None:
                    self._stream.close_send()
            elif isinstance(a, Reconnect):
                self._schedule_reconnect(a.reason)
            elif isinstance(a, Exit):
                return a.code
        return None

    def _open(self) -> None:
        self._reconnect_at = None
        self._conn += 1
        addr = self.addrs[self._node]
        channel = self._channels.get(self._node)
        if channel is None:
            channel = _rpc.open_channel(addr, self._tls_root, self._token)
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

    def _close_stream(self) -> None:
        if self._stream is not None:
            if self.core.exited:
                self._await_end(CLOSE_WAIT_S)
            self._stream.cancel()
            self._stream = None
        for c in self._channels.values():
            c.close()
