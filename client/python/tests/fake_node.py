"""A fake ``WorkerService``: the node's side of the worker protocol, played by the test.

Deliberately dumb: it grants nothing by itself, and acknowledges, pings or aborts only when the
test says so. Each accepted stream is a :class:`FakeSession`; the test reads what the worker
sent with :meth:`FakeSession.expect` and answers with :meth:`FakeSession.send`, so every test
spells out the exact message sequence of worker.proto that it checks.
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


class FakeSession:
    def __init__(self) -> None:
        self.inbox: queue.Queue[Optional[wpb.WorkerMessage]] = queue.Queue()
        self.outbox: queue.Queue[_Out] = queue.Queue()
        self.worker_closed = threading.Event()

    def send(self, **fields: Any) -> None:
        """Sends one NodeMessage, e.g. ``send(task=wpb.Task(...))``."""
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
        self.send(
            task=wpb.Task(
                task_id=task_id,
                attempt=attempt,
                name=name,
                queue="default",
                args=args,
                retries_left=2,
                headers={"trace": "t1"},
            )
        )

    def ack(
        self, task_id: int, attempt: int = 1, status: int = wpb.ResultAck.STATUS_ACCEPTED
    ) -> None:
        self.send(ack=wpb.ResultAck(task_id=task_id, attempt=attempt, status=status))

    def break_stream(self, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> None:
        """Ends the stream with an error status, as a failing node or a refusal does."""
        self.outbox.put((code, "fake node: stream broken"))

    def end(self) -> None:
        """Ends the stream cleanly (after Drained)."""
        self.outbox.put(None)

    def expect(self, kind: str, timeout: float = 10.0) -> Any:
        """The next message the worker sent, which must be of ``kind`` (pongs are skipped
        unless asked for); returns its payload (e.g. the Hello)."""
        while True:
            m = self.inbox.get(timeout=timeout)
            assert m is not None, f"worker closed its side while {kind} was expected"
            got = m.WhichOneof("msg")
            if got == "pong" and kind != "pong":
                continue
            assert got == kind, f"expected {kind}, got {got}: {m}"
            return getattr(m, kind)

    def expect_nothing(self, seconds: float) -> None:
        try:
            m = self.inbox.get(timeout=seconds)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected message from the worker: {m}")

    def expect_closed(self, timeout: float = 10.0) -> None:
        m = self.inbox.get(timeout=timeout)
        assert m is None, f"expected the worker to close its side, got {m}"


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
        context.add_callback(lambda: s.outbox.put(None))  # unblock when the call ends

        def read() -> None:
            try:
                for m in requests:
                    s.inbox.put(m)
            except grpc.RpcError:
                pass
            s.inbox.put(None)

        threading.Thread(target=read, daemon=True).start()
        self.sessions.put(s)
        while True:
            item = s.outbox.get()
            if item is None:
                return
            if isinstance(item, tuple):
                context.abort(item[0], item[1])
            yield item
