"""The worker against a fake node (fake_node.py): the message sequence of worker.proto,
batching, a broken stream and resume, another node, an abort, a stale ack, refusals, a name
already live, prefetch, and drains (released tasks, Drained, a resume-only session).

The real end-to-end tests (a Rust node serving WorkerService) come with the node side.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import grpc
import pytest

import worker_app
from fake_node import FakeNode, FakeSession, task
from flotilla.payload import encode_call
from flotilla.v1 import worker_pb2 as wpb
from flotilla.worker import Worker

HERE = Path(__file__).resolve().parent


class Running:
    """A Worker on its own thread; ``code`` is what ``run`` returned."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.code: Optional[int] = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.code = self.worker.run()

    def join(self, timeout: float = 10.0) -> Optional[int]:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "worker did not exit"
        return self.code


@pytest.fixture
def fake() -> Iterator[FakeNode]:
    node = FakeNode()
    yield node
    node.stop()


def start(nodes: list[str], **options: object) -> Running:
    options.setdefault("concurrency", 2)
    return Running(Worker(worker_app.app, nodes=nodes, name="w1", **options))  # type: ignore[arg-type]


def opened(fake: FakeNode, **welcome: int) -> tuple[FakeSession, wpb.Hello]:
    s = fake.accept()
    hello = s.expect("hello")
    s.welcome(**welcome)
    return s, hello


def outcome(result: wpb.TaskResult) -> object:
    if result.WhichOneof("outcome") == "success":
        return json.loads(result.success)
    return result.failure


def gate(key: str) -> threading.Event:
    return worker_app.GATES.setdefault(key, threading.Event())


def wait_started(key: str) -> None:
    assert worker_app.STARTED.setdefault(key, threading.Event()).wait(10), f"{key} not started"


def test_hello_declares_the_worker_and_each_task_gets_one_result(fake: FakeNode) -> None:
    w = start([fake.addr], queues=["default", "other"], prefetch=1)
    s, hello = opened(fake)
    assert (hello.name, list(hello.queues)) == ("w1", ["default", "other"])
    assert hello.concurrency == 3, "two threads and one prefetched task"
    assert hello.HasField("prefetch") and hello.prefetch == 0, "held here, none at the node"
    assert (hello.protocol_version, list(hello.resume)) == (1, [])
    assert hello.agent.startswith("flotilla-python/")
    assert ("t.add", "python") in {(t.name, t.queue) for t in hello.tasks}, "the default queue"
    assert ("t.big", "other") in {(t.name, t.queue) for t in hello.tasks}

    s.grant_many([task(1, "t.add", encode_call([2, 2])), task(2, "t.request", b"null", 3)])
    results = s.expect_results(2)
    assert outcome(results[1]) == 4 and results[1].attempt == 1
    assert outcome(results[2]) == {"id": 2, "attempt": 3, "retries": 2, "headers": {"trace": "t1"}}
    s.send(ping=wpb.Ping(nonce=42))
    assert s.expect("pong").nonce == 42
    s.ack_many([(1, 1), (2, 3)])
    s.expect_nothing(0.3)
    w.worker.stop()
    assert w.join() == 1


def test_results_that_end_together_leave_in_one_message(fake: FakeNode) -> None:
    """Results wait for the runner's flush: here the three results of a session are
    unacknowledged when it breaks, and the next session gets them in one Results message."""
    w = start([fake.addr], concurrency=3)
    s1, _ = opened(fake)
    s1.grant_many([task(i, "t.add", encode_call([i, i])) for i in (1, 2, 3)])
    assert {i: outcome(r) for i, r in s1.expect_results(3).items()} == {1: 2, 2: 4, 3: 6}
    s1.break_stream()
    s2, hello = opened(fake)
    assert sorted(x.task_id for x in hello.resume) == [1, 2, 3]
    batch = s2.expect("results")
    assert sorted(r.task_id for r in batch.results) == [1, 2, 3], "one message for the three"
    s2.ack_many([(1, 1), (2, 1), (3, 1)])
    s2.expect_nothing(0.3)
    w.worker.stop()
    w.join()


def test_a_busy_worker_answers_many_tasks_per_message(fake: FakeNode) -> None:
    w = start([fake.addr], concurrency=4, prefetch=196)
    s, hello = opened(fake)
    assert hello.concurrency == 200
    s.grant_many([task(i, "t.add", encode_call([i, 1])) for i in range(1, 201)])
    got: dict[int, object] = {}
    messages = 0
    while len(got) < 200:
        messages += 1
        got.update((r.task_id, outcome(r)) for r in s.expect("results").results)
    assert got == {i: i + 1 for i in range(1, 201)}
    assert messages < 100, f"{messages} messages for 200 results: not batched"
    w.worker.stop()
    w.join()


def test_handler_errors_become_failures_of_the_right_kind(fake: FakeNode) -> None:
    w = start([fake.addr])
    s, _ = opened(fake, max_result_bytes=1000)
    cases = {
        1: ("t.value_error", encode_call(["bad input"])),
        2: ("t.reject", encode_call(["never"])),
        3: ("t.retry_later", b"null"),
        4: ("t.add", b"{not json"),
        5: ("t.nobody", b"null"),
        6: ("t.big", encode_call([2000])),
        7: ("t.not_json", b"null"),
    }
    s.grant_many([task(i, name, args) for i, (name, args) in cases.items()])
    got = {i: r.failure for i, r in s.expect_results(len(cases)).items()}
    assert (got[1].kind, got[1].message, got[1].retryable) == ("ValueError", "bad input", True)
    assert (got[2].kind, got[2].message, got[2].retryable) == ("Reject", "never", False)
    assert (got[3].kind, got[3].retryable, got[3].retry_delay_ms) == ("Retry", True, 5000)
    assert (got[4].kind, got[4].retryable) == ("PayloadError", False)
    assert "invalid arguments" in got[4].message
    assert (got[5].kind, got[5].retryable) == ("NotRegistered", False)
    assert (got[6].kind, got[6].retryable) == ("ResultTooLarge", False)
    assert (got[7].kind, got[7].retryable) == ("PayloadError", False)
    w.worker.stop()
    w.join()


def test_an_aborted_attempt_sends_no_result_and_sees_its_flag(fake: FakeNode) -> None:
    w = start([fake.addr])
    s, _ = opened(fake)
    s.grant(1, "t.block", encode_call(["abort-me"]))
    wait_started("abort-me")
    s.send(abort=wpb.Abort(task_id=1, attempt=1, reason="revoked"))
    s.grant(2, "t.add", encode_call([1, 1]))
    assert list(s.expect_results(1)) == [2]
    gate("abort-me").set()
    s.expect_nothing(0.5)
    assert worker_app.SAW_ABORT["abort-me"] is True
    w.worker.stop()
    w.join()


def test_a_stale_ack_is_taken_and_the_result_is_not_sent_again(fake: FakeNode) -> None:
    w = start([fake.addr])
    s, _ = opened(fake)
    s.grant(1, "t.add", encode_call([1, 2]))
    assert list(s.expect_results(1)) == [1]
    s.ack(1, status=wpb.ResultAck.STATUS_STALE)
    s.grant(2, "t.add", encode_call([2, 3]))
    assert outcome(s.expect_results(1)[2]) == 5
    s.expect_nothing(0.3)
    w.worker.stop()
    w.join()


def test_after_a_broken_stream_it_resumes_what_it_holds_on_the_next_node() -> None:
    first, second = FakeNode(), FakeNode()
    try:
        w = start([first.addr, second.addr])
        s1, _ = opened(first)
        s1.grant(1, "t.block", encode_call(["resume"]))  # still running at the break
        s1.grant(2, "t.add", encode_call([20, 1]))  # answered, never acknowledged
        s1.grant(3, "t.add", encode_call([30, 1]))  # answered and acknowledged
        assert sorted(s1.expect_results(2)) == [2, 3]
        s1.ack(3)
        wait_started("resume")
        s1.expect_nothing(0.2)  # the ack is in
        s1.break_stream()
        first.stop()

        s2 = second.accept()
        hello = s2.expect("hello")
        assert sorted((lease.task_id, lease.attempt) for lease in hello.resume) == [(1, 1), (2, 1)]
        assert hello.concurrency == 2, "its threads: the node holds what it leases ahead"
        assert not hello.HasField("prefetch"), "auto: the node's rule"
        s2.welcome()
        r = s2.expect_results(1)[2]
        assert outcome(r) == 21, "the unacknowledged result is sent again"
        gate("resume").set()
        assert outcome(s2.expect_results(1)[1]) == "released resume"
        s2.ack_many([(1, 1), (2, 1)])
        s2.expect_nothing(0.3)
        w.worker.stop()
        w.join()
    finally:
        first.stop()
        second.stop()


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION]
)
def test_a_refused_session_starts_clean_without_resume(
    fake: FakeNode, code: grpc.StatusCode
) -> None:
    key = f"refused-{code.name}"
    w = start([fake.addr])
    s1, _ = opened(fake)
    s1.grant(1, "t.block", encode_call([key]))
    s1.grant(2, "t.add", encode_call([1, 1]))
    assert list(s1.expect_results(1)) == [2]
    wait_started(key)
    s1.refuse("result for a task the session never sent", code)
    s2 = fake.accept()
    assert list(s2.expect("hello").resume) == []
    s2.welcome()
    gate(key).set()
    s2.expect_nothing(0.5)  # neither the abandoned attempt's result nor the unacked one
    w.worker.stop()
    w.join()


def test_a_name_already_live_on_the_node_is_retried_with_resume(fake: FakeNode) -> None:
    """ALREADY_EXISTS refuses the Hello, not our leases: our previous session may be the live
    one (the node has not noticed it died yet); the worker tries again, resuming."""
    w = start([fake.addr])
    s1, _ = opened(fake)
    s1.grant(1, "t.add", encode_call([1, 1]))
    assert list(s1.expect_results(1)) == [1]
    s1.break_stream()
    s2 = fake.accept()
    assert [x.task_id for x in s2.expect("hello").resume] == [1]
    s2.refuse("worker name w1 is in use on this node", grpc.StatusCode.ALREADY_EXISTS)
    s3, hello = opened(fake)
    assert [x.task_id for x in hello.resume] == [1]
    assert list(s3.expect_results(1)) == [1]
    w.worker.stop()
    w.join()


def test_a_silent_node_is_left_for_another(fake: FakeNode) -> None:
    w = start([fake.addr])
    s1, _ = opened(fake, ping_interval_ms=100)
    s1.grant(1, "t.add", encode_call([1, 1]))
    assert list(s1.expect_results(1)) == [1]
    # No ping for 3 intervals: the worker gives up on the stream and resumes elsewhere.
    s2 = fake.accept(timeout=5)
    assert [(x.task_id, x.attempt) for x in s2.expect("hello").resume] == [(1, 1)]
    w.worker.stop()
    w.join()


def test_drain_answers_what_runs_keeps_its_side_open_and_exits_on_drained(
    fake: FakeNode,
) -> None:
    w = start([fake.addr])
    s, _ = opened(fake)
    s.grant(1, "t.block", encode_call(["drain"]))
    wait_started("drain")
    w.worker.drain()
    s.expect("drain")
    s.expect_nothing(0.3)  # the running task is not cut short
    gate("drain").set()
    assert outcome(s.expect_results(1)[1]) == "released drain"
    s.send(ping=wpb.Ping(nonce=7))
    assert s.expect("pong").nonce == 7, "still answering: the side stays open until Drained"
    s.ack(1)
    s.expect_nothing(0.3)  # not closed before Drained
    s.send(drained=wpb.Drained())
    s.expect_closed()
    s.end()
    assert w.join() == 0
    assert not s.cancelled.is_set(), "the worker let the node end the call after Drained"


def test_a_task_granted_after_drain_is_released_unstarted(fake: FakeNode) -> None:
    w = start([fake.addr])
    s, _ = opened(fake)
    s.grant(1, "t.block", encode_call(["late"]))
    wait_started("late")
    w.worker.drain()
    s.expect("drain")
    s.grant(2, "t.block", encode_call(["never-started"]))  # crossed the Drain on the wire
    r = s.expect_results(1)[2]
    assert r.WhichOneof("outcome") == "released"
    assert "never-started" not in worker_app.STARTED
    gate("late").set()
    assert outcome(s.expect_results(1)[1]) == "released late"
    s.ack_many([(2, 1), (1, 1)])
    s.send(drained=wpb.Drained())
    s.expect_closed()
    assert w.join() == 0


def test_prefetched_tasks_wait_for_a_slot_and_are_released_by_a_drain(fake: FakeNode) -> None:
    w = start([fake.addr], concurrency=1, prefetch=2)
    s, hello = opened(fake)
    assert hello.concurrency == 3
    s.grant_many(
        [
            task(1, "t.block", encode_call(["slot"])),
            task(2, "t.add", encode_call([1, 1])),
            task(3, "t.block", encode_call(["prefetched"])),
        ]
    )
    wait_started("slot")
    s.expect_nothing(0.3)  # one slot: the others wait
    w.worker.drain()
    s.expect("drain")
    released = s.expect_results(2)
    assert {r.WhichOneof("outcome") for r in released.values()} == {"released"}
    assert sorted(released) == [2, 3]
    gate("slot").set()
    assert outcome(s.expect_results(1)[1]) == "released slot"
    assert "prefetched" not in worker_app.STARTED
    s.ack_many([(1, 1), (2, 1), (3, 1)])
    s.send(drained=wpb.Drained())
    assert w.join() == 0


def test_an_abort_of_a_prefetched_task_drops_it(fake: FakeNode) -> None:
    w = start([fake.addr], concurrency=1, prefetch=1)
    s, _ = opened(fake)
    s.grant_many([task(1, "t.block", encode_call(["busy"])), task(2, "t.add", encode_call([2, 2]))])
    wait_started("busy")
    s.send(abort=wpb.Abort(task_id=2, attempt=1, reason="revoked"))
    s.expect_nothing(0.2)
    gate("busy").set()
    assert list(s.expect_results(1)) == [1]
    s.expect_nothing(0.3)  # task 2 never ran
    w.worker.stop()
    w.join()


def test_a_stream_broken_while_draining_delivers_the_rest_in_a_resume_only_session(
    fake: FakeNode,
) -> None:
    w = start([fake.addr])
    s1, _ = opened(fake)
    s1.grant(1, "t.add", encode_call([3, 4]))
    assert list(s1.expect_results(1)) == [1]
    w.worker.drain()
    s1.expect("drain")
    s1.break_stream()
    s2 = fake.accept()
    hello = s2.expect("hello")
    assert [x.task_id for x in hello.resume] == [1]
    assert hello.concurrency == 0, "a draining worker only resumes"
    s2.expect("drain")
    s2.welcome()
    assert outcome(s2.expect_results(1)[1]) == 7
    s2.ack(1)
    s2.send(drained=wpb.Drained())
    s2.expect_closed()
    assert w.join() == 0


def test_a_draining_worker_with_nothing_held_exits_when_its_stream_breaks(
    fake: FakeNode,
) -> None:
    w = start([fake.addr])
    s1, _ = opened(fake)
    s1.grant(1, "t.add", encode_call([3, 4]))
    assert list(s1.expect_results(1)) == [1]
    s1.ack(1)
    w.worker.drain()
    s1.expect("drain")
    s1.break_stream()
    assert w.join() == 0
    with pytest.raises(queue.Empty):
        fake.accept(timeout=0.5)


def test_the_cli_drains_on_sigterm_and_the_process_pool_runs_tasks(
    fake: FakeNode, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    cmd = [
        sys.executable,
        "-m",
        "flotilla.worker.cli",
        "-A",
        "worker_app",
        "-c",
        "2",
        "--pool",
        "processes",
        "--nodes",
        fake.addr,
        "-Q",
        "default",
    ]
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(cmd, cwd=HERE, env=env, stderr=log, text=True)
    try:
        s, hello = opened(fake)
        assert list(hello.queues) == ["default"] and hello.concurrency == 2
        assert not hello.HasField("prefetch"), "--prefetch auto by default"
        s.grant_many([task(1, "t.pid", b"null"), task(2, "t.add", encode_call([5, 5]))])
        results = {i: outcome(r) for i, r in s.expect_results(2, 60).items()}
        assert results[2] == 10
        assert results[1] not in (os.getpid(), proc.pid), "ran in a child process"
        proc.send_signal(signal.SIGTERM)
        s.expect("drain")
        s.ack_many([(1, 1), (2, 1)])
        s.send(drained=wpb.Drained())
        s.expect_closed()
        s.end()
        assert proc.wait(timeout=30) == 0, (tmp_path / "worker.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_cli_refuses_an_app_it_cannot_load() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "flotilla.worker.cli", "-A", "no_such_module_here"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2 and "no_such_module_here" in out.stderr
