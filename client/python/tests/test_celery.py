"""Celery on Flotilla, the parts that need no WorkerService: the mapping rules, the transport
found from the URL alone, publishing to a real node and reading results back through the
backend. The node's built-in ``echo`` stands in for a consumer: it returns the Kombu message
it was given, which shows exactly what a Celery worker will receive."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeoutError

from flotilla.celery.mapping import (
    CELERY_MAX_RETRIES,
    LIMIT_GRACE_MS,
    NO_LIMIT_MS,
    SUBMITTED,
    UnsupportedMessage,
    celery_meta,
    spec_from_message,
)
from flotilla.celery.nodes import nodes_from_urls
from flotilla.celery.transport import message_body
from flotilla.info import TaskInfo, TaskState
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


def test_a_worker_cannot_consume_yet_and_says_why(celery_app: Celery) -> None:
    with celery_app.connection_for_read() as conn:
        channel = conn.default_channel
        with pytest.raises(NotImplementedError, match="WorkerService"):
            channel.basic_consume("celery", False, lambda m: None, "tag")
