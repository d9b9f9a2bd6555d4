"""kill -9 of a worker that queues (the default: the node sends its lease-ahead down while tasks
are short): it loses nothing. The node releases what the worker ran and what it held queued the
moment the stream breaks, so another worker runs them at once, long before their 30 s leases
would expire; every task succeeds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import flotilla
from flotilla import Flotilla
from nodes import NodeProcess

TASKS = 1500
TESTS_DIR = Path(__file__).resolve().parent


def worker(node: NodeProcess, name: str, runs: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "QUEUE_APP_NODE": node.addr,
        "QUEUE_APP_RUNS": str(runs),
        "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")]),
    }
    args = ["-A", "queue_app", "-c", "4", "-Q", "python-kill", "-n", name, "-l", "warning"]
    return subprocess.Popen(
        [sys.executable, "-m", "flotilla.worker.cli", *args, "--nodes", node.addr],
        cwd=TESTS_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def runs_of(path: Path) -> list[int]:
    try:
        return [int(line) for line in path.read_text().split()]
    except FileNotFoundError:
        return []


def test_a_worker_killed_with_tasks_queued_loses_none(node: NodeProcess, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    first = worker(node, f"kill-a-{time.monotonic_ns()}", runs)
    second = None
    app = Flotilla(node.addr, retry=flotilla.RetryPolicy(max_elapsed=20.0))
    try:
        deadline = time.monotonic() + 30
        while True:  # until the worker's Hello declared the name
            try:
                assert app.send_task("kill.mark", [-1]).get(timeout=20) == -1
                break
            except flotilla.InvalidArgument:
                assert time.monotonic() < deadline, "the worker never declared its task"
                time.sleep(0.05)
        results = app.submit_many(app.signature("kill.mark", args=(i,)) for i in range(TASKS))
        deadline = time.monotonic() + 60
        while len(runs_of(runs)) < TASKS // 5:
            assert time.monotonic() < deadline, "the worker ran too little"
            time.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed_at = time.monotonic()
        assert len(set(runs_of(runs))) < TASKS, "killed after it ran everything"
        second = worker(node, f"kill-b-{time.monotonic_ns()}", runs)
        done = [r.get(timeout=25) for r in results]
        assert done == list(range(TASKS))
        # Well under a lease (30 s): what the killed worker held came back at once.
        assert time.monotonic() - killed_at < 20
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
        app.close()
