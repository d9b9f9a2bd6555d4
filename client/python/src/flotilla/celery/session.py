"""The worker session of a consuming ``flotilla://`` channel (in a Celery worker's main process),
and :func:`report`, the one way a task's outcome reaches it (docs/CELERY.md, "Consuming").

:class:`ConsumerSession` is the SDK worker's protocol core (:class:`SessionCore`: Hello,
grants, batched results, acks, pings, resume after a node failure, drain) with Kombu for its
pool: a granted task is *run* by putting its message where the channel delivers it from
(:meth:`ConsumerSession.take`); its outcome comes back through :func:`report`, from whichever
process settled it: a pool process through the inbox (``inbox.py``), the main process itself
(revoked or expired on receipt, a lost pool process, a rejected message, a thread or solo pool)
directly. One thread owns the core; the stream's reader, the inbox and Kombu's threads only put
events on its queue.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, Optional

import grpc

from flotilla import _rpc
from flotilla.celery.inbox import Inbox, send_to_parent
from flotilla.celery.mapping import message_from_task
from flotilla.retry import Backoff
from flotilla.v1 import worker_pb2 as wpb
from flotilla.worker.core import (
    Abandon,
    Action,
    CloseSend,
    Exit,
    Identity,
    Key,
    Reconnect,
    Run,
    Send,
    SessionCore,
)
from flotilla.worker.outcome import Outcome, Released
from flotilla.worker.runner import RECONNECT, TICK_S, _Stream

log = logging.getLogger("flotilla.celery")

#: At process exit, how long a session still answering gets to be told Drained.
EXIT_WAIT_S = 10.0
#: Most events handled before the results of the handled ones are flushed.
MAX_EVENTS_PER_FLUSH = 1000

_Event = tuple[Any, ...]
#: A message ready for Kombu: its lease, queue and the message.
Ready = tuple[Key, str, dict[str, Any]]


class ConsumerSession:
    """One ``WorkerService`` session, fed to one Kombu channel."""

    def __init__(self, addrs: Sequence[str], identity: Identity) -> None:
        self.addrs = list(addrs)
        self.identity = identity
        self.core = SessionCore(identity)
        self._events: queue.SimpleQueue[_Event] = queue.SimpleQueue()
        #: Granted, not handed to Kombu yet, in grant order. Guarded by ``changed``.
        self._ready: deque[Ready] = deque()
        #: Notified when a message is ready or Kombu acks one (its prefetch has room).
        self.changed = threading.Condition()
        #: The run of every lease the core handed out and has not seen answered. Written by
        #: the loop thread only; read anywhere (one dict lookup).
        self._runs: dict[Key, int] = {}
        self._channels: dict[int, grpc.Channel] = {}
        self._stream: Optional[_Stream] = None
        self._conn = 0
        self._node = 0
        self._backoff = Backoff(RECONNECT, time.monotonic())
        self._reconnect_at: Optional[float] = None
        self.finished = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"flotilla-session-{identity.name}", daemon=True
        )

    def start(self) -> None:
        _register(self)
        self._thread.start()

    # ---- from any thread ----------------------------------------------------------------

    def holds(self, lease: Key) -> bool:
        return lease in self._runs

    def report(self, lease: Key, outcome: Outcome) -> None:
        """``lease``'s outcome (the first one counts; later ones are dropped)."""
        self._events.put(("done", lease, outcome))

    def drain(self) -> None:
        """Take nothing more; give back what Kombu has not taken; end once every answer is
        committed (or at once when nothing is held)."""
        self._events.put(("drain",))

    def stop(self) -> None:
        """End now, answering nothing more: the node releases what the session held."""
        self._events.put(("stop",))

    def take(self, queues: Sequence[str], timeout: float, room: Any) -> Optional[Ready]:
        """The next ready message of ``queues`` once ``room()`` (Kombu's prefetch) allows one,
        waiting up to ``timeout`` seconds; ``None`` if none came."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                if self._ready and room():
                    for i, ready in enumerate(self._ready):
                        if ready[1] in queues:
                            del self._ready[i]
                            return ready
                left = deadline - time.monotonic()
                if left <= 0 or self.finished.is_set():
                    return None
                self.changed.wait(left)

    def notify(self) -> None:
        with self.changed:
            self.changed.notify_all()

    # ---- the loop (its own thread) --------------------------------------------------------

    def _loop(self) -> None:
        log.info(
            "flotilla session starting: name=%s queues=%s concurrency=%d nodes=%s",
            self.identity.name,
            ",".join(self.identity.queues),
            self.identity.concurrency,
            ",".join(self.addrs),
        )
        events, core = self._events, self.core
        try:
            self._open()
            while True:
                try:
                    event: Optional[_Event] = events.get(timeout=TICK_S)
                except queue.Empty:
                    event = None
                handled = 0
                while event is not None:
                    if self._perform(self._handle(event)):
                        return
                    handled += 1
                    if handled >= MAX_EVENTS_PER_FLUSH:
                        break
                    try:
                        event = events.get_nowait()
                    except queue.Empty:
                        event = None
                now = time.monotonic()
                if self._perform(core.flush() + core.on_tick(now)):
                    return
                if self._reconnect_at is not None and now >= self._reconnect_at:
                    self._open()
        except Exception:
            log.exception("flotilla session failed: the node releases its tasks")
        finally:
            self._close()

    def _handle(self, event: _Event) -> list[Action]:
        kind = event[0]
        if kind == "done":
            lease, outcome = event[1], event[2]
            run = self._runs.pop(lease, None)
            if run is None:
                return []  # answered already, or never ours
            self._unready(lease)
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
        if kind == "stop":
            return [Exit(1)]
        if kind == "drain":
            actions = self.core.drain()
            with self.changed:
                unstarted, self._ready = list(self._ready), deque()
            for lease, _, _ in unstarted:
                run = self._runs.pop(lease, None)
                if run is not None:
                    actions += self.core.on_done(run, lease, Released())
            return actions
        return []

    def _perform(self, actions: list[Action]) -> bool:
        """Carry ``actions`` out; True when the session is over."""
        for a in actions:
            if type(a) is Run:
                self._run(a.run, a.task)
            elif isinstance(a, Send):
                if self._stream is not None:
                    self._stream.send(a.message)
            elif isinstance(a, Abandon):
                # The node took the lease back (lost, or over its time limit): undelivered, it
                # is dropped; delivered, Celery runs it and its outcome is dropped.
                self._unready(a.lease)
                self._runs.pop(a.lease, None)
            elif isinstance(a, CloseSend):
                if self._stream is not None:
                    self._stream.close_send()
            elif isinstance(a, Reconnect):
                self._schedule_reconnect(a.reason)
            elif isinstance(a, Exit):
                return True
        return False

    def _run(self, run: int, task: wpb.Task) -> None:
        lease = (task.task_id, task.attempt)
        try:
            message = message_from_task(task)
        except ValueError as e:
            # Not a message our transport published (another client submitted to a Celery
            # queue): it can never run here.
            self._events.put(("done", lease, _not_a_message(task, e)))
            self._runs[lease] = run
            return
        self._runs[lease] = run
        with self.changed:
            self._ready.append((lease, task.queue, message))
            self.changed.notify_all()

    def _unready(self, lease: Key) -> None:
        with self.changed:
            for i, ready in enumerate(self._ready):
                if ready[0] == lease:
                    del self._ready[i]
                    return

    def _open(self) -> None:
        self._reconnect_at = None
        self._conn += 1
        addr = self.addrs[self._node]
        channel = self._channels.get(self._node)
        if channel is None:
            channel = _rpc.open_channel(addr, None, None)
            self._channels[self._node] = channel
        log.info("flotilla session connecting: node=%s", addr)
        self._stream = _Stream(_rpc.WorkerStub(channel), self._conn, self._events)
        self._perform(self.core.connect(time.monotonic()))

    def _schedule_reconnect(self, reason: str) -> None:
        if self._stream is not None:
            self._stream.cancel()
            self._stream = None
        self._conn += 1  # events of the old stream are stale from now on
        self._node = (self._node + 1) % len(self.addrs)
        delay = self._backoff.on_failure(time.monotonic(), random.random()) or 0.0
        log.warning("flotilla session reconnecting: in=%.2fs reason=%s", delay, reason)
        self._reconnect_at = time.monotonic() + delay

    def _close(self) -> None:
        if self._stream is not None:
            if self.core.exited:
                self._await_end()
            self._stream.cancel()
            self._stream = None
        for c in self._channels.values():
            c.close()
        _unregister(self)
        self.finished.set()
        self.notify()
        log.info("flotilla session ended: name=%s", self.identity.name)

    def _await_end(self, timeout: float = 1.0) -> None:
        """Drained: let the node end the call rather than cancel it (an error on its side)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self._events.get(timeout=left)
            except queue.Empty:
                return
            if event[0] == "end" and event[1] == self._conn:
                return


def _not_a_message(task: wpb.Task, error: Exception) -> Outcome:
    from flotilla.worker.outcome import Failure

    return Failure(
        f"task {task.task_id} on queue {task.queue!r} is not a Celery message: {error}",
        "UnsupportedMessage",
        retryable=False,
    )


# ---- the sessions of this process, and where an outcome goes ---------------------------------

_lock = threading.Lock()
#: The sessions of this process (by pid: a forked child inherits its parent's list, not its
#: sessions).
_sessions: dict[int, list[ConsumerSession]] = {}
_inbox: Optional[tuple[int, Inbox]] = None
_names = itertools.count(1)


def _register(session: ConsumerSession) -> None:
    global _inbox
    pid = os.getpid()
    with _lock:
        _sessions.setdefault(pid, []).append(session)
        if _inbox is None or _inbox[0] != pid:
            _inbox = (pid, Inbox(_deliver))
            atexit.register(_at_exit)


def _unregister(session: ConsumerSession) -> None:
    with _lock:
        live = _sessions.get(os.getpid(), [])
        if session in live:
            live.remove(session)


def _deliver(lease: Key, outcome: Outcome) -> None:
    """An outcome from a pool process (the inbox's threads)."""
    for session in list(_sessions.get(os.getpid(), [])):
        if session.holds(lease):
            session.report(lease, outcome)
            return
    log.debug("outcome of a lease no session holds dropped: task=%d attempt=%d", *lease)


def report(lease: Key, outcome: Outcome) -> None:
    """``lease``'s outcome, from any process of a Celery worker: to this process's session
    holding it, else (a pool process) to the main process."""
    pid = os.getpid()
    if pid in _sessions:
        _deliver(lease, outcome)  # the main process: its own session, or nobody's
    elif not send_to_parent(lease, outcome):
        log.warning("outcome not delivered: task=%d attempt=%d", *lease)


def session_name() -> str:
    """Unique per session: a new session never inherits (and releases) an older one's leases."""
    import socket

    return f"celery-{socket.gethostname()}-{os.getpid()}-{next(_names)}"


def _at_exit() -> None:
    """The worker is exiting: sessions still answering get a bounded wait for Drained."""
    pid = os.getpid()
    live = list(_sessions.get(pid, []))
    for session in live:
        session.drain()
    deadline = time.monotonic() + EXIT_WAIT_S
    for session in live:
        if not session.finished.wait(max(0.0, deadline - time.monotonic())):
            session.stop()
    if _inbox is not None and _inbox[0] == pid:
        _inbox[1].close()
