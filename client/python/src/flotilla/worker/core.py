"""[`SessionCore`]: the worker side of the worker protocol (proto/.../worker.proto) as a pure
state machine: events in (node messages, attempts finished, the stream ended, a drain, the
clock), actions out (send, run, abandon, close our side, reconnect, exit). No threads, no IO,
no clock of its own: ``runner.py`` carries the actions out, and tests drive it directly.

What it guarantees:
- every Task it is sent gets exactly one TaskResult per session until it is acknowledged,
  except an aborted one, which gets none (its result is discarded when the handler returns);
- results not yet acknowledged when a stream breaks are kept and sent again on the next
  session, which lists them, with the attempts still running, in ``Hello.resume``;
- a stream that ends with INVALID_ARGUMENT (the node refused *us*) lost every lease: nothing is
  resumed and the attempts still running are abandoned;
- on drain it sends Drain, answers what runs, closes its side once nothing is left to answer,
  and exits when the node says Drained (or at once when nothing is held and no stream is up).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional, Union

from flotilla.v1 import worker_pb2 as wpb
from flotilla.worker.outcome import Failure, Outcome

log = logging.getLogger("flotilla.worker")

PROTOCOL_VERSION = 1

#: A node that said nothing for this many ping intervals is taken for dead.
SILENT_PINGS = 3
#: Before a Welcome (no ping interval known yet), wait this long for one.
WELCOME_TIMEOUT_S = 10.0


@dataclass(frozen=True, order=True)
class Lease:
    """One attempt of one task: the fencing token ``(task_id, attempt)``."""

    task_id: int
    attempt: int

    @classmethod
    def of(cls, m: Union[wpb.Task, wpb.TaskResult, wpb.ResultAck, wpb.Abort]) -> Lease:
        return cls(m.task_id, m.attempt)


@dataclass(frozen=True)
class Send:
    message: wpb.WorkerMessage


@dataclass(frozen=True)
class Run:
    """Start an attempt; its outcome comes back through ``on_done(run, ...)``."""

    run: int
    task: wpb.Task


@dataclass(frozen=True)
class Abandon:
    """Stop caring about this run (its result will be discarded); tell the handler."""

    run: int
    lease: Lease
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
    """What the worker says in its Hello."""

    name: str
    queues: Sequence[str]
    tasks: Sequence[tuple[str, str]]  # (name, default queue)
    concurrency: int
    agent: str


class SessionCore:
    """One worker process's protocol state, across its sessions."""

    def __init__(self, identity: Identity) -> None:
        if identity.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.identity = identity
        #: Attempts started and not finished, with the id of their run.
        self.running: dict[Lease, int] = {}
        #: Results not acknowledged yet (sent in this or an earlier session, or not sent yet).
        self.unacked: dict[Lease, wpb.TaskResult] = {}
        #: Runs the node took back while they ran: their results are dropped. By run, not
        #: lease: the same lease may be granted again while its abandoned run goes on.
        self.abandoned: set[int] = set()
        self._runs = 0
        self.welcome: Optional[wpb.Welcome] = None
        self.connected = False
        self.draining = False
        self.closed_send = False
        self.exited = False
        self._resume_next = False
        self._last_heard = 0.0

    # ---- events ------------------------------------------------------------------------

    def connect(self, now: float) -> list[Action]:
        """A new stream is open: say Hello (and Drain, when draining)."""
        self.connected, self.welcome, self.closed_send = True, None, False
        self._last_heard = now
        resume = sorted(set(self.running) | set(self.unacked)) if self._resume_next else []
        hello = wpb.Hello(
            name=self.identity.name,
            queues=list(self.identity.queues),
            tasks=[wpb.TaskDecl(name=n, queue=q) for n, q in self.identity.tasks],
            concurrency=self.identity.concurrency,
            resume=[wpb.LeaseId(task_id=lease.task_id, attempt=lease.attempt) for lease in resume],
            protocol_version=PROTOCOL_VERSION,
            agent=self.identity.agent,
        )
        actions: list[Action] = [Send(wpb.WorkerMessage(hello=hello))]
        if self.draining:
            actions.append(Send(wpb.WorkerMessage(drain=wpb.Drain())))
        return actions

    def on_message(self, msg: wpb.NodeMessage, now: float) -> list[Action]:
        self._last_heard = now
        kind = msg.WhichOneof("msg")
        if kind == "welcome":
            self.welcome = msg.welcome
            log.info("session open: node=%d session=%d", msg.welcome.node_id, msg.welcome.session)
            # Results of earlier sessions (resumed leases) and of attempts that ended while no
            # stream was up go out now.
            actions: list[Action] = [
                Send(wpb.WorkerMessage(result=r)) for _, r in sorted(self.unacked.items())
            ]
            return actions + self._maybe_close()
        if kind == "task":
            return self._on_task(msg.task)
        if kind == "ack":
            return self._on_ack(msg.ack)
        if kind == "ping":
            if self.closed_send:
                return []  # our side is closed: the node waits for Drained, not for pongs
            return [Send(wpb.WorkerMessage(pong=wpb.Pong(nonce=msg.ping.nonce)))]
        if kind == "abort":
            return self._on_abort(msg.abort)
        if kind == "drained":
            log.info("drained: every answer is committed")
            return self._exit(0)
        if kind == "error":
            log.error("node refused the session: %s", msg.error.message)
            return []
        log.warning("unknown node message ignored: %s", kind)
        return []

    def on_done(self, run: int, lease: Lease, outcome: Outcome) -> list[Action]:
        """Run ``run`` of ``lease`` ended: its handler returned (or raised)."""
        if run in self.abandoned:
            self.abandoned.discard(run)
            log.info("result dropped: task=%d attempt=%d (aborted)", lease.task_id, lease.attempt)
            return self._maybe_close()
        if self.running.get(lease) != run:
            return []
        del self.running[lease]
        result = self._result(lease, outcome)
        self.unacked[lease] = result
        actions: list[Action] = []
        if self.connected and self.welcome is not None:
            actions.append(Send(wpb.WorkerMessage(result=result)))
        return actions + self._maybe_close()

    def on_stream_end(self, code: str, details: str, now: float) -> list[Action]:
        """The stream ended (``code`` is the gRPC status name; "OK" for a clean end)."""
        self.connected, self.welcome = False, None
        if self.exited:
            return []
        if code == "INVALID_ARGUMENT":
            # Our own fault: the node released every lease of ours, so results of what still
            # runs would be refused. Start clean.
            log.error("session ended by the node: %s", details)
            actions: list[Action] = [
                Abandon(run, lease, "session refused")
                for lease, run in sorted(self.running.items())
            ]
            self.abandoned |= set(self.running.values())
            self.running.clear()
            self.unacked.clear()
            self._resume_next = False
        else:
            log.warning("session lost: %s: %s", code, details)
            actions = []
            self._resume_next = True
        if self.draining and not self.running and not self.unacked:
            return actions + self._exit(0)
        return [*actions, Reconnect(f"{code}: {details}")]

    def drain(self) -> list[Action]:
        """Stop taking tasks (SIGTERM): finish and answer what runs, then exit."""
        if self.draining or self.exited:
            return []
        self.draining = True
        log.info("draining: running=%d unacked=%d", len(self.running), len(self.unacked))
        if not self.connected:
            return self._exit(0) if not self.running and not self.unacked else []
        return [Send(wpb.WorkerMessage(drain=wpb.Drain())), *self._maybe_close()]

    def on_tick(self, now: float) -> list[Action]:
        """Time passed: a node that went silent is taken for dead."""
        if not self.connected or self.exited:
            return []
        if self.welcome is None:
            limit = WELCOME_TIMEOUT_S
        else:
            limit = SILENT_PINGS * max(self.welcome.ping_interval_ms, 1) / 1000
        if now - self._last_heard > limit:
            self.connected, self.welcome = False, None
            self._resume_next = True
            return [Reconnect(f"node silent for {now - self._last_heard:.1f} s")]
        return []

    # ---- rules -------------------------------------------------------------------------

    def _on_task(self, task: wpb.Task) -> list[Action]:
        lease = Lease.of(task)
        if lease in self.running or lease in self.unacked:
            return []  # already ours (a resumed lease granted again): one run, one result
        if self.closed_send:
            # Granted before the node read our Drain, after we closed our side: we cannot
            # answer it, so we do not run it; the node releases it with the session.
            log.warning("task after drain not run: task=%d attempt=%d", *_ids(lease))
            return []
        self._runs += 1
        self.running[lease] = self._runs
        return [Run(self._runs, task)]

    def _on_ack(self, ack: wpb.ResultAck) -> list[Action]:
        lease = Lease.of(ack)
        if self.unacked.pop(lease, None) is None:
            return []
        if ack.status == wpb.ResultAck.STATUS_STALE:
            log.warning("result refused, lease lost: task=%d attempt=%d", *_ids(lease))
        elif ack.status == wpb.ResultAck.STATUS_TOO_LARGE:
            log.error("result too large, the task failed: task=%d attempt=%d", *_ids(lease))
        return self._maybe_close()

    def _on_abort(self, abort: wpb.Abort) -> list[Action]:
        lease = Lease.of(abort)
        run = self.running.pop(lease, None)
        if run is None:
            return []
        self.abandoned.add(run)
        log.info("aborted: task=%d attempt=%d reason=%s", *_ids(lease), abort.reason)
        return [Abandon(run, lease, abort.reason), *self._maybe_close()]

    def _result(self, lease: Lease, outcome: Outcome) -> wpb.TaskResult:
        limit = self.welcome.max_result_bytes if self.welcome is not None else 0
        if isinstance(outcome, Failure):
            failure = wpb.Failure(
                message=outcome.message,
                retryable=outcome.retryable,
                retry_delay_ms=outcome.retry_delay_ms,
                kind=outcome.kind,
            )
            return wpb.TaskResult(task_id=lease.task_id, attempt=lease.attempt, failure=failure)
        if limit and len(outcome.data) > limit:
            # The node would fail the task anyway; this saves sending the bytes.
            failure = wpb.Failure(
                message=f"result of {len(outcome.data)} bytes exceeds max_result_bytes {limit}",
                retryable=False,
                kind="ResultTooLarge",
            )
            return wpb.TaskResult(task_id=lease.task_id, attempt=lease.attempt, failure=failure)
        return wpb.TaskResult(task_id=lease.task_id, attempt=lease.attempt, success=outcome.data)

    def _maybe_close(self) -> list[Action]:
        """When draining and every attempt is answered, end our side of the stream."""
        if (
            self.draining
            and self.connected
            and self.welcome is not None
            and not self.running
            and not self.closed_send
        ):
            self.closed_send = True
            return [CloseSend()]
        return []

    def _exit(self, code: int) -> list[Action]:
        self.exited = True
        return [Exit(code)]


def _ids(lease: Lease) -> tuple[int, int]:
    return lease.task_id, lease.attempt
