"""The ``flotilla://`` Kombu transport (a Kombu *virtual* transport: Kombu keeps exchanges and
bindings in process and calls ``_put`` / ``_get`` per queue).

Submit side (done): ``_put`` submits the message as one Flotilla task (``mapping``); the reply
comes after the task is committed by a majority, so ``delay()`` returning means the task is
durable. Consuming (``_get``, ``basic_ack``, ``_restore``) needs the node's WorkerService and
is designed in docs/CELERY.md; until then a worker on ``flotilla://`` fails at start with a
message saying so, instead of idling on queues it cannot read.
"""

from __future__ import annotations

import json
from typing import Any

from kombu.transport import virtual

from flotilla.celery.mapping import SUBMITTED, spec_from_message
from flotilla.celery.nodes import DEFAULT_PORT, client_for, nodes_from_urls

CONSUMING_PENDING = (
    "consuming from flotilla:// needs the node's WorkerService, which this cluster does not "
    "serve yet (docs/CELERY.md): publish and read results only"
)


class Channel(virtual.Channel):
    """One Kombu channel over the cluster's QueueService."""

    #: Celery's remote control and events need fanout exchanges; Flotilla has no broadcast.
    supports_fanout = False

    def _nodes(self) -> list[str]:
        client = self.connection.client
        return nodes_from_urls([client.hostname or "", *(client.alt or [])])

    def _put(self, queue: str, message: dict[str, Any], **kwargs: Any) -> None:
        spec = spec_from_message(queue, message)
        (submitted,) = client_for(self._nodes()).submit([spec])
        celery_id = message["headers"]["id"]
        SUBMITTED.put(str(celery_id), submitted.id)

    def _get(self, queue: str, timeout: Any = None) -> dict[str, Any]:
        raise NotImplementedError(CONSUMING_PENDING)

    def basic_consume(
        self, queue: str, no_ack: bool, callback: Any, consumer_tag: str, **kwargs: Any
    ) -> Any:
        raise NotImplementedError(CONSUMING_PENDING)

    def _size(self, queue: str) -> int:
        """Tasks of ``queue`` that will still run (pending, scheduled or retrying)."""
        for q in client_for(self._nodes()).stats():
            if q.queue == queue:
                return q.pending + q.scheduled + q.retrying
        return 0

    def _purge(self, queue: str) -> int:
        raise NotImplementedError("purging a Flotilla queue needs the node's PurgeQueue call")

    def _delete(self, queue: str, *args: Any, **kwargs: Any) -> None:
        """Queues exist while they hold tasks: declaring or deleting one changes nothing."""

    def _new_queue(self, queue: str, **kwargs: Any) -> None:
        """As :meth:`_delete`."""

    def _has_queue(self, queue: str, **kwargs: Any) -> bool:
        return True


class Transport(virtual.Transport):
    """``flotilla://host:port[,host:port]`` (or Kombu's ``;``-separated URL list)."""

    Channel = Channel
    default_port = DEFAULT_PORT  # type: ignore[assignment]
    driver_type = "flotilla"
    driver_name = "flotilla"
    #: We parse our own URLs: Kombu's parser refuses ``host:port,host:port``.
    can_parse_url = True
    implements = virtual.Transport.implements.extend(
        asynchronous=False, exchange_type=frozenset(["direct", "topic"]), heartbeats=False
    )

    def driver_version(self) -> str:
        from flotilla import __version__

        return __version__

    def as_uri(self, uri: str, include_password: bool = False, mask: str = "**") -> str:
        return uri


def message_body(message: dict[str, Any]) -> Any:
    """The decoded body of a message as ``_put`` stored it (for tests and tools)."""
    import base64

    body = message["body"]
    if message["properties"].get("body_encoding") == "base64":
        body = base64.b64decode(body)
    return json.loads(body)
