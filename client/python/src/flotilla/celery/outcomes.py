"""What a Celery task's lease is answered with, decided in the process that ran or settled the
task (docs/CELERY.md, "Consuming"):

- the result backend's store (:func:`stored`): ``SUCCESS`` → success with the encoded result;
  ``FAILURE`` and ``REVOKED`` → a failure that is not retried, its message Celery's exception
  document as JSON; ``RETRY`` → a retryable failure after the retry's countdown;
- else, when the task ends (``task_postrun``, :func:`on_postrun`), what Celery's final state
  says: a task whose result is not stored (``ignore_result``, another backend) still completes;
  ``IGNORED`` completes as a success with no result; ``REJECTED`` is left to the main process,
  which rejects the message (a release, or a failure);
- :func:`held_back`: a message published under the id of the task this thread is running is
  Celery's ``Task.retry`` re-publishing it; the transport does not send it (the retry is the
  same Flotilla task's next attempt), only keeps its countdown for the failure.

Each lease is answered once per process; the session keeps the first answer it gets.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Optional

from flotilla.celery.mapping import lease_of
from flotilla.spec import millis_ceil
from flotilla.worker.core import Key
from flotilla.worker.outcome import Failure, Outcome, Success

log = logging.getLogger("flotilla.celery")

#: Leases answered by this process, remembered so that the end of the task does not answer
#: again what the backend's store did (bounded: a lease is answered within one task run).
_answered: OrderedDict[Key, None] = OrderedDict()
#: The countdown (ms) of the retry a task's thread asked for, by Celery id.
_retry_delays: dict[str, int] = {}
_lock = threading.Lock()
_REMEMBERED = 10_000

NULL = b"null"


def lease_of_request(request: Any) -> Optional[Key]:
    """The lease of a Celery request (a task's ``Context`` or a request dict) delivered by the
    ``flotilla://`` transport; ``None`` for any other (eager calls, other brokers)."""
    if request is None:
        return None
    if isinstance(request, Mapping):
        properties = request.get("properties")
    else:
        properties = getattr(request, "properties", None)
    if not isinstance(properties, Mapping):
        return None
    return lease_of(properties.get("delivery_tag"))


def exception_document(result: Any) -> dict[str, Any]:
    """Celery's ``{"exc_type", "exc_message", "exc_module"}`` of a stored exception (the JSON
    serializer's form already; other serializers store the exception itself)."""
    if isinstance(result, Mapping) and "exc_type" in result:
        return dict(result)
    if isinstance(result, BaseException):
        kind = type(result)
        return {
            "exc_type": getattr(kind, "__qualname__", kind.__name__),
            "exc_message": list(result.args),
            "exc_module": kind.__module__,
        }
    return {"exc_type": "Exception", "exc_message": [repr(result)], "exc_module": "builtins"}


def failure(result: Any, retryable: bool, retry_delay_ms: int = 0) -> Failure:
    """A failure whose message is the exception document; no ``kind``, so the node keeps the
    document as the error as it is and the backend reads it back whole."""
    document = json.dumps(exception_document(result), default=repr)
    return Failure(document, "", retryable=retryable, retry_delay_ms=retry_delay_ms)


def stored(state: str, result: Any, encode: Any, celery_id: str) -> Optional[Outcome]:
    """The answer to a backend store of ``state``; ``None`` for states that answer nothing
    (``STARTED``, ``PENDING``, ...). ``encode`` is the backend's serializer."""
    if state == "SUCCESS":
        data = encode(result)
        return Success(data.encode() if isinstance(data, str) else bytes(data))
    if state in ("FAILURE", "REVOKED"):
        return failure(result, retryable=False)
    if state == "RETRY":
        return failure(result, retryable=True, retry_delay_ms=take_retry_delay(celery_id))
    return None


def settled(state: Optional[str], retval: Any, celery_id: str) -> Optional[Outcome]:
    """The answer when a task ends and its backend stored nothing for it."""
    if state in ("SUCCESS", "IGNORED"):
        return Success(NULL)
    if state == "FAILURE":
        return failure(retval, retryable=False)
    if state == "RETRY":
        exc = getattr(retval, "exc", None) or retval
        return failure(exc, retryable=True, retry_delay_ms=take_retry_delay(celery_id))
    return None  # REJECTED: the main process rejects the message


def answer(lease: Key, outcome: Outcome) -> None:
    """Send ``lease``'s outcome to its session, once per process."""
    with _lock:
        if lease in _answered:
            return
        _answered[lease] = None
        while len(_answered) > _REMEMBERED:
            _answered.popitem(last=False)
    from flotilla.celery.session import report

    report(lease, outcome)


def answered(lease: Key) -> bool:
    with _lock:
        return lease in _answered


def on_postrun(
    sender: Any = None,
    task_id: Any = None,
    task: Any = None,
    retval: Any = None,
    state: Optional[str] = None,
    **_: Any,
) -> None:
    """``task_postrun``: answer the lease of a task whose backend stored nothing."""
    request = getattr(task, "request", None)
    lease = lease_of_request(request)
    if lease is None or answered(lease):
        return
    outcome = settled(state, retval, str(task_id))
    if outcome is not None:
        answer(lease, outcome)


def held_back(message: Mapping[str, Any]) -> bool:
    """True when ``message`` re-publishes the task this thread runs (``Task.retry``): it is
    not sent; its countdown is kept for the retry. A different task under the same id
    (``Task.replace``) cannot be carried: one Celery id is one Flotilla task."""
    from celery import current_task

    headers = message.get("headers") or {}
    request = getattr(current_task, "request", None) if current_task else None
    if request is None or lease_of_request(request) is None or headers.get("id") != request.id:
        return False
    if headers.get("task") != request.task:
        raise NotImplementedError(
            "Task.replace keeps the task id, and one Celery id is one Flotilla task: "
            "not supported on flotilla:// (docs/CELERY.md)"
        )
    with _lock:
        _retry_delays[str(request.id)] = retry_delay_ms(headers.get("eta"))
    return True


def retry_delay_ms(eta: Any, now: Optional[float] = None) -> int:
    """The ``retry_delay_ms`` of a retry due at ``eta`` (Celery's message header: ISO 8601, naive
    means UTC; none when the countdown was 0): whole ms until then, rounded up so the retry never
    runs before its countdown, and at least 1, because 0 would mean "the task's backoff" to the
    node (a retry with ``countdown=0`` runs at once on Celery's brokers)."""
    if not eta:
        return 1
    at = datetime.fromisoformat(str(eta))
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return max(1, millis_ceil(at.timestamp() - (time.time() if now is None else now)))


def take_retry_delay(celery_id: str) -> int:
    """The delay :func:`held_back` kept for ``celery_id``'s retry; 0 (the task's backoff) when
    the retry was not published through us."""
    with _lock:
        return _retry_delays.pop(celery_id, 0)


def connect_signals() -> None:
    """Answer at ``task_postrun`` in every process of this interpreter and its forks
    (idempotent)."""
    from celery import signals

    signals.task_postrun.connect(on_postrun, weak=False, dispatch_uid="flotilla-postrun")
