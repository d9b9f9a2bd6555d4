"""The Python worker end to end against a real node (issue 11's target: one process, 8 threads,
noop tasks, one node, ≥ 5,000 tasks/s); a JSON report.

    python client/python/scripts/bench_e2e.py [--node-bin target/release/node] [--tasks 20000]
        [-c 8] [--prefetch auto|N] [--rounds 1] [--sdk-src DIR] [--py-spy out.txt]

It starts a single node (``--workers 0``: the node's own pool runs nothing) on a free loopback
port with a fresh data directory, and ``flotilla-worker``'s ``Worker`` in a child process
running one noop task (``bench.noop``, queue ``python``). Then, per round, this process
submits ``--tasks`` calls (``app.submit_many``: batches of 1,000, one log entry each) and waits
for every result (``client.wait``: a WaitResults stream): tasks/s is tasks over the time from
the first submit to the last result. CPU per task is read from /proc for the node and the
worker (all threads), and for this process (the submitter and the waiter), over each round.
A warm-up round (``--warmup`` tasks) runs first and is not reported.

``--sdk-src DIR``: the worker imports the SDK from DIR (a ``src`` directory of another checkout)
instead of this one, to compare two SDK versions on the same node (A/B runs). ``--py-spy
FILE``: the worker runs under ``py-spy record`` (raw collapsed stacks, 250 Hz; with
``--py-spy-gil`` only the thread holding the GIL is sampled, which shows where its CPU goes).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

SCRIPTS = Path(__file__).resolve().parent
SRC = SCRIPTS.parent / "src"
REPO = SCRIPTS.parents[2]
TASK = "bench.noop"


def child(addr: str, concurrency: int, prefetch: str) -> None:
    """The worker process: one noop task, ``concurrency`` threads; drains on SIGTERM."""
    from flotilla import Flotilla
    from flotilla.worker import Worker

    app = Flotilla(addr)

    @app.task(name=TASK, queue="python")
    def noop() -> None:
        return None

    worker = Worker(
        app,
        nodes=[addr],
        name=f"bench-{os.getpid()}",
        concurrency=concurrency,
        prefetch=None if prefetch == "auto" else int(prefetch),
    )
    signal.signal(signal.SIGTERM, lambda *_: worker.drain())
    os._exit(worker.run())


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, every thread of it (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def newest_node() -> Path:
    built = [REPO / "target" / p / "node" for p in ("release", "debug")]
    found = [p for p in built if p.exists()]
    if not found:
        sys.exit("no node binary: build one (cargo build --release -p flotilla-node)")
    return max(found, key=lambda p: p.stat().st_mtime)


def git_commit(path: Path) -> Optional[str]:
    try:
        out = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "-C", str(path), "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def run_round(app: Any, n: int, pids: dict[str, int]) -> dict[str, Any]:
    from flotilla.info import TaskState

    calls = [app.signature(TASK) for _ in range(n)]
    before = {k: cpu_seconds(p) for k, p in pids.items()}
    own = time.process_time()
    t0 = time.perf_counter()
    results = app.submit_many(calls)
    submitted = time.perf_counter()
    states: dict[str, int] = {}
    for info in app.client.wait([r.id for r in results], 300):
        states[info.state.value] = states.get(info.state.value, 0) + 1
    wall = time.perf_counter() - t0
    own = time.process_time() - own
    after = {k: cpu_seconds(p) for k, p in pids.items()}
    if states.get(TaskState.SUCCEEDED.value) != n:
        raise RuntimeError(f"not every task succeeded: {states}")
    return {
        "tasks": n,
        "seconds": round(wall, 4),
        "tasks_per_s": round(n / wall),
        "submit_seconds": round(submitted - t0, 4),
        "cpu_us_per_task": {
            **{k: round((after[k] - before[k]) / n * 1e6, 1) for k in pids},
            "submitter": round(own / n * 1e6, 1),
        },
    }


def start_node(node_bin: Path, data: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A single node on a free loopback port; its own pool runs nothing (``--workers 0``)."""
    addr = f"127.0.0.1:{free_port()}"
    with open(data / "node.log", "wb") as log:
        node = subprocess.Popen(
            [str(node_bin), "--listen", addr, "--data-dir", str(data / "n"), "--workers", "0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            env={**os.environ, "RUST_LOG": "warn"},
        )
    return node, addr


def start_worker(args: argparse.Namespace, addr: str) -> tuple[subprocess.Popen[bytes], int]:
    """The worker process (under py-spy with ``--py-spy``), and the worker's own pid."""
    cmd = [sys.executable, __file__, "--child", addr, "-c", str(args.concurrency)]
    cmd += ["--prefetch", args.prefetch]
    if args.py_spy:
        spy = ["py-spy", "record", "--format", "raw", "-r", "250", "-o", args.py_spy]
        if args.py_spy_gil:
            spy.append("--gil")  # only the thread holding the GIL: where the CPU goes
        cmd = [*spy, "--", *cmd]
    env = {**os.environ, "PYTHONPATH": str(args.sdk_src.resolve())}
    worker = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL)
    if not args.py_spy:
        return worker, worker.pid
    time.sleep(1.0)  # py-spy starts the worker as its child
    kids = Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()
    return worker, int(kids[0])


def wait_ready(app: Any, worker: subprocess.Popen[bytes]) -> None:
    """Until the node has a leader and accepts the task's name (the worker's Hello declares it)."""
    import flotilla

    deadline = time.monotonic() + 60
    while True:
        try:
            app.submit_many([app.signature(TASK)])[0].get(timeout=30)
            return
        except (flotilla.InvalidArgument, flotilla.Unavailable):
            if worker.poll() is not None or time.monotonic() > deadline:
                sys.exit("the worker never declared its task")
            time.sleep(0.1)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--node-bin", type=Path)
    p.add_argument("--tasks", type=int, default=20_000)
    p.add_argument("--warmup", type=int, default=2_000)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("-c", "--concurrency", type=int, default=8)
    p.add_argument("--prefetch", default="auto")
    p.add_argument("--sdk-src", type=Path, default=SRC)
    p.add_argument("--py-spy")
    p.add_argument("--py-spy-gil", action="store_true", help="py-spy samples GIL holders only")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child, args.concurrency, args.prefetch)
        return

    sys.path.insert(0, str(SRC))
    import flotilla

    node_bin = args.node_bin or newest_node()
    data = Path(tempfile.mkdtemp(prefix="flotilla-bench-e2e-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        node, addr = start_node(node_bin, data)
        procs.append(node)
        app = flotilla.Flotilla(addr, retry=flotilla.RetryPolicy(max_elapsed=30))
        worker, worker_pid = start_worker(args, addr)
        procs.append(worker)
        wait_ready(app, worker)
        pids = {"node": node.pid, "worker": worker_pid}
        if args.warmup:
            run_round(app, args.warmup, pids)
        rounds = [run_round(app, args.tasks, pids) for _ in range(args.rounds)]
        report = {
            "scenario": "python-worker-e2e",
            "sdk": str(args.sdk_src),
            "sdk_commit": git_commit(args.sdk_src),
            "node_bin": str(node_bin),
            "concurrency": args.concurrency,
            "prefetch": args.prefetch,
            "loadavg": os.getloadavg()[0],
            "rounds": rounds,
        }
        print(json.dumps(report, indent=2))
        # Drained; under py-spy, py-spy writes its file when the worker exits.
        os.kill(worker_pid, signal.SIGTERM)
        worker.wait(60)
        app.close()
    finally:
        for proc in reversed(procs):
            stop(proc)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
