"""Workflows against a real node with a Python worker (docs/WORKFLOWS.md): Celery's chain,
group and chord with ``.s()`` and ``.si()`` signatures, nested; each result reaches the next
task as in Celery; a failure cancels what follows and the error callback runs once;
``get()`` on a group or chord reads the workflow as one object."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import flotilla
from flotilla import Flotilla, chain, chord, group
from flotilla.worker import Worker
from nodes import NodeProcess

ERRBACKS: list[dict[str, Any]] = []
LOCK = threading.Lock()


def make_app(node: NodeProcess) -> Flotilla:
    app = Flotilla(node.addr, retry=flotilla.RetryPolicy(max_elapsed=20.0))

    @app.task(name="wf.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="wf.tsum")
    def tsum(values: list[int]) -> int:
        return sum(values)

    @app.task(name="wf.const")
    def const(x: int) -> int:
        return x

    @app.task(name="wf.sleep")
    def sleep(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    @app.task(name="wf.boom", max_retries=0)
    def boom(_: Any = None) -> None:
        raise ValueError("no good")

    @app.task(name="wf.on_error")
    def on_error(failure: dict[str, Any]) -> str:
        with LOCK:
            ERRBACKS.append(failure)
        return "handled"

    return app


@pytest.fixture
def wf_app(node: NodeProcess) -> Iterator[Flotilla]:
    app = make_app(node)
    worker = Worker(app, nodes=[node.addr], name=f"wf-{time.monotonic_ns()}", concurrency=4)
    code: list[int] = []
    thread = threading.Thread(target=lambda: code.append(worker.run()), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                assert app.tasks["wf.add"].delay(0, 0).get(timeout=20) == 0
                break
            except flotilla.InvalidArgument:
                assert time.monotonic() < deadline, "the worker never declared its tasks"
                time.sleep(0.05)
        yield app
    finally:
        worker.drain()
        thread.join(30)
        app.close()


def test_a_chain_passes_each_result_on(wf_app: Flotilla) -> None:
    add = wf_app.tasks["wf.add"]
    assert chain(add.s(2, 2), add.s(4), add.s(8)).delay().get(timeout=30) == 16
    assert (add.s(1, 1) | add.s(1)).delay().get(timeout=30) == 3


def test_a_group_reads_as_one_list_and_a_chord_calls_back_with_it(wf_app: Flotilla) -> None:
    add, tsum = wf_app.tasks["wf.add"], wf_app.tasks["wf.tsum"]
    assert group(add.s(i, i) for i in range(4)).delay().get(timeout=30) == [0, 2, 4, 6]
    result = chord([add.s(1, 1), add.s(2, 2), add.s(3, 3)], tsum.s()).delay()
    assert result.get(timeout=30) == 12
    assert result.state == "succeeded"
    # Celery's form, nested in a chain, with an immutable signature at the end.
    const = wf_app.tasks["wf.const"]
    nested = chain(add.s(1, 2), group(add.s(10), add.s(20)), tsum.s(), const.si(7))
    assert nested.delay().get(timeout=30) == 7
    assert chord(group(add.s(5, 5), add.s(1, 1)))(tsum.s()).get(timeout=30) == 12


def test_a_failure_cancels_what_follows_and_the_error_callback_runs_once(wf_app: Flotilla) -> None:
    add, boom = wf_app.tasks["wf.add"], wf_app.tasks["wf.boom"]
    errback = wf_app.tasks["wf.on_error"].s()
    before = len(ERRBACKS)
    result = chain(group(boom.s(), boom.s()), add.s(1)).apply_async(link_error=errback)
    with pytest.raises(flotilla.TaskFailed, match="no good"):
        result.get(timeout=30)
    assert result.state == "failed"
    infos = [r.info() for r in result.results]
    assert infos[2].state is flotilla.TaskState.CANCELLED
    assert (infos[2].error or "").startswith("parent task ")
    assert infos[3].state is flotilla.TaskState.SUCCEEDED and infos[3].result() == "handled"
    with LOCK:
        assert len(ERRBACKS) == before + 1, "the error callback ran more than once"
        assert ERRBACKS[-1]["state"] == "dead" and "no good" in ERRBACKS[-1]["error"]
    assert isinstance(result.get(timeout=5, propagate=False), flotilla.TaskFailed)


def test_a_task_waiting_for_its_parent_reads_as_waiting(wf_app: Flotilla) -> None:
    sleep, add = wf_app.tasks["wf.sleep"], wf_app.tasks["wf.add"]
    w = chain(sleep.si(1.5), add.si(1, 1)).delay()
    first, second = w.results
    assert second.state is flotilla.TaskState.WAITING
    assert not second.ready()
    assert first.state in (flotilla.TaskState.PENDING, flotilla.TaskState.LEASED)
    assert w.get(timeout=30) == 2
    assert second.state is flotilla.TaskState.SUCCEEDED
