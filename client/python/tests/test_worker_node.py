"""The Python worker against a real node serving WorkerService: Python tasks declared by the
worker's Hello are accepted by the node, run by the worker and their results read back; a
failure's message and kind reach the caller; a burst of tasks all succeed once each; a drain
ends cleanly. The node also runs its own pool on ``default``: Python tasks (on ``python``)
never reach it."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Optional

import pytest

import flotilla
from flotilla import Flotilla
from flotilla.worker import Worker
from nodes import NodeProcess


class Running:
    """A worker of ``app`` on its own thread, drained at the end."""

    def __init__(self, app: Flotilla, name: str) -> None:
        self.name = name
        self.worker = Worker(app, nodes=[app.client.addrs[0]], name=name, concurrency=4)
        self.code: Optional[int] = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.code = self.worker.run()

    def drain(self, timeout: float = 30.0) -> Optional[int]:
        self.worker.drain()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the worker did not finish its drain"
        return self.code


RUNS: dict[int, int] = {}
FLAKY: dict[str, int] = {}
RUNS_LOCK = threading.Lock()


def make_app(node: NodeProcess) -> Flotilla:
    app = Flotilla(node.addr, retry=flotilla.RetryPolicy(max_elapsed=20.0))

    @app.task(name="py.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="py.count")
    def count(i: int) -> int:
        with RUNS_LOCK:
            RUNS[i] = RUNS.get(i, 0) + 1
        return i

    @app.task(name="py.boom", max_retries=0)
    def boom() -> None:
        raise ValueError("no good")

    @app.task(name="py.flaky", max_retries=1, retry_backoff=0.01)
    def flaky(key: str) -> str:
        with RUNS_LOCK:
            FLAKY[key] = FLAKY.get(key, 0) + 1
            first = FLAKY[key] == 1
        if first:
            raise ValueError("first time unlucky")
        return key

    @app.task(name="py.patient", max_retries=0)
    def patient() -> str:
        try:
            while True:
                time.sleep(0.005)
        except flotilla.SoftTimeLimitExceeded:
            return "stopped early"

    return app


@pytest.fixture
def worker_app(node: NodeProcess) -> Iterator[tuple[Flotilla, Running]]:
    app = make_app(node)
    running = Running(app, f"pytest-{time.monotonic_ns()}")
    try:
        # The Hello declares the names: until then the node refuses submits of them.
        deadline = time.monotonic() + 30
        while True:
            try:
                assert app.tasks["py.add"].delay(0, 0).get(timeout=20) == 0
                break
            except flotilla.InvalidArgument:
                assert time.monotonic() < deadline, "the worker never declared its tasks"
                time.sleep(0.05)
        yield app, running
    finally:
        code = running.drain()
        app.close()
        assert code == 0, f"the worker exited with {code}"


def test_a_python_task_runs_on_a_python_worker_and_its_result_comes_back(
    worker_app: tuple[Flotilla, Running],
) -> None:
    app, _ = worker_app
    assert app.tasks["py.add"].delay(2, 3).get(timeout=20) == 5
    # By name, with no queue: the node reads the name's queue from the catalogue.
    assert app.send_task("py.add", [40, 2]).get(timeout=20) == 42


def test_a_failure_reaches_the_caller_with_its_message_and_kind(
    worker_app: tuple[Flotilla, Running],
) -> None:
    app, _ = worker_app
    with pytest.raises(flotilla.TaskFailed, match="no good") as e:
        app.tasks["py.boom"].delay().get(timeout=20)
    assert "ValueError" in (e.value.kind + e.value.message)


def test_a_task_that_failed_once_shows_both_attempts(
    worker_app: tuple[Flotilla, Running],
) -> None:
    app, running = worker_app
    result = app.tasks["py.flaky"].delay(f"k{time.monotonic_ns()}")
    assert result.get(timeout=20).startswith("k")
    # The one-node cluster records attempts from its leader's first tick on.
    first, second = result.attempts
    assert (first.attempt, first.end, second.attempt, second.end) == (1, "failed", 2, "succeeded")
    assert first.holder == second.holder == running.name
    assert first.ended_unix_ms is not None and second.ended_unix_ms is not None
    assert first.granted_unix_ms <= first.ended_unix_ms <= second.granted_unix_ms
    assert app.client.attempts(result.id) == result.attempts


def test_a_burst_of_tasks_all_succeed_and_each_runs_once(
    worker_app: tuple[Flotilla, Running],
) -> None:
    app, _ = worker_app
    count = app.tasks["py.count"]
    results = [count.delay(i) for i in range(1000, 1500)]
    assert [r.get(timeout=60) for r in results] == list(range(1000, 1500))
    with RUNS_LOCK:
        assert all(RUNS[i] == 1 for i in range(1000, 1500)), "a task ran twice"


def test_an_unknown_name_is_refused_with_the_name(node: NodeProcess) -> None:
    app = Flotilla(node.addr, retry=flotilla.RetryPolicy(max_elapsed=5.0))
    try:
        with pytest.raises(flotilla.InvalidArgument, match=r"py\.nobody"):
            app.send_task("py.nobody", [1])
    finally:
        app.close()


def test_the_soft_time_limit_is_raised_in_the_task_before_the_hard_one(
    worker_app: tuple[Flotilla, Running],
) -> None:
    app, _ = worker_app
    started = time.monotonic()
    result = app.tasks["py.patient"].apply_async(soft_time_limit=0.2, time_limit=30)
    assert result.get(timeout=20) == "stopped early"
    assert time.monotonic() - started < 15


def test_events_show_each_step_of_a_python_task_and_resume_from_a_position(
    worker_app: tuple[Flotilla, Running],
) -> None:
    app, _ = worker_app
    seen: queue.Queue[flotilla.Event] = queue.Queue()

    def follow(events: Iterator[flotilla.Event]) -> None:
        try:
            for e in events:
                seen.put(e)
        except flotilla.FlotillaError:
            pass  # the app's channels closed at the end of the test

    stream = app.events(task_names=["py.add"])
    threading.Thread(target=follow, args=(stream,), daemon=True).start()
    # Submit until the stream shows one (it is then watching), then one to follow closely.
    deadline = time.monotonic() + 30
    while seen.empty():
        app.tasks["py.add"].delay(0, 1).get(timeout=20)
        assert time.monotonic() < deadline, "the events stream showed nothing"
        time.sleep(0.1)
    task_id = app.tasks["py.add"].delay(20, 22).id
    steps: list[flotilla.Event] = []
    while not any(e.kind == "succeeded" for e in steps):
        e = seen.get(timeout=20)
        if e.task_id == task_id:
            steps.append(e)
    assert [e.kind for e in steps] == ["submitted", "started", "succeeded"]
    assert steps[1].pool and steps[1].attempt == 1
    assert steps[0].position < steps[1].position < steps[2].position
    # Resumed after the submit: the start comes next, not the submit again.
    resumed = app.events(task_names=["py.add"], from_position=steps[0].position_after)
    again = next(e for e in resumed if e.task_id == task_id)
    assert (again.kind, again.position) == ("started", steps[1].position)
    with pytest.raises(ValueError, match="not an event kind"):
        next(iter(app.events(kinds=["exploded"])))
