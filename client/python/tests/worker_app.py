"""The app the worker tests run (importable, so the process pool's children load it too)."""

from __future__ import annotations

import os
import threading
from typing import Any

from flotilla import Flotilla, Reject, Task

app = Flotilla("127.0.0.1:1")  # the worker tests name their (fake) node explicitly

#: Gates the `block` task waits on, by key; the test opens them.
GATES: dict[str, threading.Event] = {}
#: Set when a `block` attempt starts, by key.
STARTED: dict[str, threading.Event] = {}
#: Whether each `block` attempt saw its abort flag, by key.
SAW_ABORT: dict[str, bool] = {}


@app.task(name="t.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="t.value_error")
def value_error(message: str) -> None:
    raise ValueError(message)


@app.task(name="t.reject")
def reject(message: str) -> None:
    raise Reject(message)


@app.task(name="t.retry_later", bind=True)
def retry_later(self: Task) -> None:
    raise self.retry(countdown=5)


@app.task(name="t.request", bind=True)
def request(self: Task) -> dict[str, Any]:
    r = self.request
    return {"id": r.id, "attempt": r.attempt, "retries": r.retries, "headers": r.headers}


@app.task(name="t.block", bind=True)
def block(self: Task, key: str) -> str:
    gate = GATES.setdefault(key, threading.Event())
    STARTED.setdefault(key, threading.Event()).set()
    gate.wait(30)
    SAW_ABORT[key] = self.request.aborted.is_set()
    return f"released {key}"


@app.task(name="t.big", queue="other")
def big(n: int) -> str:
    return "x" * n


@app.task(name="t.not_json")
def not_json() -> Any:
    return object()


@app.task(name="t.pid")
def pid() -> int:
    return os.getpid()
