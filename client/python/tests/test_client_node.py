"""The client side against a real node: submit, results, errors, idempotency, batches,
failover. Task names are the node's built-ins (``echo``, ``sleep``, ``fail``, ``noop``) until
remote workers and the task catalogue land."""

from __future__ import annotations

import socket
import time
from datetime import datetime, timedelta, timezone

import pytest

import flotilla
from flotilla import AsyncResult, Flotilla, TaskState
from nodes import NodeProcess, free_port


def test_a_python_call_reaches_the_rust_builtins(app: Flotilla) -> None:
    @app.task(name="echo")
    def echo(*args: object, **kwargs: object) -> object:
        raise AssertionError("runs on the node")

    # One positional value and keywords-only calls arrive unwrapped (docs/PAYLOADS.md).
    assert echo.delay("hi").get(timeout=10) == "hi"
    assert echo.delay([1, 2]).get(timeout=10) == [1, 2]
    assert echo.delay(hello="world").get(timeout=10) == {"hello": "world"}
    assert echo.delay(2, 2).get(timeout=10) == {"args": [2, 2], "kwargs": {}}
    assert echo.delay().get(timeout=10) is None
    assert app.send_task("sleep", kwargs={"ms": 1}).get(timeout=10) is None


def test_a_dead_task_raises_its_remote_message(app: Flotilla) -> None:
    r = app.send_task("fail", kwargs={"message": "boom"})
    with pytest.raises(flotilla.TaskFailed, match="boom") as e:
        r.get(timeout=10)
    assert e.value.task_id == r.id and e.value.message == "boom"
    assert r.state is TaskState.DEAD and r.ready() and r.failed()
    assert isinstance(r.result, flotilla.TaskFailed)
    assert isinstance(r.get(timeout=1, propagate=False), flotilla.TaskFailed)


def test_bad_arguments_for_a_builtin_are_fatal_at_once(app: Flotilla) -> None:
    r = app.send_task("sleep", args=[5], max_retries=3)
    with pytest.raises(flotilla.TaskFailed, match="invalid arguments"):
        r.get(timeout=10)
    assert r.info().attempt == 1


def test_state_result_and_ready_follow_the_task(app: Flotilla) -> None:
    r = app.send_task("sleep", kwargs={"ms": 300})
    assert r.state in (TaskState.PENDING, TaskState.LEASED)
    assert not r.ready() and r.result is None
    with pytest.raises(flotilla.ResultTimeout):
        r.get(timeout=0.05)
    assert r.get(timeout=10) is None
    assert r.successful() and r.state is TaskState.SUCCEEDED


def test_an_unknown_name_is_refused_with_the_nodes_message(app: Flotilla) -> None:
    with pytest.raises(flotilla.InvalidArgument, match="no_such_task"):
        app.send_task("no_such_task")


def test_unknown_ids_are_not_found(app: Flotilla) -> None:
    with pytest.raises(flotilla.TaskNotFound):
        AsyncResult(987_654_321, app).get(timeout=5)
    with pytest.raises(flotilla.TaskNotFound):
        AsyncResult(987_654_321, app).info()


def test_an_idempotency_key_makes_a_repeat_return_the_first_task(app: Flotilla) -> None:
    first = app.send_task("echo", ["once"], idempotency_key="py-key-1")
    again = app.send_task("echo", ["twice"], idempotency_key="py-key-1")
    assert (again.id, again.duplicate, first.duplicate) == (first.id, True, False)
    assert again.get(timeout=10) == "once"
    # A signature fixes its key when made: sending it twice is one task.
    sig = app.signature("echo", ["sig"])
    assert sig.apply_async().id == sig.apply_async().id


def test_any_process_finds_a_task_by_its_idempotency_key(app: Flotilla) -> None:
    task = app.send_task("echo", ["found"], idempotency_key="py-key-find")
    task.get(timeout=10)
    other = flotilla.Client(app.client.addrs)  # holds no memory of the submit
    try:
        assert other.find_by_idempotency_keys(["py-key-find", "py-key-never-sent"]) == [
            task.id,
            None,
        ]
        assert other.find_by_idempotency_keys(["py-key-find"], stale_ok=True) == [task.id]
        assert other.find_by_idempotency_keys([]) == []
    finally:
        other.close()


def test_batches_keep_order_across_requests(node: NodeProcess) -> None:
    app = Flotilla(node.addr, max_batch_size=100)
    try:
        calls = [app.signature("echo", [i]) for i in range(250)]
        results = app.submit_many(calls)
        assert len({r.id for r in results}) == 250
        done = {info.id: info.result() for info in app.client.wait([r.id for r in results], 30)}
        assert [done[r.id] for r in results] == list(range(250))
        # Sent again (as after a lost reply), the same calls are the same tasks.
        again = app.submit_many(calls)
        assert [r.id for r in again] == [r.id for r in results]
        assert all(r.duplicate for r in again)
    finally:
        app.close()


def test_countdown_and_eta_delay_the_task(app: Flotilla) -> None:
    r = app.send_task("noop", countdown=60)
    assert r.state is TaskState.SCHEDULED
    assert r.cancel() and r.state is TaskState.CANCELLED
    with pytest.raises(flotilla.TaskCancelled):
        r.get(timeout=5)
    eta = datetime.now(timezone.utc) + timedelta(seconds=60)
    assert app.send_task("noop", eta=eta).state is TaskState.SCHEDULED
    soon = app.send_task("echo", [1], countdown=0.2)
    assert soon.get(timeout=10) == 1


def test_waiting_for_more_ids_than_one_request_takes(app: Flotilla) -> None:
    n = flotilla.client.MAX_WAIT_IDS + 50
    results = app.submit_many(app.signature("noop") for _ in range(n))
    ids = [r.id for r in results]
    assert sorted(i.id for i in app.client.wait(ids, timeout=120)) == sorted(ids)


def test_stats_and_status(app: Flotilla, node: NodeProcess) -> None:
    app.send_task("noop", queue="py-stats").get(timeout=10)
    queues = {q.queue: q for q in app.client.stats()}
    assert queues["py-stats"].succeeded >= 1
    status = app.client.status()
    assert status.leader_id == status.node_id and status.members[0].addr == node.addr


def test_workers_lists_the_nodes_own_pool(app: Flotilla) -> None:
    w = app.workers()
    pools = [x for x in w.workers if x.kind == "pool"]
    assert pools and pools[0].name.startswith("node-") and pools[0].concurrency >= 1
    assert w.unreachable_nodes == ()


def test_calls_fail_over_past_a_dead_node(node: NodeProcess) -> None:
    dead = f"127.0.0.1:{free_port()}"
    app = Flotilla([dead, node.addr], retry=flotilla.RetryPolicy(max_elapsed=10.0))
    try:
        started = time.monotonic()
        assert app.send_task("echo", ["via the second node"]).get(timeout=10) == (
            "via the second node"
        )
        assert time.monotonic() - started < 5
        assert app.client._node() == 1, "the preference moved past the dead node"
    finally:
        app.close()


def test_calls_leave_a_node_that_stopped_answering_within_seconds(node: NodeProcess) -> None:
    # As a SIGSTOPped node looks from outside: connections complete into the listen backlog,
    # and nothing ever reads or answers them.
    with socket.socket() as frozen:
        frozen.bind(("127.0.0.1", 0))
        frozen.listen(8)
        addr = f"127.0.0.1:{frozen.getsockname()[1]}"
        app = Flotilla([addr, node.addr], request_timeout=30.0)
        try:
            started = time.monotonic()
            assert app.send_task("echo", ["past the frozen node"]).get(timeout=10) == (
                "past the frozen node"
            )
            # Keepalive pings go unanswered: far sooner than the 30 s request timeout.
            took = time.monotonic() - started
            assert took < 5, took
            assert app.client._node() == 1
        finally:
            app.close()


def test_an_unreachable_cluster_gives_up_after_the_policy() -> None:
    app = Flotilla(f"127.0.0.1:{free_port()}", retry=flotilla.RetryPolicy(max_elapsed=0.3))
    try:
        started = time.monotonic()
        with pytest.raises(flotilla.Unavailable) as e:
            app.send_task("noop")
        assert e.value.attempts >= 2 and time.monotonic() - started < 3
    finally:
        app.close()


def test_revoke_with_terminate_stops_a_running_task(app: Flotilla) -> None:
    r = app.send_task("sleep", kwargs={"ms": 600_000})
    deadline = time.monotonic() + 10
    while r.state is not TaskState.LEASED:
        assert time.monotonic() < deadline, "never started"
        time.sleep(0.05)
    assert not r.revoke(), "running: a plain revoke leaves it alone"
    assert r.revoke(terminate=True, reason="stuck")
    info = r.info()
    assert info.state is TaskState.CANCELLED and info.error == "stuck"
    with pytest.raises(flotilla.TaskCancelled):
        r.get(timeout=5)
    assert not r.revoke(terminate=True), "final: nothing to revoke"
