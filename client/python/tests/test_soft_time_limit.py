"""The soft time limit: submitted as a header, raised as ``SoftTimeLimitExceeded`` in the thread
running the handler before the hard limit, and never after the handler returned."""

from __future__ import annotations

import threading
import time
from typing import Any

from flotilla import Flotilla, SoftTimeLimitExceeded
from flotilla.payload import encode_call
from flotilla.spec import SOFT_TIME_LIMIT_HEADER, SubmitOptions, build_spec
from flotilla.task import TaskContext
from flotilla.worker.outcome import Failure, Success, execute

app = Flotilla("127.0.0.1:1")


@app.task(name="spin")
def spin(seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.005)
    return "finished"


@app.task(name="careful")
def careful() -> str:
    try:
        while True:
            time.sleep(0.005)
    except SoftTimeLimitExceeded:
        return "saved my work"


@app.task(name="quick")
def quick() -> str:
    return "quick"


def ctx(name: str, soft_ms: int | None) -> TaskContext:
    headers = {} if soft_ms is None else {SOFT_TIME_LIMIT_HEADER: str(soft_ms)}
    return TaskContext(id=1, attempt=1, name=name, queue="python", retries_left=0, headers=headers)


def run(name: str, soft_ms: int | None, *args: Any) -> Any:
    return execute(app.tasks, ctx(name, soft_ms), encode_call(list(args), {}))


def test_the_soft_limit_travels_as_a_header_in_whole_ms() -> None:
    spec = build_spec("t", options=SubmitOptions(soft_time_limit=1.2345, headers={"a": "b"}))
    assert dict(spec.headers) == {"a": "b", SOFT_TIME_LIMIT_HEADER: "1235"}
    assert SOFT_TIME_LIMIT_HEADER not in build_spec("t").headers
    opts = SubmitOptions(soft_time_limit=0.0)
    assert build_spec("t", options=opts).headers[SOFT_TIME_LIMIT_HEADER] == "1"
    assert ctx("t", 250).soft_time_limit_ms == 250
    assert ctx("t", None).soft_time_limit_ms is None
    assert TaskContext(1, 1, "t", "q", 0, {SOFT_TIME_LIMIT_HEADER: "x"}).soft_time_limit_ms is None


def test_an_uncaught_soft_limit_fails_the_attempt_at_its_time() -> None:
    start = time.monotonic()
    outcome = run("spin", 50, 5.0)
    elapsed = time.monotonic() - start
    assert isinstance(outcome, Failure)
    assert (outcome.kind, outcome.retryable) == ("SoftTimeLimitExceeded", True)
    assert 0.04 <= elapsed < 2.0


def test_a_handler_may_catch_it_and_return() -> None:
    assert run("careful", 30) == Success(b'"saved my work"')


def test_nothing_is_raised_after_the_handler_returned_nor_without_a_limit() -> None:
    # A 1 ms limit may pass before or while the handler runs (a loaded machine): then it is the
    # attempt's failure; never an exception out of `execute`, nor one after it returned.
    for _ in range(20):
        outcome = run("quick", 1)
        assert outcome == Success(b'"quick"') or (
            isinstance(outcome, Failure) and outcome.kind == "SoftTimeLimitExceeded"
        ), outcome
    # Past every limit asked above: no late exception reaches this thread.
    time.sleep(0.05)
    assert run("spin", None, 0.05) == Success(b'"finished"')


def test_it_is_raised_in_the_thread_running_the_attempt_only() -> None:
    outcomes: list[Any] = []
    worker = threading.Thread(target=lambda: outcomes.append(run("spin", 30, 5.0)))
    worker.start()
    # This thread keeps running past the limit, untouched.
    deadline = time.monotonic() + 0.2
    while time.monotonic() < deadline:
        time.sleep(0.005)
    worker.join(5)
    assert isinstance(outcomes[0], Failure) and outcomes[0].kind == "SoftTimeLimitExceeded"
