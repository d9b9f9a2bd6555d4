"""Stock Celery workers on Flotilla (issue 11, item 4): ``python -m celery -A ... worker`` as a
subprocess, nothing of ours in it but the ``flotilla://`` URL.

- The first-steps tutorial's ``tasks.py``, only its URLs changed: ``add.delay(4, 4).get()``
  is 8; the worker stops cleanly on SIGTERM.
- Celery's features as docs/CELERY.md maps them: retries, ignore_result, Reject, expires.
- 5,000 tasks on a 3-node cluster whose leader is SIGKILLed while the worker drains them: all
  succeed, none runs twice (counted through a side channel, every run appends a line).

Every wait is bounded; a failure shows the worker's log.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Optional

import pytest

import flotilla
from flotilla.celery.mapping import SUBMITTED
from flotilla.celery.nodes import client_for
from flotilla.info import TaskState
from nodes import Cluster, NodeProcess

TESTS = Path(__file__).resolve().parent

#: Celery's first-steps tutorial, word for word but for the URLs.
TUTORIAL = """\
from celery import Celery

app = Celery('tasks', broker='{url}', backend='{url}')

@app.task
def add(x, y):
    return x + y
"""

#: The drain test: how many tasks, after how many runs the leader dies, and the bound on it.
DRAIN_TASKS = 5000
KILL_AFTER_RUNS = 1000
DRAIN_TIMEOUT_S = 240.0
PUBLISHERS = 16


class CeleryWorker:
    """``python -m celery -A <app> worker`` in ``cwd``, its output in ``log``."""

    def __init__(self, cwd: Path, app: str, log: Path, env: dict[str, str], *args: str) -> None:
        self.log_path = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", app, "worker", "--loglevel=INFO", *args],
                cwd=cwd,
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def stop(self, timeout: float = 60.0) -> Optional[int]:
        """SIGTERM (Celery's warm shutdown), then SIGKILL past ``timeout``; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode


def until(what: str, check: Callable[[], bool], timeout: float, worker: CeleryWorker) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if worker.proc.poll() is not None:
            raise AssertionError(f"the worker exited ({worker.proc.returncode}):\n{worker.log()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s\n{worker.log()}")
        time.sleep(0.05)


def publish_when_declared(publish: Callable[[], Any], worker: CeleryWorker) -> Any:
    """``publish()`` once the worker's session has declared its task names (until then the
    cluster refuses them: docs/CELERY.md)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return publish()
        except flotilla.InvalidArgument:
            if worker.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"the worker never declared its tasks:\n{worker.log()}"
                ) from None
            time.sleep(0.1)


def load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def runs(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def lone_node(tmp_path: Path) -> Iterator[NodeProcess]:
    """A node of its own: the session node's pool also serves the ``celery`` queue."""
    node = NodeProcess(tmp_path / "node")
    try:
        node.wait_ready()
        yield node
    finally:
        node.stop()


def test_the_tutorial_tasks_py_runs_on_a_stock_worker(
    lone_node: NodeProcess, tmp_path: Path
) -> None:
    url = f"flotilla://{lone_node.addr}"
    (tmp_path / "tasks.py").write_text(TUTORIAL.format(url=url))
    worker = CeleryWorker(tmp_path, "tasks", tmp_path / "worker.log", {})
    tasks = load("tasks", tmp_path / "tasks.py")
    try:
        publish_when_declared(lambda: tasks.add.delay(0, 0), worker)
        assert tasks.add.delay(4, 4).get(timeout=10) == 8
        code = worker.stop()
        assert code == 0, f"warm shutdown exited {code}:\n{worker.log()}"
        assert "flotilla session ended" in worker.log()
    finally:
        worker.stop()
        tasks.app.close()
        sys.modules.pop("tasks", None)


@contextmanager
def worker_app(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[ModuleType, CeleryWorker, Path]]:
    """``celery_worker_app`` on the cluster at ``url``, with a stock worker (2 processes) of
    it; every run of a task appends a line to the returned file."""
    runs_path = tmp_path / "runs.txt"
    env = {"FLOTILLA_TEST_BROKER": url, "FLOTILLA_TEST_RUNS": str(runs_path)}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    sys.modules.pop("celery_worker_app", None)
    module = importlib.import_module("celery_worker_app")
    worker = CeleryWorker(TESTS, "celery_worker_app", tmp_path / "worker.log", env, "-c", "2")
    try:
        yield module, worker, runs_path
    finally:
        worker.stop()
        module.app.close()
        sys.modules.pop("celery_worker_app", None)


def test_retries_ignored_results_rejects_and_expiry_map_onto_the_task(
    lone_node: NodeProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with worker_app(f"flotilla://{lone_node.addr}", tmp_path, monkeypatch) as (m, worker, path):
        flaky = publish_when_declared(m.flaky.delay, worker)
        quiet = m.quiet.delay()
        refuse = m.refuse.delay()
        past = datetime.now(timezone.utc) - timedelta(seconds=1)
        expired = m.mark.apply_async((7,), expires=past)

        # max_retries=2: three runs of one Flotilla task (request.retries 0, 1, 2), then
        # FAILURE with the task's exception.
        with pytest.raises(ValueError, match="not yet"):
            flaky.get(timeout=30)
        assert flaky.state == "FAILURE"
        assert [r[2] for r in runs(path) if r[0] == flaky.id] == ["0", "1", "2"]

        # ignore_result: nothing stored, but the task completes (a success with no result).
        quiet_id = SUBMITTED.get(quiet.id)
        assert quiet_id is not None
        (info,) = client_for(m.app.backend.nodes).wait([quiet_id], 30)
        assert info.state is TaskState.SUCCEEDED and info.result_bytes == b"null"

        # Reject(requeue=False): failed for good, not retried.
        with pytest.raises(Exception, match="no thanks"):
            refuse.get(timeout=30)
        assert refuse.state == "FAILURE"

        # Expired on receipt: Celery revokes it; the backend reads REVOKED; it never ran.
        with pytest.raises(Exception, match="expired"):
            expired.get(timeout=30)
        assert expired.state == "REVOKED"
        ran = Counter(r[0] for r in runs(path))
        assert (ran[refuse.id], ran[quiet.id], ran[expired.id]) == (1, 1, 0)


def test_a_retry_runs_no_earlier_than_its_countdown(
    lone_node: NodeProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``self.retry(countdown=N)`` and ``autoretry_for`` with ``retry_backoff``: the countdown
    reaches the node as the failure's ``retry_delay_ms``, so the next attempt starts no earlier
    (not after the node's own backoff of 1 s, nor Celery's default delay of 180 s)."""
    with worker_app(f"flotilla://{lone_node.addr}", tmp_path, monkeypatch) as (m, worker, path):
        later = publish_when_declared(lambda: m.later.delay(2.5), worker)
        backoff = m.backoff.delay()
        zero = m.later.delay(0)
        assert later.get(timeout=30) == "later"
        assert backoff.get(timeout=30) == "backoff"
        assert zero.get(timeout=30) == "later"

        def starts(celery_id: str) -> list[float]:
            return sorted(float(r[3]) for r in runs(path) if r[0] == celery_id)

        for result, countdown in ((later, 2.5), (backoff, m.BACKOFF_S)):
            first, second = starts(result.id)
            gap = second - first
            assert countdown <= gap < countdown + 2.0, (result.id, countdown, gap)
        # countdown=0 retries at once: not after the node's backoff (1 s), which a delay of 0
        # on the wire would mean.
        first, second = starts(zero.id)
        assert second - first < 0.8, second - first


def publish_through_a_leader_kill(
    mark: Any, worker: CeleryWorker, runs_path: Path, leader: NodeProcess
) -> list[Any]:
    """``mark.delay(i)`` for every i from ``PUBLISHERS`` threads; the leader is SIGKILLed once
    the worker has run ``KILL_AFTER_RUNS`` tasks. The AsyncResults, in order of i."""
    published: list[Any] = []
    errors: list[BaseException] = []

    def publish_all() -> None:
        try:
            with ThreadPoolExecutor(PUBLISHERS) as pool:
                published.extend(pool.map(mark.delay, range(DRAIN_TASKS)))
        except BaseException as e:
            errors.append(e)

    publisher = threading.Thread(target=publish_all, daemon=True)
    publisher.start()
    until("the runs before the kill", lambda: len(runs(runs_path)) > KILL_AFTER_RUNS, 120, worker)
    leader.kill9()
    killed_at = len(runs(runs_path))
    publisher.join(DRAIN_TIMEOUT_S)
    assert not publisher.is_alive(), "publishing did not finish"
    assert not errors, f"publishing failed: {errors[0]!r}"
    assert killed_at < DRAIN_TASKS, "the leader died after the drain, not during it"
    return published


def test_a_stock_worker_drains_5000_tasks_through_a_leader_kill_none_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = time.monotonic()
    cluster = Cluster(tmp_path / "cluster", 3)
    try:
        leader = cluster.leader()
        # The worker's session starts on the leader, so the kill breaks it: it resumes its
        # leases on another node.
        addrs = [cluster.addrs[leader]] + [a for i, a in enumerate(cluster.addrs) if i != leader]
        url = "flotilla://" + ",".join(addrs)
        with worker_app(url, tmp_path, monkeypatch) as (m, worker, runs_path):
            warm_up = publish_when_declared(lambda: m.mark.delay(-1), worker)
            assert warm_up.get(timeout=30) == -1
            published = publish_through_a_leader_kill(
                m.mark, worker, runs_path, cluster.nodes[leader]
            )

            ids = [SUBMITTED.get(r.id) for r in published]
            assert None not in ids
            left = max(DRAIN_TIMEOUT_S - (time.monotonic() - started), 1.0)
            waited = client_for(m.app.backend.nodes).wait([i for i in ids if i], left)
            final = {info.id: info for info in waited}
            states = Counter(info.state for info in final.values())
            assert states == {TaskState.SUCCEEDED: DRAIN_TASKS}, f"{states}\n{worker.log()}"
            results = [final[i].result_bytes for i in ids if i]
            assert results == [str(i).encode() for i in range(DRAIN_TASKS)]
            for i in range(0, DRAIN_TASKS, DRAIN_TASKS // 10):  # through Celery too
                assert published[i].get(timeout=10) == i

            ran = Counter(r[0] for r in runs(runs_path))
            twice = [celery_id for celery_id, n in ran.items() if n > 1]
            assert not twice, f"{len(twice)} tasks ran more than once, e.g. {twice[:3]}"
            assert set(ran) == {r.id for r in published} | {warm_up.id}
    finally:
        cluster.stop()
