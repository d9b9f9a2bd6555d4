"""The app of the kill -9 test (test_worker_kill.py): a short task that records each run."""

from __future__ import annotations

import os
import time

from flotilla import Flotilla

app = Flotilla(os.environ.get("QUEUE_APP_NODE", "127.0.0.1:1"))


@app.task(name="kill.mark", queue="python-kill")
def mark(i: int) -> int:
    with open(os.environ["QUEUE_APP_RUNS"], "a") as f:
        f.write(f"{i}\n")
    time.sleep(0.001)
    return i
