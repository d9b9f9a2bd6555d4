"""Celery on Flotilla without a Celery worker: the mapping rules (messages, leases, outcomes),
the inbox's frames, the publishers' group commit, the transport found from the URL alone,
publishing to a real node and reading results back through the backend. The node's built-in
``echo`` stands in for a consumer: it returns the Kombu message it was given, which is what a
Celery worker receives. Consuming: test_celery_channel.py (Kombu against the fake node) and
test_celery_worker.py (stock workers against real clusters)."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeoutError

import flotilla
from flotilla.celery import inbox, outcomes
from flotilla.celery.mapping import (
    CELERY_MAX_RETRIES,
    LIMIT_GRACE_MS,
    NO_LIMIT_MS,
    SUBMITTED,
    UnsupportedMessage,
    celery_meta,
    lease_of,
    lease_tag,
    message_from_task,
    revoked_ids,
    spec_from_message,
)
from flotilla.celery.nodes import Submitter, nodes_from_urls
from flotilla.celery.transport import message_body
from flotilla.info import Submitted, TaskInfo, TaskState
from flotilla.v1 import queue_pb2 as qpb
from flotilla.v1 import worker_pb2 as wpb
from flotilla.worker.outcome import Failure, Released, Success
from nodes import NodeProcess, free_port


def message(**headers: Any) -> dict[str, Any]:
    return {
        "body": "W1s0LCA0XSwge30sIHt9XQ==",
        "content-type": "application/json",
        "headers": {"task": "tasks.add", "id": "c-1", "retries": 0, **headers},
        "properties": {"priority": 3, "body_encoding": "base64", "delivery_info": {}},
    }


def test_a_message_becomes_one_task_keyed_by_its_celery_id() -> None:
    eta = "2030-01-02T03:04:05.006000+00:00"
    spec = spec_from_message("celery", message(eta=eta, timelimit=[10, 5], parent_id=None))
    assert (spec.name, spec.queue, spec.priority) == ("tasks.add", "celery", 3)
    assert spec.idempotency_key == "celery:c-1"
    assert spec.eta_unix_ms == int(datetime.fromisoformat(eta).timestamp() * 1000)
    assert spec.time_limit_ms == 10_000 + LIMIT_GRACE_MS
    assert spec.max_retries == CELERY_MAX_RETRIES
    assert dict(spec.headers)["task"] == "tasks.add"
    assert dict(spec.headers)["timelimit"] == "[10, 5]"
    assert dict(spec.headers)["parent_id"] == "null"
    plain = spec_from_message("q", message())
    assert (plain.eta_unix_ms, plain.time_limit_ms) == (0, NO_LIMIT_MS)
    with pytest.raises(UnsupportedMessage):
        spec_from_message("q", {"body": "", "headers": {}, "properties": {}})


def info(state: TaskState, result: bytes = b"", error: str = "") -> TaskInfo:
    return TaskInfo(7, "tasks.add", "celery", state, 1, 0, result, error, 1, 1_700_000_000_000)


def test_flotilla_states_read_as_celery_meta() -> None:
    def decode(b: bytes) -> Any:
        import json

        return json.loads(b)

    def exc(d: dict[str, Any]) -> Exception:
        return RuntimeError(d["exc_type"], d["exc_message"])

    assert celery_meta(info(TaskState.PENDING), "c", decode, exc)["status"] == "PENDING"
    assert celery_meta(info(TaskState.LEASED), "c", decode, exc)["status"] == "STARTED"
    done = celery_meta(info(TaskState.SUCCEEDED, b"8"), "c", decode, exc)
    assert (done["status"], done["result"], done["task_id"]) == ("SUCCESS", 8, "c")
    assert done["date_done"].startswith("2023-11-14T22:13:20")
    dead = celery_meta(info(TaskState.DEAD, error="boom"), "c", decode, exc)
    assert dead["status"] == "FAILURE"
    assert dead["result"].args == ("TaskFailed", "boom")
    celery_error = '{"exc_type": "ValueError", "exc_message": ["x"], "exc_module": "builtins"}'
    dead = celery_meta(info(TaskState.DEAD, error=celery_error), "c", decode, exc)
    assert dead["result"].args == ("ValueError", ["x"])
    assert celery_meta(info(TaskState.CANCELLED), "c", decode, exc)["status"] == "REVOKED"


def test_node_lists_from_urls() -> None:
    assert nodes_from_urls(["flotilla://a:1,b:2"]) == ["a:1", "b:2"]
    assert nodes_from_urls(["flotilla://a:1;flotilla://b:2", "flotilla://b:2"]) == ["a:1", "b:2"]
    assert nodes_from_urls(["flotilla://host/"]) == ["host:7000"]
    assert nodes_from_urls([""]) == ["127.0.0.1:7000"]


def test_the_url_alone_finds_the_transport_in_a_fresh_interpreter() -> None:
    code = (
        "import kombu, sys; "
        "assert 'flotilla' not in sys.modules, 'the hook imports nothing of ours up front'; "
        "c = kombu.Connection('flotilla://127.0.0.1:1,127.0.0.1:2'); "
        "print(type(c.transport).__module__, c.transport.driver_type)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split() == ["flotilla.celery.transport", "flotilla"]


@pytest.fixture
def celery_app(node: NodeProcess) -> Iterator[Celery]:
    url = f"flotilla://{node.addr}"
    app = Celery("tasks", broker=url, backend=url)
    yield app
    app.close()


def test_publish_then_get_the_result_through_the_backend(celery_app: Celery) -> None:
    r = celery_app.send_task("echo", args=[4, 4], kwargs={"k": 1}, priority=5)
    sent = r.get(timeout=10)  # echo returns the message a Celery worker will be handed
    assert sent["headers"]["task"] == "echo"
    assert sent["headers"]["id"] == r.id
    assert sent["properties"]["priority"] == 5
    args, kwargs, _embed = message_body(sent)
    assert (args, kwargs) == ([4, 4], {"k": 1})
    assert r.state == "SUCCESS"
    assert r.successful()


def test_a_celery_id_sent_twice_is_one_task(celery_app: Celery) -> None:
    first = celery_app.send_task("echo", args=[1], task_id="fixed-celery-id")
    first.get(timeout=10)
    task = SUBMITTED.get("fixed-celery-id")
    celery_app.send_task("echo", args=[2], task_id="fixed-celery-id")  # e.g. Celery's retry
    assert SUBMITTED.get("fixed-celery-id") == task
    assert message_body(first.get(timeout=10))[0] == [1]


def test_countdown_and_eta_are_kept_by_the_cluster(celery_app: Celery) -> None:
    r = celery_app.send_task("echo", args=[1], countdown=60)
    assert r.state == "PENDING"
    flotilla_id = SUBMITTED.get(r.id)
    assert flotilla_id is not None
    from flotilla.celery.nodes import client_for

    backend = celery_app.backend
    assert client_for(backend.nodes).get(flotilla_id).state is TaskState.SCHEDULED
    with pytest.raises(CeleryTimeoutError):
        r.get(timeout=0.2)
    eta = datetime.now(timezone.utc) + timedelta(milliseconds=300)
    assert message_body(celery_app.send_task("echo", args=[2], eta=eta).get(timeout=10))[0] == [2]


#: A process that published nothing reads results by Celery id: one done, one published
#: only after it started waiting (a chain's later step, say), one never published.
READ_ELSEWHERE = """
import json, sys
from celery import Celery
url = sys.argv[1]
app = Celery("elsewhere", broker=url, backend=url)
done = app.AsyncResult(sys.argv[2])
print(json.dumps(done.get(timeout=10)["headers"]["id"]), done.state, flush=True)
print(app.AsyncResult("never-published").state, flush=True)
late = app.AsyncResult(sys.argv[3])
print(json.dumps(late.get(timeout=30, interval=0.05)["headers"]["id"]), late.state, flush=True)
"""


def test_any_process_reads_a_result_by_its_celery_id(celery_app: Celery, node: NodeProcess) -> None:
    done = celery_app.send_task("echo", args=[1], task_id="read-elsewhere-done")
    done.get(timeout=10)
    url = f"flotilla://{node.addr}"
    reader = subprocess.Popen(
        [sys.executable, "-c", READ_ELSEWHERE, url, done.id, "read-elsewhere-late"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout is not None
        assert reader.stdout.readline().split() == ['"read-elsewhere-done"', "SUCCESS"]
        assert reader.stdout.readline().split() == ["PENDING"]
        celery_app.send_task("echo", args=[2], task_id="read-elsewhere-late")
        out, _ = reader.communicate(timeout=60)
        assert out.split() == ['"read-elsewhere-late"', "SUCCESS"]
        assert reader.returncode == 0
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()


def test_revoke_cancels_a_task_that_has_not_started(celery_app: Celery) -> None:
    """``app.control.revoke`` (a broadcast: Flotilla has no fanout) cancels by Celery id."""
    waiting = celery_app.send_task("echo", args=[1], countdown=60)
    other = celery_app.send_task("echo", args=[2], countdown=60)
    assert waiting.state == "PENDING"
    celery_app.control.revoke(waiting.id)
    assert waiting.state == "REVOKED"
    with pytest.raises(Exception, match="cancelled"):
        waiting.get(timeout=10)
    other.revoke()  # AsyncResult.revoke: the same broadcast
    assert other.state == "REVOKED"
    ran = celery_app.send_task("echo", args=[3])
    ran.get(timeout=10)
    celery_app.control.revoke(ran.id)  # finished already: nothing to cancel
    assert ran.state == "SUCCESS"


def test_a_failed_task_raises_through_celery(celery_app: Celery) -> None:
    r = celery_app.send_task("fail")  # the built-in refuses a Celery message as arguments
    with pytest.raises(Exception, match="invalid arguments") as e:
        r.get(timeout=10)
    assert type(e.value).__name__ == "TaskFailed"
    assert r.state == "FAILURE"


def test_an_unknown_task_name_is_refused_at_publish(celery_app: Celery) -> None:
    with pytest.raises(Exception, match=r"tasks\.nobody"):
        celery_app.send_task("tasks.nobody")


def test_several_nodes_in_the_url_fail_over(node: NodeProcess) -> None:
    url = f"flotilla://127.0.0.1:{free_port()},{node.addr}"
    app = Celery("tasks", broker=url, backend=url)
    try:
        r = app.send_task("echo", args=["over"])
        assert message_body(r.get(timeout=10))[0] == ["over"]
    finally:
        app.close()


def test_revoke_broadcasts_name_their_ids() -> None:
    def command(method: str, **arguments: Any) -> dict[str, Any]:
        return {"body": json.dumps({"method": method, "arguments": arguments})}

    assert revoked_ids(command("revoke", task_id="a")) == ["a"]
    assert revoked_ids(command("revoke", task_id=["a", "b"], terminate=True)) == ["a", "b"]
    assert revoked_ids({"body": b'{"method": "revoke", "arguments": {"task_id": "c"}}'}) == ["c"]
    assert revoked_ids(command("ping")) == []
    assert revoked_ids({"body": "not json"}) == []


def test_a_lease_travels_as_the_delivery_tag() -> None:
    assert lease_tag(12, 3) == "flotilla:12:3"
    assert lease_of(lease_tag(12, 3)) == (12, 3)
    for tag in ("kombu-uuid", "flotilla:x:1", "flotilla:1", None, 7):
        assert lease_of(tag) is None


def test_a_granted_task_becomes_the_message_it_was_published_as() -> None:
    published = message(retries=1)
    published["properties"]["delivery_tag"] = "kombu-uuid"
    published["properties"]["delivery_info"] = {"exchange": "", "routing_key": "celery"}
    task = wpb.Task(task_id=4, attempt=1, queue="celery", args=json.dumps(published).encode())
    m = message_from_task(task)
    assert m["properties"]["delivery_tag"] == "flotilla:4:1"
    assert m["headers"]["retries"] == 1 and m["properties"]["delivery_info"]["redelivered"] is False
    assert m["body"] == published["body"]
    again = message_from_task(wpb.Task(task_id=4, attempt=3, queue="celery", args=task.args))
    assert again["headers"]["retries"] == 3 and again["properties"]["delivery_info"]["redelivered"]
    with pytest.raises(ValueError, match="not a Kombu message"):
        message_from_task(wpb.Task(task_id=5, attempt=1, args=b"[1, 2]"))


def test_what_the_backend_stores_answers_the_lease() -> None:
    def encode(value: Any) -> str:
        return json.dumps(value)

    assert outcomes.stored("SUCCESS", {"a": 1}, encode, "c") == Success(b'{"a": 1}')
    failed = outcomes.stored("FAILURE", ValueError("bad", 2), encode, "c")
    assert isinstance(failed, Failure) and not failed.retryable and failed.kind == ""
    assert json.loads(failed.message) == {
        "exc_type": "ValueError",
        "exc_message": ["bad", 2],
        "exc_module": "builtins",
    }
    document = {"exc_type": "TaskRevokedError", "exc_message": ["expired"], "exc_module": "x"}
    revoked = outcomes.stored("REVOKED", document, encode, "c")
    assert isinstance(revoked, Failure) and json.loads(revoked.message) == document
    retry = outcomes.stored("RETRY", KeyError("k"), encode, "c")
    assert isinstance(retry, Failure) and retry.retryable
    assert outcomes.stored("STARTED", {"pid": 1}, encode, "c") is None


def test_a_retry_countdown_becomes_its_delay_rounded_up_and_never_0() -> None:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()
    assert outcomes.retry_delay_ms("2026-01-01T00:00:02.0001+00:00", now) == 2001
    assert outcomes.retry_delay_ms("2026-01-01T00:00:02", now) == 2000  # naive: UTC
    assert outcomes.retry_delay_ms("2025-12-31T23:59:00+00:00", now) == 1  # due already
    # countdown=0 publishes no eta: at once, not the task's backoff (which 0 would mean).
    assert outcomes.retry_delay_ms(None, now) == 1


def test_a_task_that_stored_nothing_is_settled_by_its_final_state() -> None:
    assert outcomes.settled("SUCCESS", 5, "c") == Success(b"null")
    assert outcomes.settled("IGNORED", None, "c") == Success(b"null")
    assert outcomes.settled("REJECTED", None, "c") is None  # the main process rejects it
    failed = outcomes.settled("FAILURE", RuntimeError("x"), "c")
    assert isinstance(failed, Failure) and not failed.retryable
    retried = outcomes.settled("RETRY", RuntimeError("x"), "c")
    assert isinstance(retried, Failure) and retried.retryable


def test_a_request_names_its_lease_only_when_delivered_by_flotilla() -> None:
    class Context:
        def __init__(self) -> None:
            self.properties = {"delivery_tag": "flotilla:3:2"}

    assert outcomes.lease_of_request(Context()) == (3, 2)
    assert outcomes.lease_of_request({"properties": {"delivery_tag": "flotilla:3:2"}}) == (3, 2)
    assert outcomes.lease_of_request({"properties": {"delivery_tag": "amqp-7"}}) is None
    assert outcomes.lease_of_request(None) is None


def test_a_revoked_task_reads_as_revoked() -> None:
    error = '{"exc_type": "TaskRevokedError", "exc_message": ["expired"], "exc_module": "x"}'
    meta = celery_meta(info(TaskState.DEAD, error=error), "c", bytes, lambda d: d)
    assert meta["status"] == "REVOKED"


@pytest.mark.parametrize(
    "outcome",
    [Success(b"\x00 bytes"), Failure("m", "Kind", False, 250), Failure("", "", True), Released()],
)
def test_inbox_frames_carry_every_outcome(outcome: Any) -> None:
    frame = inbox.encode((2**40, 7), outcome)
    head_len, data_len = struct.unpack("!II", frame[:8])
    head, data = frame[8 : 8 + head_len], frame[8 + head_len :]
    assert len(data) == data_len
    assert inbox.decode(head, data) == ((2**40, 7), outcome)


class SlowClient:
    """Submits after the test lets it (the first call waits for ``gate``); records batches."""

    def __init__(self) -> None:
        self.addrs = ["fake"]
        self.gate = threading.Event()
        self.batches: list[list[str]] = []

    def submit(self, specs: list[qpb.TaskSpec]) -> list[Submitted]:
        if not self.batches:
            self.batches.append([])  # the first call is in flight
            assert self.gate.wait(10)
            self.batches[0] = [s.name for s in specs]
        else:
            self.batches.append([s.name for s in specs])
        if any(s.name == "bad" for s in specs):
            raise flotilla.InvalidArgument("unknown task name 'bad'")
        return [Submitted(len(self.batches) * 100 + i, False) for i in range(len(specs))]


def test_messages_published_while_a_submit_is_in_flight_share_the_next_one() -> None:
    client = SlowClient()
    submitter = Submitter(client)  # type: ignore[arg-type]
    results: dict[str, Any] = {}

    def publish(name: str) -> None:
        try:
            results[name] = submitter.submit(qpb.TaskSpec(name=name))
        except flotilla.InvalidArgument as e:
            results[name] = e

    threads = [threading.Thread(target=publish, args=(n,)) for n in ("first", "a", "bad", "b")]
    threads[0].start()
    deadline = time.monotonic() + 10
    while not client.batches:  # the first submit is in flight
        assert time.monotonic() < deadline
        time.sleep(0.01)
    for t in threads[1:]:
        t.start()
    while len(submitter._pending) < 3:  # the others wait for it
        assert time.monotonic() < deadline
        time.sleep(0.01)
    client.gate.set()
    for t in threads:
        t.join(10)
    assert client.batches[0] == ["first"]
    # The three waiting went in one Submit; "bad" refused it, so each was sent alone to find it.
    assert sorted(client.batches[1]) == ["a", "b", "bad"]
    assert sorted(map(tuple, client.batches[2:])) == [("a",), ("b",), ("bad",)]
    assert isinstance(results["bad"], flotilla.InvalidArgument)
    assert all(isinstance(results[n], Submitted) for n in ("first", "a", "b"))
