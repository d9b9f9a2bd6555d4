"""The worker session of a consuming ``flotilla://`` channel (in a Celery worker's main process),
and :func:`report`, the one way a task's outcome reaches it (docs/CELERY.md, "Consuming").

:class:`ConsumerSession` is the SDK worker's protocol core and shell (``SessionCore``: Hello,
grants, batched results, acks, pings, resume after a node failure, drain; ``SessionShell``: the
stream, the loop, reconnects) with Kombu for its pool: a granted task is *started* by putting
its message where the channel delivers it from (:meth:`ConsumerSession.take`); its outcome
comes back through :func:`report`, from whichever process settled it: a pool process through
the inbox (``inbox.py``), the main process itself (revoked or expired on receipt, a lost pool
process, a rejected message, a thread or solo pool) directly. The loop runs on a thread of its
own; the stream's reader, the inbox and Kombu's threads only put events on its queue.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, Optional

from flotilla.celery.inbox import Inbox, send_to_parent
from flotilla.celery.mapping import message_from_task
from flotilla.v1 import worker_pb2 as wpb
from flotilla.worker.core import Abandon, Action, Exit, Identity, Key, SessionCore
from flotilla.worker.outcome import Outcome, Released
from flotilla.worker.shell import Event, SessionShell

log = logging.getLogger("flotilla.celery")

#: At process exit, how long a session still answering gets to be told Drained.
EXIT_WAIT_S = 10.0

#: A message ready for Kombu: its lease, queue and the message.
Ready = tuple[Key, str, dict[str, Any]]


class ConsumerSession(SessionShell):
    """One ``WorkerService`` session, fed to one Kombu channel."""

    def __init__(self, addrs: Sequence[str], identity: Identity) -> None:
        self.identity = identity
        self._init_shell(addrs, SessionCore(identity))
        #: Granted, not handed to Kombu yet, in grant order. Guarded by ``changed``.
        self._ready: deque[Ready] = deque()
        #: Notified when a message is ready or Kombu acks one (its prefetch has room).
        self.changed = threading.Condition()
        #: The run of every lease the core handed out and has not seen answered. Written by
        #: the loop thread only; read anywhere (one dict lookup).
        self._runs: dict[Key, int] = {}
        self.finished = threading.Event()
        self._thread = threading.Thread(
            target=self._main, name=f"flotilla-session-{identity.name}", daemon=True
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

    def _main(self) -> None:
        log.info(
            "flotilla session starting: name=%s queues=%s concurrency=%d nodes=%s",
            self.identity.name,
            ",".join(self.identity.queues),
            self.identity.concurrency,
            ",".join(self.addrs),
        )
        try:
            self._loop()
        except Exception:
            log.exception("flotilla session failed: the node releases its tasks")

    def _on_event(self, event: Event) -> list[Action]:
        kind = event[0]
        if kind == "done":
            lease, outcome = event[1], event[2]
            run = self._runs.pop(lease, None)
            if run is None:
                return []  # answered already, or never ours
            self._unready(lease)
            return self.core.on_done(run, lease, outcome)
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

    def _start(self, run: int, task: wpb.Task) -> None:
        """Start a grant: make its message ready for Kombu."""
        lease = (task.task_id, task.attempt)
        self._runs[lease] = run
        try:
            message = message_from_task(task)
        except ValueError as e:
            # Not a message our transport published (another client submitted to a Celery
            # queue): it can never run here.
            self._events.put(("done", lease, _not_a_message(task, e)))
            return
        with self.changed:
            self._ready.append((lease, task.queue, message))
            self.changed.notify_all()

    def _abandon(self, action: Abandon) -> None:
        """The node took the lease back (lost, or over its time limit): undelivered, it is
        dropped; delivered, Celery runs it and its outcome is dropped."""
        self._unready(action.lease)
        self._runs.pop(action.lease, None)

    def _unready(self, lease: Key) -> None:
        with self.changed:
            for i, ready in enumerate(self._ready):
                if ready[0] == lease:
                    del self._ready[i]
                    return

    def _close(self) -> None:
        _unregister(self)
        self.finished.set()
        self.notify()
        log.info("flotilla session ended: name=%s", self.identity.name)


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
