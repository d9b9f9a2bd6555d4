"""The ``flotilla://`` Kombu transport (a Kombu *virtual* transport: Kombu keeps exchanges and
bindings in process and calls ``_put`` and ``drain_events`` per channel).

- Publishing: ``_put`` submits the message as one Flotilla task (``mapping``); the reply comes
  after the task is committed by a majority, so ``delay()`` returning means the task is
  durable. A message re-publishing the task the current thread runs (Celery's ``retry``) is
  not sent: the retry is that task's next attempt (``outcomes.held_back``).
- Consuming: the first ``drain_events`` after ``basic_consume`` opens the channel's
  ``WorkerService`` session (``session.py``) for the consumed queues, its concurrency twice
  Kombu's prefetch count (set by Celery's ``basic_qos`` before it consumes). A granted task is
  delivered as the message it was published as, the lease ``(task, attempt)`` in its delivery
  tag; Kombu's prefetch limits how many are delivered unacknowledged, as on any broker.
- Answers: the outcome the backend stores, or the task's end (``outcomes``), completes the
  lease, whether Celery acknowledges early or late; an ack is Kombu's bookkeeping only.
  ``basic_reject(requeue=True)`` and the restore of unacknowledged messages when the channel
  closes release the lease (pending again at once, no attempt used); ``requeue=False`` fails
  the task for good. Closing the channel drains the session.
"""

from __future__ import annotations

import json
import logging
from queue import Empty
from typing import Any, Optional

from kombu.exceptions import ConnectionError as KombuConnectionError
from kombu.transport import virtual

from flotilla.celery import outcomes
from flotilla.celery.mapping import (
    SUBMITTED,
    idempotency_key,
    lease_of,
    revoked_ids,
    spec_from_message,
)
from flotilla.celery.nodes import DEFAULT_PORT, client_for, nodes_from_urls, submitter_for
from flotilla.celery.session import ConsumerSession, session_name
from flotilla.worker.core import Identity, Key
from flotilla.worker.outcome import Failure, Released

log = logging.getLogger("flotilla.celery")

#: Longest ``drain_events`` waits for a message in one call when Kombu gives no timeout.
MAX_WAIT_S = 1.0
#: Kombu's prefetch when it is unlimited (prefetch count 0).
UNLIMITED_PREFETCH = 500
#: A session holds this many prefetch windows: the messages Kombu may hold unacknowledged,
#: and as many answered ones whose commit (which grants the next task) is on its way. With
#: one window, every task would wait a commit round trip for its slot.
SESSION_WINDOWS = 2
#: The most a Hello may ask for (docs/WORKERS.md).
MAX_CONCURRENCY = 10_000

outcomes.connect_signals()


class Channel(virtual.Channel):
    """One Kombu channel over the cluster: publishes through the QueueService, consumes
    through a WorkerService session."""

    #: Celery's remote control and events need fanout exchanges; Flotilla has no broadcast.
    supports_fanout = False

    _session: Optional[ConsumerSession] = None

    def _nodes(self) -> list[str]:
        client = self.connection.client
        return nodes_from_urls([client.hostname or "", *(client.alt or [])])

    def _put(self, queue: str, message: dict[str, Any], **kwargs: Any) -> None:
        if outcomes.held_back(message):
            return
        spec = spec_from_message(queue, message)
        submitted = submitter_for(self._nodes()).submit(spec)
        celery_id = message["headers"]["id"]
        SUBMITTED.put(str(celery_id), submitted.id)

    def basic_publish(self, message: Any, exchange: str, routing_key: str, **kwargs: Any) -> Any:
        """Broadcasts (fanout exchanges: Celery's remote control) reach no worker: Flotilla has
        no fanout. A ``revoke`` among them cancels the tasks it names that have not started
        (found by their Celery ids from any process); every other broadcast is dropped."""
        if exchange and self.typeof(exchange).type == "fanout":  # type: ignore[no-untyped-call]
            ids = revoked_ids(message)
            if ids:
                self._revoke(ids)
            return None
        return super().basic_publish(message, exchange, routing_key, **kwargs)  # type: ignore[no-untyped-call]

    def _revoke(self, celery_ids: list[str]) -> None:
        client = client_for(self._nodes())
        found = client.find_by_idempotency_keys([idempotency_key(i) for i in celery_ids])
        tasks = [t for t in found if t is not None]
        cancelled = client.cancel(tasks) if tasks else []
        log.info(
            "revoke: ids=%d found=%d cancelled=%d (started tasks run on)",
            len(celery_ids),
            len(tasks),
            sum(cancelled),
        )

    # ---- consuming ---------------------------------------------------------------------

    def drain_events(self, timeout: Any = None, callback: Any = None) -> None:
        """Deliver the granted messages Kombu's prefetch has room for; wait up to ``timeout``
        (at most ``MAX_WAIT_S``) for the first, else raise ``Empty``."""
        if not self._consumers:
            raise Empty()
        session = self._session or self._open_session()
        if session.finished.is_set():
            # Ended on its own (not by our close): Celery's consumer restarts on this error,
            # with a new connection and session.
            self._session = None
            raise KombuConnectionError("the Flotilla worker session ended")
        deliver = callback or self.connection._deliver
        queues = list(self._active_queues)
        wait = MAX_WAIT_S if timeout is None else min(float(timeout), MAX_WAIT_S)
        ready = session.take(queues, wait, self.qos.can_consume)
        if ready is None:
            raise Empty()
        while ready is not None:
            _, queue, message = ready
            deliver(message, queue)
            ready = session.take(queues, 0.0, self.qos.can_consume)

    def _open_session(self) -> ConsumerSession:
        from celery import current_app

        queues = list(dict.fromkeys(self._active_queues))
        prefetch = int(self.qos.prefetch_count or 0) or UNLIMITED_PREFETCH
        identity = Identity(
            name=session_name(),
            queues=queues,
            tasks=[(name, queues[0]) for name in sorted(current_app.tasks.keys())],
            concurrency=min(SESSION_WINDOWS * prefetch, MAX_CONCURRENCY),
            agent=_agent(),
            prefetch=0,
        )
        session = ConsumerSession(self._nodes(), identity)
        session.start()
        self._session = session
        return session

    def _get(self, queue: str, timeout: Any = None) -> dict[str, Any]:
        """A message of ``queue`` already granted to this channel's session (``basic_get``)."""
        if self._session is None:
            raise Empty()
        ready = self._session.take([queue], 0.0, self.qos.can_consume)
        if ready is None:
            raise Empty()
        return ready[2]

    def _answer_message(self, message: Any, outcome: Any) -> None:
        lease = _lease_of_message(message)
        if lease is not None and self._session is not None:
            self._session.report(lease, outcome)

    def basic_ack(self, delivery_tag: Any, multiple: bool = False) -> None:
        """Kombu's bookkeeping: the task's outcome answers the lease, not the ack."""
        super().basic_ack(delivery_tag, multiple)  # type: ignore[no-untyped-call]
        if self._session is not None:
            self._session.notify()  # the prefetch has room again

    def basic_reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        """``requeue``: the lease is released (by ``_restore``); else the task fails for good
        (Celery's ``Reject(requeue=False)``, an unknown task, a message it cannot decode)."""
        if not requeue:
            try:
                message = self.qos.get(delivery_tag)
            except KeyError:
                message = None
            if message is not None:
                rejected = Failure(
                    json.dumps(
                        {
                            "exc_type": "Reject",
                            "exc_message": ["rejected by the Celery worker"],
                            "exc_module": "celery.exceptions",
                        }
                    ),
                    "",
                    retryable=False,
                )
                self._answer_message(message, rejected)
        super().basic_reject(delivery_tag, requeue)  # type: ignore[no-untyped-call]
        if self._session is not None:
            self._session.notify()

    def _restore(self, message: Any) -> None:
        """Give the message back: release its lease (re-publishing would be a duplicate)."""
        self._answer_message(message, Released())

    def close(self) -> None:
        """Kombu cancels the consumers and restores what was not acknowledged (released);
        then the session drains."""
        super().close()  # type: ignore[no-untyped-call]
        if self._session is not None:
            self._session.drain()

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
    #: A consuming channel's ``drain_events`` waits on its session itself; this short sleep
    #: only keeps a connection whose channels consume nothing from spinning.
    polling_interval = 0.01
    implements = virtual.Transport.implements.extend(
        asynchronous=False, exchange_type=frozenset(["direct", "topic"]), heartbeats=False
    )

    def driver_version(self) -> str:
        from flotilla import __version__

        return __version__

    def as_uri(self, uri: str, include_password: bool = False, mask: str = "**") -> str:
        return uri


def _lease_of_message(message: Any) -> Optional[Key]:
    properties = getattr(message, "properties", None) or {}
    return lease_of(properties.get("delivery_tag"))


def _agent() -> str:
    import platform

    from flotilla import __version__

    return (
        f"flotilla-python/{__version__} celery "
        f"{platform.python_implementation()}/{platform.python_version()}"
    )


def message_body(message: dict[str, Any]) -> Any:
    """The decoded body of a message as ``_put`` stored it (for tests and tools)."""
    import base64

    body = message["body"]
    if message["properties"].get("body_encoding") == "base64":
        body = base64.b64decode(body)
    return json.loads(body)
