"""A fake ``WorkerService``: the node's side of the worker protocol, played by the test.

Deliberately dumb: it grants nothing by itself, and acknowledges, pings or aborts only when the
test says so. Each accepted stream is a :class:`FakeSession`; the test reads what the worker
sent with :meth:`FakeSession.expect` and answers with :meth:`FakeSession.send`, so every test
spells out the exact message sequence of worker.proto that it checks.

It checks the worker's side of the sequence as the node would (a ``Hello`` first and only
once, at most one result per task sent or resumed in the session, none for a task it was not
sent, at most one Drain): a breach is a test failure (:meth:`FakeSession.expect` raises it),
not a ``WorkerError``, so the test shows where the worker went wrong.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any, Optional, Union

import grpc

from flotilla._rpc import WORKER_SERVICE
from flotilla.v1 import worker_pb2 as wpb

_Out = Union[wpb.NodeMessage, tuple[grpc.StatusCode, str], None]


def task(task_id: int, name: str, args: bytes, attempt: int = 1) -> wpb.Task:
    return wpb.Task(
        task_id=task_id,
        attempt=attempt,
        name=name,
        queue="default",
        args=args,
        retries_left=2,
        headers={"trace": "t1"},
    )


class FakeSession:
    def __init__(self) -> None:
        self.inbox: queue.Queue[Optional[wpb.WorkerMessage]] = queue.Queue()
        self.outbox: queue.Queue[_Out] = queue.Queue()
        self.worker_closed = threading.Event()
        #: Breaches of the sequence by the worker, found as its messages arrive.
        self.violations: list[str] = []
        self.hello: Optional[wpb.Hello] = None
        #: Leases the worker may answer: granted (or resumed) and not answered yet.
        self.unanswered: set[tuple[int, int]] = set()
        self.answered: set[tuple[int, int]] = set()
        self.drain_seen = False
        #: The call ended by the node's own end (``end``), or by the worker's cancel.
        self.ended_by_node = threading.Event()
        self.cancelled = threading.Event()
        self._lock = threading.Lock()

    # ---- the node's messages -------------------------------------------------------------

    def send(self, **fields: Any) -> None:
        """Sends one NodeMessage, e.g. ``send(ping=wpb.Ping(nonce=1))``."""
        self.outbox.put(wpb.NodeMessage(**fields))

    def welcome(self, ping_interval_ms: int = 10_000, max_result_bytes: int = 1 << 20) -> None:
        self.send(
            welcome=wpb.Welcome(
                session=1,
                node_id=1,
                lease_ms=30_000,
                ping_interval_ms=ping_interval_ms,
                max_result_bytes=max_result_bytes,
                protocol_version=1,
            )
        )

    def grant(self, task_id: int, name: str, args: bytes, attempt: int = 1) -> None:
        """Grants one task (a ``Tasks`` message of one)."""
        self.grant_many([task(task_id, name, args, attempt)])

    def grant_many(self, tasks: list[wpb.Task]) -> None:
        """Grants tasks in one ``Tasks`` message."""
        with self._lock:
            for t in tasks:
                self.unanswered.add((t.task_id, t.attempt))
        self.send(tasks=wpb.Tasks(tasks=tasks))

    def ack(
        self, task_id: int, attempt: int = 1, status: int = wpb.ResultAck.STATUS_ACCEPTED
    ) -> None:
        self.ack_many([(task_id, attempt)], status)

    def ack_many(
        self, leases: list[tuple[int, int]], status: int = wpb.ResultAck.STATUS_ACCEPTED
    ) -> None:
        acks = [wpb.ResultAck(task_id=t, attempt=a, status=status) for t, a in leases]
        self.send(acks=wpb.Acks(acks=acks))

    def break_stream(self, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> None:
        """Ends the stream with an error status, as a failing node or a refusal does."""
        self.outbox.put((code, "fake node: stream broken"))

    def refuse(self, message: str, code: grpc.StatusCode) -> None:
        """A ``WorkerError`` saying why, then the stream ends with ``code``."""
        self.send(error=wpb.WorkerError(message=message))
        self.break_stream(code)

    def end(self) -> None:
        """Ends the stream cleanly (after Drained)."""
        self.outbox.put(None)

    # ---- the worker's messages -----------------------------------------------------------

    def expect(self, kind: str, timeout: float = 10.0) -> Any:
        """The next message the worker sent, which must be of ``kind`` (pongs are skipped
        unless asked for); returns its payload (e.g. the Hello)."""
        while True:
            m = self.inbox.get(timeout=timeout)
            self.check()
            assert m is not None, f"worker closed its side while {kind} was expected"
            got = m.WhichOneof("msg")
            if got == "pong" and kind != "pong":
                continue
            assert got == kind, f"expected {kind}, got {got}: {m}"
            return getattr(m, kind)

    def expect_results(self, n: int, timeout: float = 10.0) -> dict[int, wpb.TaskResult]:
        """The next ``n`` results, in as many ``Results`` messages as the worker used, by task
        id."""
        got: dict[int, wpb.TaskResult] = {}
        while len(got) < n:
            for r in self.expect("results", timeout).results:
                assert r.task_id not in got, f"two results for task {r.task_id}"
                got[r.task_id] = r
        assert len(got) == n, f"{len(got)} results, {n} expected"
        return got

    def expect_nothing(self, seconds: float) -> None:
        try:
            m = self.inbox.get(timeout=seconds)
        except queue.Empty:
            self.check()
            return
        raise AssertionError(f"unexpected message from the worker: {m}")

    def expect_closed(self, timeout: float = 10.0) -> None:
        m = self.inbox.get(timeout=timeout)
        self.check()
        assert m is None, f"expected the worker to close its side, got {m}"

    def check(self) -> None:
        assert not self.violations, f"the worker broke the sequence: {self.violations}"

    def observe(self, m: wpb.WorkerMessage) -> None:
        """Checks one message of the worker against the sequence (the reader thread)."""
        kind = m.WhichOneof("msg")
        with self._lock:
            if self.hello is None:
                if kind != "hello":
                    self.violations.append(f"first message is {kind}, not hello")
                    return
                self.hello = m.hello
                for lease in m.hello.resume:
                    self.unanswered.add((lease.task_id, lease.attempt))
                return
            if kind == "hello":
                self.violations.append("a second hello")
            elif kind == "results":
                for r in m.results.results:
                    lease = (r.task_id, r.attempt)
                    if lease in self.answered:
                        self.violations.append(f"second result for {lease}")
                    elif lease not in self.unanswered:
                        self.violations.append(f"result for {lease}, never sent")
                    self.unanswered.discard(lease)
                    self.answered.add(lease)
            elif kind == "drain":
                if self.drain_seen:
                    self.violations.append("a second drain")
                self.drain_seen = True


class FakeNode:
    """A gRPC server on a loopback port whose only service is the fake WorkerService."""

    def __init__(self) -> None:
        self.sessions: queue.Queue[FakeSession] = queue.Queue()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        handler = grpc.method_handlers_generic_handler(
            WORKER_SERVICE,
            {
                "Session": grpc.stream_stream_rpc_method_handler(
                    self._session,
                    request_deserializer=wpb.WorkerMessage.FromString,
                    response_serializer=wpb.NodeMessage.SerializeToString,
                )
            },
        )
        self.server.add_generic_rpc_handlers((handler,))
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.addr = f"127.0.0.1:{port}"
        self.server.start()

    def accept(self, timeout: float = 10.0) -> FakeSession:
        """The next session a worker opened."""
        return self.sessions.get(timeout=timeout)

    def stop(self) -> None:
        self.server.stop(grace=None)

    def _session(
        self, requests: Iterator[wpb.WorkerMessage], context: grpc.ServicerContext
    ) -> Iterator[wpb.NodeMessage]:
        s = FakeSession()

        def ended() -> None:
            if not s.ended_by_node.is_set():
                s.cancelled.set()  # the worker cancelled, or the connection broke
            s.outbox.put(None)  # unblock

        context.add_callback(ended)

        def read() -> None:
            try:
                for m in requests:
                    s.observe(m)
                    s.inbox.put(m)
            except grpc.RpcError:
                pass
            s.inbox.put(None)

        threading.Thread(target=read, daemon=True).start()
        self.sessions.put(s)
        while True:
            item = s.outbox.get()
            if item is None:
                s.ended_by_node.set()
                return
            if isinstance(item, tuple):
                context.abort(item[0], item[1])
            yield item
