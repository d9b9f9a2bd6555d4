"""The way from a Celery pool process to its worker's main process: a task's outcome goes from
the process that ran it to the process whose session holds the lease (docs/CELERY.md,
"Consuming").

The main process listens on a Unix stream socket, ``<tmp>/flotilla-celery-<uid>/<pid>.sock``,
in a directory only its user may enter (so only this user's processes can report). A pool
process finds it from its parent's pid: prefork children are forked before the consumer
starts, so nothing can be handed down to them. A frame is two 4-byte lengths (header, data),
a JSON header ``[task_id, attempt, outcome kind, message, failure kind, retryable, delay]`` and
the result bytes. A report whose main process is gone is dropped: that process's stream broke
with it, and the node released the lease.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import stat
import struct
import tempfile
import threading
from collections.abc import Callable
from typing import Optional

from flotilla.worker.core import Key
from flotilla.worker.outcome import Failure, Outcome, Released, Success

log = logging.getLogger("flotilla.celery")

_LENGTHS = struct.Struct("!II")
#: Larger frames are refused (a result is at most the node's max_result_bytes, 1 MiB by default).
MAX_FRAME_BYTES = 256 * 1024 * 1024

Deliver = Callable[[Key, Outcome], None]


def socket_dir() -> str:
    """This user's directory of inbox sockets, made private if new; refused if anyone else
    could enter it."""
    path = os.path.join(tempfile.gettempdir(), f"flotilla-celery-{os.getuid()}")
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise PermissionError(f"{path} must be a directory of this user, mode 0700")
    return path


def socket_path(pid: int) -> str:
    return os.path.join(socket_dir(), f"{pid}.sock")


def encode(lease: Key, outcome: Outcome) -> bytes:
    data = b""
    if isinstance(outcome, Success):
        header: list[object] = [*lease, "s"]
        data = outcome.data
    elif isinstance(outcome, Failure):
        header = [
            *lease,
            "f",
            outcome.message,
            outcome.kind,
            outcome.retryable,
            outcome.retry_delay_ms,
        ]
    else:
        header = [*lease, "r"]
    head = json.dumps(header, separators=(",", ":")).encode()
    return _LENGTHS.pack(len(head), len(data)) + head + data


def decode(head: bytes, data: bytes) -> tuple[Key, Outcome]:
    fields = json.loads(head)
    lease = (int(fields[0]), int(fields[1]))
    kind = fields[2]
    if kind == "s":
        return lease, Success(data)
    if kind == "f":
        return lease, Failure(str(fields[3]), str(fields[4]), bool(fields[5]), int(fields[6]))
    if kind == "r":
        return lease, Released()
    raise ValueError(f"unknown outcome kind {kind!r}")


def _read_exactly(conn: socket.socket, n: int) -> Optional[bytes]:
    chunks, left = [], n
    while left:
        chunk = conn.recv(min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class Inbox:
    """The main process's end: outcomes from its pool processes, handed to ``deliver`` (from
    the inbox's threads)."""

    def __init__(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self.path = socket_path(os.getpid())
        if os.path.exists(self.path):
            os.unlink(self.path)  # left by an earlier process that had our pid
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(self.path)
        self._sock.listen(64)
        self._closed = False
        threading.Thread(target=self._accept, name="flotilla-inbox", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        with conn:
            while True:
                try:
                    lengths = _read_exactly(conn, _LENGTHS.size)
                    if lengths is None:
                        return
                    head_len, data_len = _LENGTHS.unpack(lengths)
                    if head_len + data_len > MAX_FRAME_BYTES:
                        log.error("inbox: a frame of %d bytes refused", head_len + data_len)
                        return
                    head = _read_exactly(conn, head_len)
                    data = _read_exactly(conn, data_len) if data_len else b""
                    if head is None or data is None:
                        return
                    lease, outcome = decode(head, data)
                except (OSError, ValueError, IndexError, TypeError) as e:
                    log.error("inbox: a pool process sent a bad frame: %s", e)
                    return
                self._deliver(lease, outcome)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


class _Outbox:
    """A pool process's end: one connection to its main process, made on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conn: Optional[tuple[int, socket.socket]] = None

    def send(self, lease: Key, outcome: Outcome) -> bool:
        frame = encode(lease, outcome)
        with self._lock:
            for _ in range(2):  # a connection broken since the last report: once more, anew
                conn = self._connection()
                if conn is None:
                    return False
                try:
                    conn.sendall(frame)
                    return True
                except OSError:
                    self._drop()
            return False

    def _connection(self) -> Optional[socket.socket]:
        pid = os.getpid()
        if self._conn is not None and self._conn[0] == pid:
            return self._conn[1]
        self._conn = None  # a connection inherited from the process we were forked from
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(socket_path(os.getppid()))
        except OSError as e:
            sock.close()
            log.warning("no Flotilla session in the parent process (pid %d): %s", os.getppid(), e)
            return None
        self._conn = (pid, sock)
        return sock

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn[1].close()
            self._conn = None


_OUTBOX = _Outbox()


def send_to_parent(lease: Key, outcome: Outcome) -> bool:
    """Report ``outcome`` for ``lease`` to the parent process's inbox; False if there is none."""
    return _OUTBOX.send(lease, outcome)
