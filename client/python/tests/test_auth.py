"""Tokens from Python (issue 14): a node that requires tokens refuses an anonymous or
wrong-role caller with typed errors, and accepts ``token=`` or ``$FLOTILLA_TOKEN``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import flotilla
from nodes import NodeProcess


@pytest.fixture(scope="module")
def strict_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    data: Path = tmp_path_factory.mktemp("strict") / "n1"
    n = NodeProcess(data, "--require-token")
    try:
        n.wait_ready(token=n.admin_token())
        yield n
    finally:
        n.stop()


def _app(node: NodeProcess, token: str | None) -> flotilla.Flotilla:
    return flotilla.Flotilla(node.addr, retry=flotilla.RetryPolicy(max_elapsed=5.0), token=token)


def test_without_a_token_the_call_is_unauthenticated(
    strict_node: NodeProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLOTILLA_TOKEN", raising=False)
    app = _app(strict_node, None)
    try:
        with pytest.raises(flotilla.Unauthenticated):
            app.client.stats()
        with pytest.raises(flotilla.Unauthenticated):
            _app(strict_node, "flt_not_a_token_0123456789abcdef").client.stats()
    finally:
        app.close()


def test_a_token_from_the_argument_or_the_environment_is_presented(
    strict_node: NodeProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = strict_node.admin_token()
    app = _app(strict_node, token)
    try:

        @app.task(name="echo")
        def echo(**kwargs: object) -> object:
            raise AssertionError("runs on the node")

        assert echo.delay(msg="hi").get(timeout=30) == {"msg": "hi"}
    finally:
        app.close()
    monkeypatch.setenv("FLOTILLA_TOKEN", token)
    from_env = _app(strict_node, None)
    try:
        assert from_env.client.status().leader_id is not None
    finally:
        from_env.close()
