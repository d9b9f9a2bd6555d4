"""The task module of ``sim bench --scenario python`` (issue 11's Python-worker figure): one
noop task named ``noop`` on the default queue, the name the sim's Rust load generator submits.

    flotilla-worker -A bench_noop --nodes 127.0.0.1:7000   # with this directory importable

The node's own pool runs nothing in that scenario (``--workers 0``), so every ``noop`` runs
here.
"""

from __future__ import annotations

import os

from flotilla import Flotilla

#: The worker's ``--nodes`` names the nodes; this is only the app's default.
app = Flotilla(os.environ.get("FLOTILLA_NODES", "127.0.0.1:7000"))


@app.task(name="noop", queue="default")
def noop() -> None:
    """Does nothing: what a task costs the worker, the stream and the node."""
    pass
