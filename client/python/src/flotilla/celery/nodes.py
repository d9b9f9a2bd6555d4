"""Node lists from ``flotilla://`` URLs, and one :class:`~flotilla.Client` per process and node
list (a prefork child must not use the channels of the parent it was forked from)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable

from flotilla.client import Client

SCHEME = "flotilla://"
DEFAULT_PORT = 7000

_clients: dict[tuple[int, tuple[str, ...]], Client] = {}
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
