"""Fixtures: a real single-node cluster for the client tests (one per test session: starting a
node is the slow part), and a fresh app on it per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import flotilla
from nodes import NodeProcess


@pytest.fixture(scope="session")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    data: Path = tmp_path_factory.mktemp("node") / "n1"
    n = NodeProcess(data)
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
