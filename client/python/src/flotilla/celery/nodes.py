"""Node lists from ``flotilla://`` URLs, one :class:`~flotilla.Client` per process and node
list (a prefork child must not use the channels of the parent it was forked from), and its
:class:`Submitter`, which puts the messages that threads publish at the same time into one
Submit."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from typing import Optional

from flotilla.client import Client
from flotilla.errors import InvalidArgument
from flotilla.info import Submitted
from flotilla.v1 import queue_pb2 as qpb

SCHEME = "flotilla://"
DEFAULT_PORT = 7000

_clients: dict[tuple[int, tuple[str, ...]], Client] = {}
_submitters: dict[tuple[int, tuple[str, ...]], Submitter] = {}
_lock = threading.Lock()


def nodes_from_urls(urls: Iterable[str]) -> list[str]:
    """``host:port`` of every node in ``flotilla://h1:7000,h2:7001`` URLs (Kombu splits the
    ``;`` form ``flotilla://h1:7000;flotilla://h2:7001`` into several URLs itself)."""
    nodes: list[str] = []
    for url in urls:
        for part in url.split(";"):
            rest = part.strip()
            if rest.startswith(SCHEME):
                rest = rest[len(SCHEME) :]
            rest = rest.split("/", 1)[0].split("?", 1)[0]
            for item in rest.split(","):
                host = item.strip()
                if host:
                    nodes.append(host if ":" in host else f"{host}:{DEFAULT_PORT}")
    if not nodes:
        nodes.append(f"127.0.0.1:{DEFAULT_PORT}")
    return list(dict.fromkeys(nodes))


def client_for(nodes: Iterable[str]) -> Client:
    """The client of this process for ``nodes``, made on first use."""
    key = (os.getpid(), tuple(nodes))
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = Client(list(key[1]))
            _clients[key] = client
        return client


class _Slot:
    __slots__ = ("error", "result", "spec")

    def __init__(self, spec: qpb.TaskSpec) -> None:
        self.spec = spec
        self.result: Optional[Submitted] = None
        self.error: Optional[BaseException] = None


class Submitter:
    """Group commit for publishers: a Submit is one log entry whatever its size, and its
    reply comes after the commit, so threads that publish while a Submit is in flight wait
    for it, and the first of them then sends all their messages in the next one. One thread
    publishing alone sends one message per Submit, as before; none waits for a timer."""

    #: Most messages in one Submit.
    MAX_BATCH = 500

    def __init__(self, client: Client) -> None:
        self.client = client
        self._cond = threading.Condition()
        self._pending: list[_Slot] = []
        self._busy = False

    def submit(self, spec: qpb.TaskSpec) -> Submitted:
        """Submit ``spec`` (alone or with others); its own error if it is refused."""
        slot = _Slot(spec)
        with self._cond:
            self._pending.append(slot)
            while slot.result is None and slot.error is None:
                if self._busy:
                    self._cond.wait()
                    continue
                batch = self._pending[: self.MAX_BATCH]
                del self._pending[: self.MAX_BATCH]
                self._busy = True
                self._cond.release()
                try:
                    self._send(batch)
                finally:
                    self._cond.acquire()
                    self._busy = False
                    self._cond.notify_all()
        if slot.error is not None:
            raise slot.error
        assert slot.result is not None
        return slot.result

    def _send(self, batch: list[_Slot]) -> None:
        try:
            results = self.client.submit([s.spec for s in batch])
        except InvalidArgument as e:
            if len(batch) == 1:
                batch[0].error = e
                return
            # One message refused refuses the whole Submit: find it by sending each alone
            # (their idempotency keys make this safe).
            for s in batch:
                self._send([s])
            return
        except BaseException as e:
            for s in batch:
                s.error = e
            return
        for s, r in zip(batch, results):
            s.result = r


def submitter_for(nodes: Iterable[str]) -> Submitter:
    """The submitter of this process's client for ``nodes``."""
    client = client_for(nodes)
    key = (os.getpid(), tuple(client.addrs))
    with _lock:
        submitter = _submitters.get(key)
        if submitter is None or submitter.client is not client:
            submitter = Submitter(client)
            _submitters[key] = submitter
        return submitter
