"""[`SessionCore`]: the worker side of the worker protocol (proto/.../worker.proto) as a pure
state machine: events in (node messages, attempts finished, the stream ended, a drain, the
clock), actions out (send, run, abandon, close our side, reconnect, exit). No threads, no IO,
no clock of its own: ``runner.py`` carries the actions out, and tests drive it directly.

Batching: results are not sent when an attempt ends but collected, and :meth:`flush` sends
them all in one ``Results`` message; the runner flushes once it has handled every event that
was waiting, so a busy worker sends one message per batch of results, not per task.

What it guarantees:
- every Task it is sent gets exactly one TaskResult per session until it is acknowledged
  (success, failure, or ``released`` when it was not started), except an aborted one, which
  gets none (its result is discarded when the handler returns);
- at most ``slots`` attempts run at once; tasks held beyond that wait here, started in the
  order they came as slots free, and are released, not run, when the worker drains. With no
  fixed prefetch (``auto``, the default) the worker says it queues (``Hello.queue_ahead``):
  the node leases ahead for it by the same rule as its own pools and sends those tasks down
  while they are short (docs/WORKERS.md, "Lease-ahead"), and a ``TakeBack`` of a task not
  started yet is answered ``released`` (one that started is answered by its result). A fixed
  ``prefetch`` is held here instead, and the node holds none more;
- results not acknowledged yet when a stream breaks are kept and sent again on the next
  session, which lists them, with the attempts still held, in ``Hello.resume``;
- a stream that the node ended after a ``WorkerError`` (the node refused *us*; INVALID_ARGUMENT
  without one too) lost every lease: nothing is resumed and the attempts still running are
  abandoned; ALREADY_EXISTS (our name is live on that node) is not a refusal of our leases;
- on drain it sends Drain, releases what has not started, answers what runs, keeps its side
  open, and exits when the node says Drained (or at once when nothing is held and no stream is
  up); after a node failure, a draining worker with results to deliver opens a session of
  concurrency 0 that only resumes.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Optional, Union

from flotilla.v1 import worker_pb2 as wpb
from flotilla.worker.outcome import Failure, Outcome, Released, Success

log = logging.getLogger("flotilla.worker")

#: The ``protocol_version`` of worker.proto ("this file is version 1").
PROTOCOL_VERSION = 1

#: A node that said nothing for this many ping intervals is taken for dead.
SILENT_PINGS = 3
#: Before a Welcome (no ping interval known yet), wait this long for one.
WELCOME_TIMEOUT_S = 10.0

#: A ``Results`` message is cut after this many bytes of results: a batch of large results must
#: stay under the node's message limit (tonic's default is 4 MiB).
MAX_RESULTS_BYTES = 1 << 20

#: The outcome of a task given back unstarted.
RELEASED = Released()

#: With ``auto`` prefetch, the worker queues up to this many tasks per slot beyond its slots
#: (``Hello.queue_ahead``), at least ``QUEUE_AHEAD_MIN`` and at most ``QUEUE_AHEAD_MAX``; the
#: node sends no more than its lease-ahead rule allows (none for long tasks).
QUEUE_AHEAD_PER_SLOT = 4
QUEUE_AHEAD_MIN = 16
QUEUE_AHEAD_MAX = 1024


#: ``(task_id, attempt)``: what the core keys attempts by. Plain tuples on the hot paths (a
#: NamedTuple's constructor costs a Python call); a :class:`Lease` is one too.
Key = tuple[int, int]


class Lease(NamedTuple):
    """One attempt of one task: the fencing token ``(task_id, attempt)``."""

    task_id: int
    attempt: int

    @classmethod
    def of(cls, m: Union[wpb.Task, wpb.TaskResult, wpb.ResultAck, wpb.Abort]) -> Lease:
        return cls(m.task_id, m.attempt)


# Send and Run are made per message and per task: not frozen (a frozen dataclass's __init__
# sets each field through object.__setattr__, a few µs per task); nobody changes them.
@dataclass
class Send:
    message: wpb.WorkerMessage


@dataclass
class Run:
    """Start an attempt; its outcome comes back through ``on_done(run, lease, ...)``."""

    run: int
    task: wpb.Task


@dataclass(frozen=True)
class Abandon:
    """Stop caring about this run (its result will be discarded); tell the handler."""

    run: int
    lease: Key
    reason: str


@dataclass(frozen=True)
class CloseSend:
    """End our side of the stream (drained: nothing more to say)."""


@dataclass(frozen=True)
class Reconnect:
    """Drop the stream and open a new session (on the next node, after a backoff)."""

    reason: str


@dataclass(frozen=True)
class Exit:
    code: int


Action = Union[Send, Run, Abandon, CloseSend, Reconnect, Exit]


@dataclass(frozen=True)
class Identity:
    """What the worker says in its Hello, and how many attempts it runs at once."""

    name: str
    queues: Sequence[str]
    tasks: Sequence[tuple[str, str]]  # (name, default queue)
    #: Attempts run at once (threads or processes).
    concurrency: int
    agent: str
    #: Tasks held here beyond ``concurrency``, waiting for a free slot (``Hello.concurrency`` is
    #: the sum, and the node holds none ahead: ``Hello.prefetch`` 0). ``None`` (``auto``): the
    #: node leases ahead by its rule and sends those tasks down while they are short; the worker
    #: queues them (``Hello.queue_ahead``, see :meth:`queue_ahead`).
    prefetch: Optional[int] = None

    def queue_ahead(self) -> int:
        """What ``Hello.queue_ahead`` says: 0 with a fixed prefetch (held here, counted in
        ``Hello.concurrency``), else a few tasks per slot."""
        if self.prefetch is not None:
            return 0
        per_slot = QUEUE_AHEAD_PER_SLOT * self.concurrency
        return min(max(per_slot, QUEUE_AHEAD_MIN), QUEUE_AHEAD_MAX)


class SessionCore:
    """One worker process's protocol state, across its sessions."""

    def __init__(self, identity: Identity) -> None:
        if identity.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if identity.prefetch is not None and identity.prefetch < 0:
            raise ValueError("prefetch must not be negative")
        self.identity = identity
        #: Attempts started and not finished, with the id of their run.
        self.running: dict[Key, int] = {}
        #: Tasks held and not started yet (prefetched), in grant order.
        self.waiting: deque[wpb.Task] = deque()
        self._waiting_leases: set[Key] = set()
        #: Outcomes not acknowledged yet (sent in this or an earlier session, or not yet).
        self.unacked: dict[Key, Outcome] = {}
        #: Leases in ``unacked`` whose result this session has not sent yet, in order (a dict:
        #: a lease answered again before a flush is sent once).
        self._outgoing: dict[Key, None] = {}
        #: Runs the node took back while they ran: their results are dropped. By run, not
        #: lease: the same lease may be granted again while its abandoned run goes on.
        self.abandoned: set[int] = set()
        self._runs = 0
        self.welcome: Optional[wpb.Welcome] = None
        self._max_result_bytes = 0
        self.connected = False
        self.draining = False
        self.exited = False
        self._resume_next = False
        self._refusal: Optional[str] = None
        self._last_heard = 0.0

    # ---- events ------------------------------------------------------------------------

    def connect(self, now: float) -> list[Action]:
        """A new stream is open: say Hello (and Drain, when draining)."""
        self.connected, self.welcome, self._refusal = True, None, None
        self._outgoing = {}
        self._last_heard = now
        resume = sorted(self.held()) if self._resume_next else []
        held_here = self.identity.prefetch or 0
        hello = wpb.Hello(
            name=self.identity.name,
            queues=list(self.identity.queues),
            tasks=[wpb.TaskDecl(name=n, queue=q) for n, q in self.identity.tasks],
            # A draining worker takes nothing new: its session only resumes.
            concurrency=0 if self.draining else self.identity.concurrency + held_here,
            # A fixed prefetch is held here: the node holds none more.
            prefetch=None if self.identity.prefetch is None else 0,
            # Otherwise the node's lease-ahead comes down to be queued here.
            queue_ahead=0 if self.draining else self.identity.queue_ahead(),
            resume=[wpb.LeaseId(task_id=t, attempt=a) for t, a in resume],
            protocol_version=PROTOCOL_VERSION,
            agent=self.identity.agent,
        )
        actions: list[Action] = [Send(wpb.WorkerMessage(hello=hello))]
        if self.draining:
            actions.append(Send(wpb.WorkerMessage(drain=wpb.Drain())))
        return actions

    def held(self) -> set[Key]:
        """Every lease this worker holds: running, waiting, or answered without an ack."""
        return set(self.running) | self._waiting_leases | set(self.unacked)

    def on_message(self, msg: wpb.NodeMessage, now: float) -> list[Action]:
        self._last_heard = now
        kind = msg.WhichOneof("msg")
        if kind == "tasks":
            return self._on_tasks(msg.tasks.tasks)
        if kind == "acks":
            for ack in msg.acks.acks:
                self._on_ack(ack)
            return []
        if kind == "ping":
            return [Send(wpb.WorkerMessage(pong=wpb.Pong(nonce=msg.ping.nonce)))]
        if kind == "welcome":
            self.welcome = msg.welcome
            self._max_result_bytes = msg.welcome.max_result_bytes
            log.info("session open: node=%d session=%d", msg.welcome.node_id, msg.welcome.session)
            # Results of earlier sessions (resumed leases) and of attempts that ended while no
            # stream was up go out with the next flush.
            self._outgoing = dict.fromkeys(sorted(self.unacked))
            return []
        if kind == "abort":
            return self._on_abort(msg.abort)
        if kind == "take_back":
            self._on_take_back(msg.take_back)
            return []
        if kind == "drained":
            log.info("drained: every answer is committed")
            self.exited = True
            return [CloseSend(), Exit(0)]
        if kind == "error":
            log.error("node refused the session: %s", msg.error.message)
            self._refusal = msg.error.message
            return []
        log.warning("unknown node message ignored: %s", kind)
        return []

    def on_done(self, run: int, lease: Key, outcome: Outcome) -> list[Action]:
        """Run ``run`` of ``lease`` ended: its handler returned (or raised). Its result goes
        out with the next :meth:`flush`."""
        if run in self.abandoned:
            self.abandoned.discard(run)
            log.info("result dropped: task=%d attempt=%d (aborted)", *lease)
            return []
        if self.running.get(lease) != run:
            return []
        del self.running[lease]
        self._answer(lease, self._checked(outcome))
        return self._start_waiting()

    def flush(self) -> list[Action]:
        """One ``Results`` message with every result not sent in this session yet (more when
        they exceed ``MAX_RESULTS_BYTES`` together)."""
        if not self._outgoing or self.welcome is None:
            return []
        sends: list[Action] = []
        msg = wpb.WorkerMessage()
        add = msg.results.results.add
        size = 0
        unacked = self.unacked
        for lease in self._outgoing:
            outcome = unacked.get(lease)
            if outcome is None:
                continue  # acknowledged before it was sent again
            if size >= MAX_RESULTS_BYTES:
                sends.append(Send(msg))
                msg = wpb.WorkerMessage()
                add = msg.results.results.add
                size = 0
            task_id, attempt = lease
            if type(outcome) is Success:
                add(task_id=task_id, attempt=attempt, success=outcome.data)
                size += len(outcome.data)
            elif type(outcome) is Failure:
                f = add(task_id=task_id, attempt=attempt).failure
                f.message, f.retryable, f.kind = outcome.message, outcome.retryable, outcome.kind
                f.retry_delay_ms = outcome.retry_delay_ms
                size += len(outcome.message)
            else:
                add(task_id=task_id, attempt=attempt).released.SetInParent()
        self._outgoing = {}
        if msg.results.results:
            sends.append(Send(msg))
        return sends

    def on_stream_end(self, code: str, details: str, now: float) -> list[Action]:
        """The stream ended (``code`` is the gRPC status name; "OK" for a clean end)."""
        self.connected, self.welcome, self._outgoing = False, None, {}
        if self.exited:
            return []
        refused = code != "ALREADY_EXISTS" and (
            self._refusal is not None or code == "INVALID_ARGUMENT"
        )
        actions: list[Action] = []
        if refused:
            # Our own fault: the node released every lease of ours, so results of what still
            # runs would be refused. Start clean.
            log.error("session ended by the node: %s: %s", code, self._refusal or details)
            actions = [
                Abandon(run, lease, "session refused")
                for lease, run in sorted(self.running.items())
            ]
            self.abandoned |= set(self.running.values())
            self.running.clear()
            self.waiting.clear()
            self._waiting_leases.clear()
            self.unacked.clear()
            self._resume_next = False
        else:
            # The node failed (or the network between us): the next session resumes.
            log.warning("session lost: %s: %s", code, details)
            self._resume_next = True
        if self.draining and not self.held():
            return [*actions, *self._exit(0)]
        return [*actions, Reconnect(f"{code}: {details}")]

    def drain(self) -> list[Action]:
        """Stop taking tasks (SIGTERM): release what has not started, finish and answer what
        runs, then exit once the node says Drained."""
        if self.draining or self.exited:
            return []
        self.draining = True
        log.info(
            "draining: running=%d waiting=%d unacked=%d",
            len(self.running),
            len(self.waiting),
            len(self.unacked),
        )
        self._release_waiting()
        if not self.connected:
            return self._exit(0) if not self.held() else []
        return [Send(wpb.WorkerMessage(drain=wpb.Drain()))]

    def on_tick(self, now: float) -> list[Action]:
        """Time passed: a node that went silent is taken for dead."""
        if not self.connected or self.exited:
            return []
        if self.welcome is None:
            limit = WELCOME_TIMEOUT_S
        else:
            limit = SILENT_PINGS * max(self.welcome.ping_interval_ms, 1) / 1000
        if now - self._last_heard > limit:
            self.connected, self.welcome, self._outgoing = False, None, {}
            self._resume_next = True
            return [Reconnect(f"node silent for {now - self._last_heard:.1f} s")]
        return []

    # ---- rules -------------------------------------------------------------------------

    def _on_tasks(self, tasks: Sequence[wpb.Task]) -> list[Action]:
        running, waiting = self.running, self._waiting_leases
        for task in tasks:
            lease = (task.task_id, task.attempt)
            if lease in running or lease in waiting or lease in self.unacked:
                continue  # already ours (a resumed lease granted again): one run, one result
            if self.draining:
                # Granted before the node read our Drain: give it back unstarted.
                self._answer(lease, RELEASED)
                continue
            self.waiting.append(task)
            waiting.add(lease)
        return self._start_waiting()

    def _start_waiting(self) -> list[Action]:
        actions: list[Action] = []
        slots = self.identity.concurrency
        while self.waiting and len(self.running) < slots:
            task = self.waiting.popleft()
            lease = (task.task_id, task.attempt)
            self._waiting_leases.discard(lease)
            self._runs += 1
            self.running[lease] = self._runs
            actions.append(Run(self._runs, task))
        return actions

    def _release_waiting(self) -> None:
        for task in self.waiting:
            self._answer((task.task_id, task.attempt), RELEASED)
        self.waiting.clear()
        self._waiting_leases.clear()

    def _answer(self, lease: Key, outcome: Outcome) -> None:
        self.unacked[lease] = outcome
        if self.welcome is not None:
            self._outgoing[lease] = None

    def _on_ack(self, ack: wpb.ResultAck) -> None:
        lease = (ack.task_id, ack.attempt)
        if self.unacked.pop(lease, None) is None:
            return
        if ack.status == wpb.ResultAck.STATUS_STALE:
            log.warning("result refused, lease lost: task=%d attempt=%d", *lease)
        elif ack.status == wpb.ResultAck.STATUS_TOO_LARGE:
            log.error("result too large, the task failed: task=%d attempt=%d", *lease)

    def _on_abort(self, abort: wpb.Abort) -> list[Action]:
        lease = (abort.task_id, abort.attempt)
        if lease in self._waiting_leases:
            # Not started: forget it, no result (the node took it back).
            self._waiting_leases.discard(lease)
            self.waiting = deque(t for t in self.waiting if (t.task_id, t.attempt) != lease)
            log.info("aborted before it started: task=%d attempt=%d", *lease)
            return []
        run = self.running.pop(lease, None)
        if run is None:
            return []
        self.abandoned.add(run)
        log.info("aborted: task=%d attempt=%d reason=%s", *lease, abort.reason)
        return [Abandon(run, lease, abort.reason), *self._start_waiting()]

    def _on_take_back(self, take_back: wpb.TakeBack) -> None:
        """The node wants a queued task back: ``released`` if it has not started; if it has,
        its result answers (and an answered one needs nothing more)."""
        lease = (take_back.task_id, take_back.attempt)
        if lease not in self._waiting_leases:
            return
        self._waiting_leases.discard(lease)
        self.waiting = deque(t for t in self.waiting if (t.task_id, t.attempt) != lease)
        self._answer(lease, RELEASED)

    def _checked(self, outcome: Outcome) -> Outcome:
        """A success over the node's limit becomes the failure the node would make of it."""
        limit = self._max_result_bytes
        if limit and type(outcome) is Success and len(outcome.data) > limit:
            # The node would fail the task anyway; this saves sending the bytes.
            return Failure(
                f"result of {len(outcome.data)} bytes exceeds max_result_bytes {limit}",
                "ResultTooLarge",
                retryable=False,
            )
        return outcome

    def _exit(self, code: int) -> list[Action]:
        self.exited = True
        return [Exit(code)]
