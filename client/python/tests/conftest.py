"""Fixtures: a real single-node cluster for the client tests (one per test session: starting a
node is the slow part), and a fresh app on it per test."""

from __future__ import annotations

import os

# The tests start subprocesses from a process running gRPC servers and channels. With gRPC's
# fork handlers on, CPython 3.9's subprocess fork can kill the child before it execs (gRPC
# restarts its poller in the child). These processes only fork to exec: turn them off, before
# grpc is first imported.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from collections.abc import Iterator
from pathlib import Path

import pytest

import flotilla
from nodes import NodeProcess


@pytest.fixture(scope="session")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    data: Path = tmp_path_factory.mktemp("node") / "n1"
    # The node's own pool runs the Rust built-ins these tests call, also on Celery's queue
    # and on a named one (a node serves only `default` unless told); never on `python`,
    # where the Python worker's tasks go.
    n = NodeProcess(data, "--queues", "default,celery,py-stats")
    try:
        n.wait_ready()
        yield n
    finally:
        n.stop()


@pytest.fixture
def app(node: NodeProcess) -> Iterator[flotilla.Flotilla]:
    a = flotilla.Flotilla(node.addr, retry=flotilla.RetryPolicy(max_elapsed=10.0))
    yield a
    a.close()
