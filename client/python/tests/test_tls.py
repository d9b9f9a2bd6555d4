"""TLS: a node started with certificates that ``flotilla certs`` made serves a client given the
CA (``tls_ca=``, or ``$FLOTILLA_TLS_CA``); a plaintext client gets nothing from it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import flotilla
from nodes import NodeProcess, cli_binary


def certs(*args: str) -> None:
    subprocess.run([str(cli_binary()), "certs", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def tls_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    root: Path = tmp_path_factory.mktemp("tls")
    ca, c = root / "ca", root / "c"
    certs("ca", "--out", str(ca))
    hosts = "localhost,127.0.0.1"
    certs("node", "--ca", str(ca), "--cluster", "py", "--name", hosts, "--out", str(c))
    flags = ["--tls-cert", str(c / "node.pem"), "--tls-key", str(c / "node.key")]
    n = NodeProcess(root / "n1", *flags, "--tls-ca", str(c / "ca.pem"), tls_ca=str(c / "ca.pem"))
    try:
        n.wait_ready()
        yield n
    finally:
        n.stop()


def test_a_tls_client_submits_and_reads_results(tls_node: NodeProcess) -> None:
    app = flotilla.Flotilla(tls_node.addr, tls_ca=tls_node.tls_ca)
    try:
        assert app.send_task("echo", args=["over tls"]).get(timeout=10) == "over tls"
    finally:
        app.close()


def test_the_ca_comes_from_the_environment(
    tls_node: NodeProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert tls_node.tls_ca is not None
    monkeypatch.setenv("FLOTILLA_TLS_CA", tls_node.tls_ca)
    with flotilla.Client(tls_node.addr) as client:
        assert client.status().leader_id is not None


def test_a_plaintext_client_gets_nothing(
    tls_node: NodeProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLOTILLA_TLS_CA", raising=False)
    policy = flotilla.RetryPolicy(max_elapsed=0.5)
    client = flotilla.Client(tls_node.addr, retry=policy)
    try:
        with pytest.raises(flotilla.Unavailable):
            client.status()
    finally:
        client.close()


def test_a_ca_file_that_is_not_one_fails_at_once(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ValueError, match="no PEM certificate"):
        flotilla.Client("127.0.0.1:1", tls_ca=str(bad))
    with pytest.raises(FileNotFoundError):
        flotilla.Client("127.0.0.1:1", tls_ca=str(tmp_path / "missing.pem"))
