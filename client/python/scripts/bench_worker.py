"""The Python worker's CPU per task and throughput against a fast fake node (no Raft, no disk).

    python client/python/scripts/bench_worker.py [--tasks 20000] [-c 8] [--profile out.prof]

The fake node (in this process) grants noop tasks as fast as the worker's ``concurrency``
allows, one ``Tasks`` message per answered batch, and acknowledges each ``Results`` message at
once. The worker runs in a child process (``flotilla-worker``'s ``Worker``, 8 threads by
default); the child reports its own CPU time, so the figure is the worker's cost alone. A
bounded run: it drains the worker (SIGTERM) after ``--tasks`` results. ``--profile`` writes a
cProfile of every thread of the worker (``python -m pstats out.prof``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any, Optional

import grpc

SRC = Path(__file__).resolve().parent.parent / "src"
sys.path.insert(0, str(SRC))

from flotilla._rpc import WORKER_SERVICE  # noqa: E402
from flotilla.v1 import worker_pb2 as wpb  # noqa: E402


class BenchNode:
    """Grants ``total`` noop tasks, keeping the worker's concurrency full."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.granted = 0
        self.answered = 0
        self.first_grant = 0.0
        self.last_result = 0.0
        self.done = threading.Event()
        self.messages_in = 0
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
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
        self.addr = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()

    def _grant(self, n: int) -> Optional[wpb.NodeMessage]:
        n = min(n, self.total - self.granted)
        if n <= 0:
            return None
        if not self.granted:
            self.first_grant = time.perf_counter()
        first = self.granted + 1
        self.granted += n
        tasks = [
            wpb.Task(task_id=i, attempt=1, name="bench.noop", queue="default", args=b"null")
            for i in range(first, first + n)
        ]
        return wpb.NodeMessage(tasks=wpb.Tasks(tasks=tasks))

    def _session(
        self, requests: Iterator[wpb.WorkerMessage], context: grpc.ServicerContext
    ) -> Iterator[wpb.NodeMessage]:
        out: queue.SimpleQueue[Optional[wpb.NodeMessage]] = queue.SimpleQueue()
        context.add_callback(lambda: out.put(None))

        def read() -> None:
            held = 0
            draining = False
            try:
                for m in requests:
                    self.messages_in += 1
                    kind = m.WhichOneof("msg")
                    if kind == "hello":
                        out.put(
                            wpb.NodeMessage(
                                welcome=wpb.Welcome(
                                    session=1,
                                    node_id=1,
                                    lease_ms=30_000,
                                    ping_interval_ms=10_000,
                                    max_result_bytes=1 << 20,
                                    protocol_version=1,
                                )
                            )
                        )
                        concurrency = m.hello.concurrency
                        grant = self._grant(concurrency)
                        if grant is not None:
                            held += len(grant.tasks.tasks)
                            out.put(grant)
                    elif kind == "results":
                        results = m.results.results
                        held -= len(results)
                        self.answered += len(results)
                        acks = [
                            wpb.ResultAck(task_id=r.task_id, attempt=r.attempt, status=1)
                            for r in results
                        ]
                        out.put(wpb.NodeMessage(acks=wpb.Acks(acks=acks)))
                        if self.answered >= self.total and not self.done.is_set():
                            self.last_result = time.perf_counter()
                            self.done.set()
                        if not draining:
                            grant = self._grant(len(results))
                            if grant is not None:
                                held += len(grant.tasks.tasks)
                                out.put(grant)
                    elif kind == "drain":
                        draining = True
                    if draining and held == 0:
                        out.put(wpb.NodeMessage(drained=wpb.Drained()))
                        out.put(None)
                        return
            except grpc.RpcError:
                pass
            out.put(None)

        threading.Thread(target=read, daemon=True).start()
        while (item := out.get()) is not None:
            yield item


def child(addr: str, concurrency: int, profile: Optional[str]) -> None:
    from flotilla import Flotilla
    from flotilla.worker import Worker

    app = Flotilla(addr)

    @app.task(name="bench.noop")
    def noop() -> None:
        return None

    profilers: list[Any] = []
    if profile:  # before the worker starts its threads
        import cProfile

        def per_thread(*_: object) -> None:
            # One profiler per thread (the runner, the pool's threads, gRPC's request
            # iterator), timing CPU, not waits; merged at the end.
            profilers.append(cProfile.Profile(time.thread_time))
            profilers[-1].enable()

        threading.setprofile(per_thread)
        per_thread()
    # The fake node does not lease ahead: the worker holds as many again itself.
    worker = Worker(app, nodes=[addr], name="bench", concurrency=concurrency, prefetch=concurrency)
    signal.signal(signal.SIGTERM, lambda *_: worker.drain())
    cpu = time.process_time()
    code = worker.run()
    cpu = time.process_time() - cpu
    if profilers:
        import pstats

        for pr in profilers:
            pr.disable()
        stats = pstats.Stats(profilers[0])
        for pr in profilers[1:]:
            with contextlib.suppress(TypeError):  # a thread that never ran Python code
                stats.add(pr)
        stats.dump_stats(profile)
    print(f"{cpu:.6f}", flush=True)
    os._exit(code)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tasks", type=int, default=20_000)
    p.add_argument("-c", "--concurrency", type=int, default=8)
    p.add_argument("--profile")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child, args.concurrency, args.profile)
        return
    node = BenchNode(args.tasks)
    cmd = [sys.executable, __file__, "--child", node.addr, "-c", str(args.concurrency)]
    if args.profile:
        cmd += ["--profile", args.profile]
    env = {**os.environ, "PYTHONPATH": str(SRC), "GRPC_ENABLE_FORK_SUPPORT": "false"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    try:
        if not node.done.wait(300):
            sys.exit(f"only {node.answered} of {args.tasks} answered")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    cpu = float(out.strip().splitlines()[-1])
    wall = node.last_result - node.first_grant
    print(
        f"tasks={args.tasks} concurrency={args.concurrency} "
        f"tasks/s={args.tasks / wall:,.0f} worker_cpu/task={cpu / args.tasks * 1e6:.0f}us "
        f"worker_messages={node.messages_in} ({args.tasks / max(node.messages_in, 1):.1f} "
        f"results/message)"
    )
    node.server.stop(grace=None)


if __name__ == "__main__":
    main()
