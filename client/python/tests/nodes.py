"""Real ``node`` processes on loopback for the client tests (the Python side of
tests/src/lib.rs): a free port, a temporary data directory, stopped by pid at the end.

The binary is ``$FLOTILLA_NODE_BIN`` (set by the cargo harness, tests/tests/sdk/main.rs), else
``target/debug/node`` or ``target/release/node`` of this repository, whichever is newer.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Optional

import flotilla

REPO = Path(__file__).resolve().parents[3]


def node_binary() -> Path:
    env = os.environ.get("FLOTILLA_NODE_BIN")
    if env:
        return Path(env)
    built = [REPO / "target" / p / "node" for p in ("debug", "release")]
    found = [p for p in built if p.exists()]
    if not found:
        raise RuntimeError(
            "no node binary: set FLOTILLA_NODE_BIN or run `cargo build -p flotilla-node`"
        )
    return max(found, key=lambda p: p.stat().st_mtime)


def cli_binary() -> Path:
    """The ``flotilla`` CLI: ``$FLOTILLA_CLI_BIN`` (set by the cargo harness), else the newer of
    this repository's debug and release builds."""
    env = os.environ.get("FLOTILLA_CLI_BIN")
    if env:
        return Path(env)
    built = [REPO / "target" / p / "flotilla" for p in ("debug", "release")]
    found = [p for p in built if p.exists()]
    if not found:
        raise RuntimeError(
            "no flotilla binary: set FLOTILLA_CLI_BIN or run `cargo build -p flotilla-client`"
        )
    return max(found, key=lambda p: p.stat().st_mtime)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class NodeProcess:
    """One single-node cluster; ``addr`` is ``127.0.0.1:PORT``."""

    def __init__(self, data_dir: Path, *extra_args: str, tls_ca: Optional[str] = None) -> None:
        self.addr = f"127.0.0.1:{free_port()}"
        #: The CA a client needs when ``extra_args`` start the node with TLS.
        self.tls_ca = tls_ca
        self.data_dir = data_dir
        self.log_path = data_dir.with_suffix(".log")
        self.extra_args = extra_args
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.start()

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(node_binary()),
                    "--listen",
                    self.addr,
                    "--data-dir",
                    str(self.data_dir),
                    "--workers",
                    "2",
                    *self.extra_args,
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "info,openraft=warn")},
            )

    def admin_token(self, timeout: float = 30.0) -> str:
        """The first admin token, once the node has written it to its data directory."""
        deadline = time.monotonic() + timeout
        path = self.data_dir / "admin.token"
        while time.monotonic() < deadline:
            if path.exists() and path.read_text().strip():
                return path.read_text().strip()
            time.sleep(0.05)
        raise RuntimeError(f"no admin token within {timeout} s: {self.log()}")

    def wait_ready(self, timeout: float = 30.0, token: Optional[str] = None) -> None:
        """Until the node knows a leader (a fresh single node elects itself) and, with a token,
        accepts it."""
        client = flotilla.Client(
            self.addr,
            retry=flotilla.RetryPolicy(max_elapsed=timeout),
            tls_ca=self.tls_ca,
            token=token,
        )
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"node exited: {self.log()}")
                try:
                    if client.status().leader_id is not None:
                        return
                except flotilla.Unauthenticated:
                    pass  # the token is written before the cluster has applied it
                time.sleep(0.05)
            raise RuntimeError(f"node not ready within {timeout} s: {self.log()}")
        finally:
            client.close()

    def kill9(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill9()
            self.proc = None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""
