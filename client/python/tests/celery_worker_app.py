"""The Celery app that test_celery_worker.py runs under a stock ``celery -A celery_worker_app
worker``: its broker and backend are ``$FLOTILLA_TEST_BROKER``; every run of a task appends one
line to ``$FLOTILLA_TEST_RUNS`` (O_APPEND: lines of concurrent processes never mix), the side
channel that shows how often each task ran."""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery, Task
from celery.exceptions import Reject

URL = os.environ.get("FLOTILLA_TEST_BROKER", "flotilla://127.0.0.1:7000")
RUNS = os.environ.get("FLOTILLA_TEST_RUNS", os.devnull)

app = Celery("celery_worker_app", broker=URL, backend=URL)
# Short tasks: a larger prefetch window keeps more leases in flight per commit round trip
# (docs/CELERY.md, "Prefetch").
app.conf.worker_prefetch_multiplier = 16


def record(task: Task, *fields: Any) -> None:
    line = " ".join(str(f) for f in (task.request.id, task.name, task.request.retries, *fields))
    fd = os.open(RUNS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


@app.task(bind=True)
def mark(self: Task, i: int) -> int:
    record(self, i, os.getpid())
    return i


@app.task(bind=True, max_retries=2)
def flaky(self: Task) -> None:
    record(self)
    raise self.retry(exc=ValueError("not yet"), countdown=0.1)


@app.task(bind=True, ignore_result=True)
def quiet(self: Task) -> int:
    record(self)
    return 1


@app.task(bind=True)
def refuse(self: Task) -> None:
    record(self)
    raise Reject("no thanks", requeue=False)


@app.task(bind=True, max_retries=1)
def later(self: Task, countdown: float) -> str:
    """Retried once after ``countdown`` s; each run records when it started."""
    record(self, f"{time.time():.6f}")
    if self.request.retries == 0:
        raise self.retry(countdown=countdown)
    return "later"


#: ``autoretry_for`` with ``retry_backoff``: Celery's countdown for the first retry is
#: ``retry_backoff`` s (no jitter), three times the node's default backoff of 1 s.
BACKOFF_S = 3


@app.task(
    bind=True,
    autoretry_for=(ValueError,),
    retry_backoff=BACKOFF_S,
    retry_jitter=False,
    max_retries=1,
)
def backoff(self: Task) -> str:
    record(self, f"{time.time():.6f}")
    if self.request.retries == 0:
        raise ValueError("first run fails")
    return "backoff"
