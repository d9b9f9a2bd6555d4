"""[`Client`]: the low-level connection to a cluster. Any node serves any call, so the client
keeps a list of nodes, sends each call to its current node and moves on to the next one when a
call fails transiently (the rules of ``retry.py``), like the Rust client. It presents its token
(``token=`` or ``$FLOTILLA_TOKEN``) on every call.

Thread-safe: one client (its channels, node preference and random source) serves every thread.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from functools import partial
from typing import Any, Callable, Optional, TypeVar, Union

import grpc

from flotilla import _rpc
from flotilla.attempts import Attempt
from flotilla.errors import (
    InvalidArgument,
    PermissionDenied,
    ResultTimeout,
    ServerError,
    TaskNotFound,
    Unauthenticated,
    Unavailable,
)
from flotilla.events import Event
from flotilla.events import watch as events_watch
from flotilla.info import (
    ClusterStatus,
    QueueStats,
    ScheduleAdded,
    ScheduleInfo,
    Submitted,
    TaskInfo,
    Workers,
)
from flotilla.retry import Backoff, RetryPolicy, describe, is_transient
from flotilla.v1 import limits_pb2 as lpb
from flotilla.v1 import ops_pb2 as opb
from flotilla.v1 import queue_pb2 as qpb
from flotilla.v1 import schedule_pb2 as spb
from flotilla.v1 import workflows_pb2 as fpb

T = TypeVar("T")

#: How long past a wait's own deadline a silent node is given to end the stream itself.
WAIT_GRACE_S = 1.0

Nodes = Union[str, Sequence[str]]


def parse_nodes(nodes: Nodes) -> list[str]:
    """Node addresses from ``"h1:7000,h2:7001"`` or a list of ``"host:port"``."""
    items = nodes.split(",") if isinstance(nodes, str) else list(nodes)
    addrs = [_rpc.target(a.strip()) for a in items if a.strip()]
    if not addrs:
        raise ValueError("no node addresses given")
    return addrs


def _current_trace_context() -> dict[str, str]:
    """The caller's W3C trace context (``traceparent``, ``tracestate``) when OpenTelemetry is
    installed and a span is current: submitted tasks carry it, so their runs join the caller's
    trace. Empty otherwise (OpenTelemetry is optional)."""
    try:
        from opentelemetry import propagate  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return {k: v for k, v in carrier.items() if k in ("traceparent", "tracestate")}


def new_idempotency_key() -> str:
    """A fresh key: 16 random bytes as 32 lowercase hex digits (as the Rust client's)."""
    return secrets.token_hex(16)


#: Most ids one WaitResults request may carry (the nodes' default ``--max-batch-tasks``).
MAX_WAIT_IDS = 10_000


class Client:
    """A connection to the cluster at ``nodes``; channels open lazily on first use. With
    ``tls_ca`` (a CA certificate file, PEM; default ``$FLOTILLA_TLS_CA``) it talks TLS."""

    def __init__(
        self,
        nodes: Nodes,
        *,
        retry: Optional[RetryPolicy] = None,
        request_timeout: float = 10.0,
        max_batch_size: int = 1000,
        tls_ca: Optional[str] = None,
        token: Optional[str] = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self.addrs = parse_nodes(nodes)
        #: The CA (PEM) that nodes' certificates must chain to; None: plaintext.
        self.tls_root = _rpc.tls_root(tls_ca)
        #: Presented on every call (``token=``, else ``$FLOTILLA_TOKEN``); never printed.
        self.token = _rpc.resolve_token(token)
        self.retry = retry or RetryPolicy()
        self.request_timeout = request_timeout
        self.max_batch_size = max_batch_size
        # Opened on first use: an app defined at import time (a task module imported by a
        # worker's child processes) must not start gRPC in processes that never call.
        self._channels: list[Optional[grpc.Channel]] = [None] * len(self.addrs)
        self._stubs: list[Optional[_rpc.QueueStub]] = [None] * len(self.addrs)
        self._current = 0
        self._lock = threading.Lock()
        self._random = random.Random()

    def close(self) -> None:
        """Closes the channels; calls in flight fail."""
        with self._lock:
            for c in self._channels:
                if c is not None:
                    c.close()
            self._channels = [None] * len(self.addrs)
            self._stubs = [None] * len(self.addrs)

    def _stub(self, node: int) -> _rpc.QueueStub:
        with self._lock:
            stub = self._stubs[node]
            if stub is None:
                channel = _rpc.open_channel(self.addrs[node], self.tls_root, self.token)
                stub = _rpc.QueueStub(channel)
                self._channels[node], self._stubs[node] = channel, stub
            return stub

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- calls -------------------------------------------------------------------------

    def submit(self, specs: Sequence[qpb.TaskSpec]) -> list[Submitted]:
        """Submits tasks in batches of at most ``max_batch_size``, in order; one reply each.

        On error some earlier batches may have been accepted: submitting the same specs again is
        safe, as their idempotency keys bring the accepted ones back as duplicates.
        """
        out: list[Submitted] = []
        trace = _current_trace_context()
        for start in range(0, len(specs), self.max_batch_size):
            batch = list(specs[start : start + self.max_batch_size])
            for spec in batch:
                if not spec.idempotency_key:
                    spec.idempotency_key = new_idempotency_key()
                if trace and "traceparent" not in spec.headers:
                    spec.headers.update(trace)
            reply = self._unary(partial(_submit, qpb.SubmitRequest(tasks=batch)))
            if len(reply.results) != len(batch):
                raise ServerError(
                    "INTERNAL", f"submit reply has {len(reply.results)} results for {len(batch)}"
                )
            out.extend(Submitted(r.id, r.duplicate) for r in reply.results)
        return out

    def get(self, task_id: int, *, stale_ok: bool = False) -> TaskInfo:
        """A task's current state, linearizable unless ``stale_ok``."""
        request = qpb.GetTaskRequest(id=task_id, stale_ok=stale_ok)
        reply = self._unary(lambda s, t: s.get_task(request, timeout=t), task_id=task_id)
        return TaskInfo.from_wire(reply.task)

    def attempts(self, task_id: int, *, stale_ok: bool = False) -> list[Attempt]:
        """A task's last attempts (at most 16), oldest first: which pool or worker ran each,
        when, how it ended. Empty for a task that never ran."""
        request = opb.DescribeTaskRequest(id=task_id, stale_ok=stale_ok)
        reply = self._unary(lambda s, t: s.describe_task(request, timeout=t), task_id=task_id)
        return [Attempt.from_wire(a) for a in reply.attempts]

    def find_by_idempotency_keys(
        self, keys: Iterable[str], *, stale_ok: bool = False
    ) -> list[Optional[int]]:
        """The id of the task holding each idempotency key, in order (``None``: no task holds
        it: never submitted, or purged with its result); linearizable unless ``stale_ok``."""
        keys = list(keys)
        out: list[Optional[int]] = []
        for start in range(0, len(keys), MAX_WAIT_IDS):
            request = qpb.FindTasksByIdempotencyKeyRequest(
                idempotency_keys=keys[start : start + MAX_WAIT_IDS], stale_ok=stale_ok
            )
            reply = self._unary(partial(_find_by_keys, request))
            out.extend(i or None for i in reply.ids)
        return out

    def cancel(self, ids: Iterable[int]) -> list[bool]:
        """Cancels tasks that have not started; one flag per id (True: cancelled by this call)."""
        ids = list(ids)
        out: list[bool] = []
        for start in range(0, len(ids), self.max_batch_size):
            request = qpb.CancelRequest(ids=ids[start : start + self.max_batch_size])
            reply = self._unary(partial(_cancel, request))
            out.extend(reply.cancelled)
        return out

    def revoke(self, ids: Iterable[int], *, terminate: bool = False, reason: str = "") -> list[str]:
        """Cancels tasks; with ``terminate`` running ones too (an admin token): the worker running
        one is told to abort it and its result is dropped. One outcome per id: ``"cancelled"``
        (it was waiting), ``"terminated"`` (it was running) or ``"unchanged"``. ``reason`` (at
        most 256 bytes) becomes the error of the tasks ``terminate`` cancels."""
        ids = list(ids)
        out: list[str] = []
        names = {
            opb.REVOKE_OUTCOME_CANCELLED: "cancelled",
            opb.REVOKE_OUTCOME_TERMINATED: "terminated",
            opb.REVOKE_OUTCOME_UNCHANGED: "unchanged",
        }
        for start in range(0, len(ids), self.max_batch_size):
            request = opb.RevokeRequest(
                ids=ids[start : start + self.max_batch_size], terminate=terminate, reason=reason
            )
            reply = self._unary(partial(_revoke, request))
            out.extend(names.get(o, "unknown") for o in reply.outcomes)
        return out

    def stats(self) -> list[QueueStats]:
        """Task counts per queue, sorted by queue name."""
        reply = self._unary(lambda s, t: s.queue_stats(qpb.QueueStatsRequest(), timeout=t))
        return [QueueStats.from_wire(q) for q in reply.queues]

    def status(self) -> ClusterStatus:
        """Members, roles and the leader, as the answering node sees them."""
        reply = self._unary(lambda s, t: s.cluster_status(qpb.ClusterStatusRequest(), timeout=t))
        return ClusterStatus.from_wire(reply)

    def workers(self) -> Workers:
        """Every pool and remote worker of the cluster (read right): any node asks every
        member, each within 2 s, and names the ones that did not answer."""
        reply = self._unary(lambda s, t: s.list_workers(qpb.ListWorkersRequest(), timeout=t))
        return Workers.from_wire(reply)

    def add_schedule(self, request: spb.AddScheduleRequest) -> ScheduleAdded:
        """Adds a schedule (needs an admin token; build the request with
        ``flotilla.schedule.schedule_request``). Adding it again with the same spec is harmless
        (``outcome`` is ``"unchanged"``)."""
        reply = self._unary(lambda s, t: s.add_schedule(request, timeout=t))
        return ScheduleAdded.from_wire(reply)

    def schedules(self, upcoming: int = 1) -> list[ScheduleInfo]:
        """Every schedule, by name, each with its next ``upcoming`` run times (1 to 100)."""
        request = spb.ListSchedulesRequest(upcoming=upcoming)
        reply = self._unary(lambda s, t: s.list_schedules(request, timeout=t))
        return [ScheduleInfo.from_wire(i) for i in reply.schedules]

    def pause_schedule(self, name: str) -> None:
        """Pauses schedule ``name`` (admin): slots that pass while paused do not run."""
        request = spb.PauseScheduleRequest(name=name, paused=True)
        self._unary(lambda s, t: s.pause_schedule(request, timeout=t))

    def resume_schedule(self, name: str) -> None:
        """Resumes schedule ``name`` (admin) from its next slot after now."""
        request = spb.PauseScheduleRequest(name=name, paused=False)
        self._unary(lambda s, t: s.pause_schedule(request, timeout=t))

    def remove_schedule(self, name: str) -> None:
        """Removes schedule ``name`` (admin); the tasks it enqueued stay."""
        request = spb.RemoveScheduleRequest(name=name)
        self._unary(lambda s, t: s.remove_schedule(request, timeout=t))

    def set_limit(
        self, scope: str, *, rate: Optional[str] = None, concurrency: Optional[int] = None
    ) -> None:
        """Sets (or replaces) the limit of ``scope`` (admin): ``queue:NAME``, ``task:NAME``,
        ``key:KEY`` or ``key:*``, with a ``rate`` such as ``"100/s"`` or ``"10/m"``, a
        ``concurrency``, or both (docs/LIMITS.md)."""
        limit = lpb.Limit(scope=scope, rate=rate or "")
        if concurrency is not None:
            limit.concurrency = concurrency
        request = lpb.SetLimitRequest(limit=limit)
        self._unary(lambda s, t: s.set_limit(request, timeout=t))

    def limits(self) -> list[dict[str, Any]]:
        """Every limit: its ``scope``, ``rate`` (or None), ``concurrency`` (or None), the tasks
        it covers ``running`` now and the pending tasks it ``held`` back."""
        reply = self._unary(lambda s, t: s.list_limits(lpb.ListLimitsRequest(), timeout=t))
        return [
            {
                "scope": i.limit.scope,
                "rate": i.limit.rate or None,
                "concurrency": i.limit.concurrency if i.limit.HasField("concurrency") else None,
                "running": i.running,
                "held": i.held,
            }
            for i in reply.limits
        ]

    def remove_limit(self, scope: str) -> bool:
        """Removes the limit of ``scope`` (admin); whether there was one."""
        request = lpb.RemoveLimitRequest(scope=scope)
        return self._unary(lambda s, t: s.remove_limit(request, timeout=t)).removed

    def submit_workflow(self, request: fpb.SubmitWorkflowRequest) -> fpb.SubmitWorkflowResponse:
        """Submits a workflow (a canvas, as ``flotilla.canvas`` builds it): one log entry, all
        or nothing (docs/WORKFLOWS.md). Raises :class:`InvalidArgument` without sending a
        request over the size a node reads (sent, it would fail on every node and be retried
        as a transport failure until the retry budget ran out)."""
        size = request.ByteSize()
        if size > _rpc.MAX_REQUEST_BYTES:
            raise InvalidArgument(
                f"the workflow request takes {size} bytes, over the limit of "
                f"{_rpc.MAX_REQUEST_BYTES} bytes a node reads: split it into smaller workflows, "
                "or pass large arguments by reference"
            )
        return self._unary(lambda s, t: s.submit_workflow(request, timeout=t))

    def get_workflow(self, workflow_id: int = 0, *, task_id: int = 0) -> fpb.GetWorkflowResponse:
        """A workflow's state, result and tasks as one object, by its id or by one of its
        tasks."""
        request = fpb.GetWorkflowRequest(id=workflow_id, task_id=task_id)
        return self._unary(lambda s, t: s.get_workflow(request, timeout=t))

    def wait(self, ids: Iterable[int], timeout: Optional[float]) -> Iterator[TaskInfo]:
        """Yields each task's final state as it is reached (completion order, each id once;
        unknown ids as NOT_FOUND). A stream broken by a node failure is reopened on the next
        node for the ids not yet reported. Raises :class:`ResultTimeout` when ``timeout``
        (seconds; None: no limit) passes first."""
        pending = set(ids)
        deadline = None if timeout is None else time.monotonic() + timeout
        backoff = Backoff(self.retry, time.monotonic())
        node = self._node()
        while pending:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise ResultTimeout(f"{len(pending)} tasks not final within {timeout} s")
            # At most one request's worth of ids at a time (a node refuses more); the next
            # ones are asked for once these are reported.
            asked = sorted(pending)[:MAX_WAIT_IDS]
            request = qpb.WaitResultsRequest(
                ids=asked,
                # Whole ms rounded up: 0 would mean "no limit".
                timeout_ms=0 if left is None else max(1, int(left * 1000 + 0.999)),
            )
            grpc_timeout = None if left is None else left + WAIT_GRACE_S
            try:
                for info in self._stub(node).wait_results(request, timeout=grpc_timeout):
                    if info.id in pending:
                        pending.discard(info.id)
                        backoff.reset(time.monotonic())
                        yield TaskInfo.from_wire(info)
                if not pending:
                    return
                if pending.isdisjoint(asked):
                    continue
                failure = f"stream ended with {len(pending)} ids unreported"
            except grpc.RpcError as e:
                code = e.code() if isinstance(e, grpc.Call) else None
                if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise ResultTimeout(
                        f"{len(pending)} tasks not final within {timeout} s"
                    ) from None
                if not is_transient(code):
                    raise _final_error(e, None) from None
                failure = describe(e)
            node = self._retry_after(node, backoff, failure, deadline)

    def events(
        self,
        *,
        queues: Iterable[str] = (),
        task_names: Iterable[str] = (),
        kinds: Iterable[str] = (),
        from_position: Optional[tuple[int, int]] = None,
    ) -> Iterator[Event]:
        """The events stream, filtered, from ``from_position`` or from now; resumes by itself
        (see :mod:`flotilla.events`). Runs until the caller stops iterating."""
        return events_watch(
            self,
            queues=queues,
            task_names=task_names,
            kinds=kinds,
            from_position=from_position,
        )

    # ---- the retry loop -----------------------------------------------------------------

    def _unary(
        self, call: Callable[[_rpc.QueueStub, float], T], task_id: Optional[int] = None
    ) -> T:
        """Runs one call: on the current node, then after each transient failure on the next
        node after a backoff, until it succeeds, fails for good, or the policy's time is up."""
        backoff = Backoff(self.retry, time.monotonic())
        node = self._node()
        while True:
            try:
                return call(self._stub(node), self.request_timeout)
            except grpc.RpcError as e:
                code = e.code() if isinstance(e, grpc.Call) else None
                if not is_transient(code):
                    raise _final_error(e, task_id) from None
                node = self._retry_after(node, backoff, describe(e), None)

    def _retry_after(
        self, node: int, backoff: Backoff, failure: str, deadline: Optional[float]
    ) -> int:
        """Books a transient failure of ``node``, sleeps the backoff (never past ``deadline``)
        and returns the node to try next; raises when the policy's time is up."""
        delay = backoff.on_failure(time.monotonic(), self._jitter())
        if delay is None:
            raise Unavailable(backoff.attempts, f"{self.addrs[node]}: {failure}")
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= delay:
                time.sleep(max(left, 0.0))
                raise ResultTimeout(f"timed out while nodes were unavailable: {failure}")
        nxt = (node + 1) % len(self.addrs)
        with self._lock:
            if self._current == node:
                self._current = nxt
        time.sleep(delay)
        return nxt

    def _node(self) -> int:
        with self._lock:
            return self._current

    def _jitter(self) -> float:
        with self._lock:
            return self._random.random()


def _submit(request: qpb.SubmitRequest, stub: _rpc.QueueStub, timeout: float) -> qpb.SubmitResponse:
    return stub.submit(request, timeout=timeout)


def _find_by_keys(
    request: qpb.FindTasksByIdempotencyKeyRequest, stub: _rpc.QueueStub, timeout: float
) -> qpb.FindTasksByIdempotencyKeyResponse:
    return stub.find_tasks_by_idempotency_key(request, timeout=timeout)


def _cancel(request: qpb.CancelRequest, stub: _rpc.QueueStub, timeout: float) -> qpb.CancelResponse:
    return stub.cancel(request, timeout=timeout)


def _revoke(request: opb.RevokeRequest, stub: _rpc.QueueStub, timeout: float) -> opb.RevokeResponse:
    return stub.revoke(request, timeout=timeout)


def _final_error(e: grpc.RpcError, task_id: Optional[int]) -> Exception:
    """The one mapping from a final gRPC status to an SDK error."""
    code = e.code() if isinstance(e, grpc.Call) else None
    details = (e.details() if isinstance(e, grpc.Call) else None) or str(e)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgument(details)
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return Unauthenticated(code.name, details)
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return PermissionDenied(code.name, details)
    if code == grpc.StatusCode.NOT_FOUND and task_id is not None:
        return TaskNotFound(task_id)
    return ServerError(code.name if code is not None else "UNKNOWN", details)
