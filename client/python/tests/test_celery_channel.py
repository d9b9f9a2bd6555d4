"""The consuming side of the ``flotilla://`` Kombu channel against the fake node (fake_node.py):
Kombu's calls (consume, ack, reject, restore on close) and the worker protocol messages they
become, message by message. No Celery worker: the test is Kombu's consumer."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from kombu import Connection

from fake_node import FakeNode, FakeSession
from flotilla.celery import outcomes
from flotilla.celery.transport import message_body
from flotilla.v1 import worker_pb2 as wpb
from flotilla.worker.outcome import Success

PREFETCH = 2


def celery_message(celery_id: str, *args: Any) -> bytes:
    """A message as the transport stored it at publish (what a granted task carries)."""
    import base64

    body = base64.b64encode(json.dumps([list(args), {}, {}]).encode()).decode()
    return json.dumps(
        {
            "body": body,
            "content-type": "application/json",
            "content-encoding": "utf-8",
            "headers": {"task": "tasks.add", "id": celery_id, "retries": 0, "lang": "py"},
            "properties": {
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": "kombu-uuid",
                "delivery_info": {"exchange": "", "routing_key": "celery"},
            },
        }
    ).encode()


def grant(session: FakeSession, task_id: int, attempt: int = 1, args: bytes = b"") -> None:
    task = wpb.Task(
        task_id=task_id,
        attempt=attempt,
        name="tasks.add",
        queue="celery",
        args=args or celery_message(f"c-{task_id}", task_id, 1),
        time_limit_ms=60_000,
    )
    session.grant_many([task])


class Consumer:
    """A Kombu connection consuming ``celery`` with prefetch 2; delivered messages in
    ``got``."""

    def __init__(self, addr: str) -> None:
        self.conn = Connection(f"flotilla://{addr}")
        self.channel = self.conn.channel()
        self.channel.basic_qos(0, PREFETCH, False)
        self.got: list[Any] = []
        self.channel.basic_consume("celery", False, self.got.append, "tag")

    def drain(self, n: int, timeout: float = 10.0) -> list[Any]:
        """Drain until ``n`` more messages were delivered."""
        want = len(self.got) + n
        while len(self.got) < want:
            try:
                self.conn.drain_events(timeout=timeout)
            except socket.timeout:
                raise AssertionError(f"{want - len(self.got)} messages not delivered") from None
        return self.got[want - n : want]

    def start(self, fake: FakeNode) -> tuple[FakeSession, wpb.Hello]:
        """The first drain opens the session."""
        with pytest.raises(socket.timeout):
            self.conn.drain_events(timeout=0.05)
        session = fake.accept()
        hello = session.expect("hello")
        session.welcome()
        return session, hello


@pytest.fixture
def fake() -> Iterator[FakeNode]:
    node = FakeNode()
    yield node
    node.stop()


@pytest.fixture
def consumer(fake: FakeNode) -> Iterator[Consumer]:
    c = Consumer(fake.addr)
    yield c
    session = c.channel._session
    c.conn.release()
    if session is not None:
        session.stop()
        assert session.finished.wait(10), "the session did not end"


def expect_drain_and_results(session: FakeSession, n: int) -> dict[int, wpb.TaskResult]:
    """A Drain and ``n`` results, in whatever order the worker sent them."""
    results: dict[int, wpb.TaskResult] = {}
    drained = False
    while not drained or len(results) < n:
        m = session.inbox.get(timeout=10)
        assert m is not None, "the worker closed its side"
        kind = m.WhichOneof("msg")
        if kind == "drain":
            drained = True
        elif kind == "results":
            results.update((r.task_id, r) for r in m.results.results)
    session.check()
    return results


def test_a_granted_task_is_delivered_as_its_message_with_the_lease_as_delivery_tag(
    fake: FakeNode, consumer: Consumer
) -> None:
    session, hello = consumer.start(fake)
    assert list(hello.queues) == ["celery"]
    # Two prefetch windows: what Kombu holds unacknowledged, and as many answers on their
    # way to commit.
    assert hello.concurrency == 2 * PREFETCH
    assert hello.name.startswith("celery-") and hello.agent.startswith("flotilla-python/")
    grant(session, 5, attempt=3)
    (m,) = consumer.drain(1)
    assert m.delivery_tag == "flotilla:5:3"
    assert m.headers["id"] == "c-5"
    assert m.headers["retries"] == 2, "retries counts the earlier attempts"
    assert m.delivery_info["redelivered"] is True
    assert message_body(m._raw)[0] == [5, 1]
    m.ack()
    session.expect_nothing(0.3)  # an ack is Kombu's bookkeeping
    outcomes.answer((5, 3), Success(b"6"))  # what the backend's store does
    r = session.expect_results(1)[5]
    assert (r.attempt, r.success) == (3, b"6")


def test_kombu_prefetch_limits_deliveries_until_an_ack(fake: FakeNode, consumer: Consumer) -> None:
    session, _ = consumer.start(fake)
    for t in (1, 2, 3):
        grant(session, t)
    first = consumer.drain(2)
    with pytest.raises(socket.timeout):
        consumer.conn.drain_events(timeout=0.2)  # two unacknowledged: no room
    first[0].ack()
    (third,) = consumer.drain(1)
    assert third.delivery_tag == "flotilla:3:1"


def test_reject_with_requeue_releases_and_without_fails_for_good(
    fake: FakeNode, consumer: Consumer
) -> None:
    session, _ = consumer.start(fake)
    grant(session, 1)
    grant(session, 2)
    requeued, rejected = consumer.drain(2)
    requeued.reject(requeue=True)
    rejected.reject()
    results = session.expect_results(2)
    assert results[1].WhichOneof("outcome") == "released"
    failure = results[2].failure
    assert not failure.retryable and failure.kind == ""
    assert json.loads(failure.message)["exc_type"] == "Reject"


def test_closing_the_channel_releases_what_was_not_acked_and_drains(
    fake: FakeNode, consumer: Consumer
) -> None:
    session, _ = consumer.start(fake)
    grant(session, 1)
    (m,) = consumer.drain(1)
    grant(session, 2)  # granted, never delivered: Kombu's prefetch is not full, but no drain
    live = consumer.channel._session
    consumer.channel.close()
    results = expect_drain_and_results(session, 2)
    assert {r.WhichOneof("outcome") for r in results.values()} == {"released"}
    session.ack_many([(1, 1), (2, 1)])
    session.send(drained=wpb.Drained())
    session.end()
    assert live is not None and live.finished.wait(10), "drained, the session ends"
    assert m.delivery_tag == "flotilla:1:1"


def test_a_pool_process_reports_through_the_inbox(fake: FakeNode, consumer: Consumer) -> None:
    session, _ = consumer.start(fake)
    grant(session, 9)
    consumer.drain(1)
    pid = os.fork()
    if pid == 0:  # a pool process: no session here, so the outcome goes to its parent
        code = 1
        try:
            outcomes.answer((9, 1), Success(b'"from the child"'))
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert session.expect_results(1)[9].success == b'"from the child"'


def test_a_task_that_is_not_a_celery_message_fails_for_good(
    fake: FakeNode, consumer: Consumer
) -> None:
    session, _ = consumer.start(fake)
    grant(session, 4, args=b"[1, 2]")
    failure = session.expect_results(1)[4].failure
    assert failure.kind == "UnsupportedMessage" and not failure.retryable


def test_an_aborted_task_not_yet_delivered_is_dropped(fake: FakeNode, consumer: Consumer) -> None:
    session, _ = consumer.start(fake)
    grant(session, 1)
    grant(session, 2)
    grant(session, 3)
    session.send(abort=wpb.Abort(task_id=3, attempt=1, reason="lease lost"))
    session.send(ping=wpb.Ping(nonce=7))
    assert session.expect("pong").nonce == 7  # the session took what came before
    delivered = consumer.drain(2)
    delivered[0].ack()
    with pytest.raises(socket.timeout):
        consumer.conn.drain_events(timeout=0.3)
    assert [m.delivery_tag for m in consumer.got] == ["flotilla:1:1", "flotilla:2:1"]
