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
        self.terminate()
        self.join()

    def terminate(self) -> None:
        """SIGTERM: the node shuts down gracefully (``join`` waits for it)."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)

    def join(self, timeout: float = 15.0) -> None:
        """Wait for the node to exit; SIGKILL past ``timeout``."""
        if self.proc is not None:
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
            self.proc = None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


#: Raft timing of test clusters (tests/tests/cluster/main.rs): tolerant of a loaded machine.
TOLERANT_TIMING = (
    "--heartbeat-interval-ms",
    "100",
    "--election-timeout-ms-min",
    "500",
    "--election-timeout-ms-max",
    "1000",
)


class Cluster:
    """``n`` nodes on loopback: the first founds the cluster, the others join through it;
    ready once every node sees ``n`` voters under one leader."""

    def __init__(self, base: Path, n: int, *extra_args: str) -> None:
        self.nodes: list[NodeProcess] = []
        base.mkdir(parents=True, exist_ok=True)
        try:
            first = NodeProcess(base / "n1", *extra_args, *TOLERANT_TIMING)
            self.nodes.append(first)
            first.wait_ready()
            for i in range(2, n + 1):
                self.nodes.append(
                    NodeProcess(base / f"n{i}", "--join", first.addr, *extra_args, *TOLERANT_TIMING)
                )
            for node in self.nodes:
                self._wait_formed(node, n)
        except BaseException:
            self.stop()
            raise

    @property
    def addrs(self) -> list[str]:
        return [n.addr for n in self.nodes]

    def _wait_formed(self, node: NodeProcess, n: int, timeout: float = 60.0) -> None:
        client = flotilla.Client(node.addr, retry=flotilla.RetryPolicy(max_elapsed=2.0))
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    s = client.status()
                    voters = [m for m in s.members if m.role != "learner"]
                    if len(voters) == n and len(s.members) == n and s.leader_id is not None:
                        return
                except flotilla.FlotillaError:
                    pass
                time.sleep(0.1)
            raise RuntimeError(f"cluster not formed within {timeout} s: {node.log()}")
        finally:
            client.close()

    def leader(self) -> int:
        """Index in ``nodes`` of the leader, as the live nodes see it."""
        client = flotilla.Client(self.addrs, retry=flotilla.RetryPolicy(max_elapsed=10.0))
        try:
            s = client.status()
        finally:
            client.close()
        by_id = {m.id: m.addr for m in s.members}
        if s.leader_id is None or s.leader_id not in by_id:
            raise RuntimeError("no leader")
        return self.addrs.index(by_id[s.leader_id])

    def stop(self) -> None:
        """Every node at once."""
        for node in self.nodes:
            node.terminate()
        for node in self.nodes:
            node.join()
