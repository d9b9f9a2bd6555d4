"""The rules between Celery's view and Flotilla's, pure and tested without a node.

- :func:`spec_from_message`: a Kombu message (what ``Channel._put`` gets) → a ``TaskSpec``.
  The whole message is the task's JSON args, so a consumer hands Celery the message it sent.
- :func:`message_from_task`: a granted ``Task`` → the Kombu message a consumer delivers, the
  lease in its delivery tag (:func:`lease_tag`, :func:`lease_of`).
- :func:`celery_meta`: a Flotilla ``TaskInfo`` → the meta dict of Celery's result backends.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Optional

from flotilla.info import TaskInfo, TaskState
from flotilla.spec import millis_ceil
from flotilla.v1 import queue_pb2 as qpb
from flotilla.v1 import worker_pb2 as wpb

#: Celery decides when a task is retried (``Task.retry``, ``autoretry_for``) and says so in its
#: outcome; Flotilla's own retry budget must never end a Celery task first.
CELERY_MAX_RETRIES = 2**32 - 1
#: A Celery task without a hard time limit must not be aborted by the node's default limit
#: (5 minutes); Celery's own limits, enforced by its worker, come first.
NO_LIMIT_MS = 7 * 24 * 3600 * 1000
#: Beyond a Celery hard time limit, the node waits this long before aborting the attempt.
LIMIT_GRACE_MS = 30_000

CELERY_STATES = {
    TaskState.SCHEDULED: "PENDING",
    TaskState.WAITING: "PENDING",
    TaskState.PENDING: "PENDING",
    TaskState.LEASED: "STARTED",
    TaskState.RETRYING: "RETRY",
    TaskState.SUCCEEDED: "SUCCESS",
    TaskState.DEAD: "FAILURE",
    TaskState.CANCELLED: "REVOKED",
    TaskState.NOT_FOUND: "PENDING",  # Celery's answer for an id it does not know
    TaskState.UNKNOWN: "PENDING",
}


#: The exception type Celery stores for a revoked (or expired) task.
REVOKED_TYPE = "TaskRevokedError"


class UnsupportedMessage(ValueError):
    """A message this transport cannot carry (Celery's message protocol 1)."""


def spec_from_message(queue: str, message: Mapping[str, Any]) -> qpb.TaskSpec:
    """The Flotilla task of a Celery message published to ``queue``."""
    headers = message.get("headers") or {}
    properties = message.get("properties") or {}
    name, celery_id = headers.get("task"), headers.get("id")
    if not name or not celery_id:
        raise UnsupportedMessage(
            "not a Celery protocol 2 task message (no task/id headers): "
            "set task_protocol = 2 (Celery's default)"
        )
    priority = properties.get("priority") or 0
    return qpb.TaskSpec(
        name=str(name),
        queue=queue,
        args=json.dumps(message, separators=(",", ":")).encode(),
        priority=max(0, min(255, int(priority))),
        eta_unix_ms=_eta_ms(headers.get("eta")),
        max_retries=CELERY_MAX_RETRIES,
        time_limit_ms=_time_limit_ms(headers.get("timelimit")),
        # One Celery id is one task: a publish of the same id again is a duplicate (a worker's
        # own retry is held back before it: the retry is this task's next attempt).
        idempotency_key=idempotency_key(str(celery_id)),
        headers={k: v if isinstance(v, str) else json.dumps(v) for k, v in headers.items()},
    )


def idempotency_key(celery_id: str) -> str:
    """The idempotency key of the task published under ``celery_id``: how any process finds it
    (``Client.find_by_idempotency_keys``)."""
    return f"celery:{celery_id}"


#: A delivered message's ``delivery_tag`` is ``flotilla:<task id>:<attempt>``: the lease travels
#: with the message, and Celery copies the message's properties into the request a prefork
#: child runs, so whichever process stores the outcome knows the lease it completes.
TAG_PREFIX = "flotilla:"


def lease_tag(task_id: int, attempt: int) -> str:
    return f"{TAG_PREFIX}{task_id}:{attempt}"


def lease_of(tag: Any) -> Optional[tuple[int, int]]:
    """The lease ``(task_id, attempt)`` of a delivery tag; ``None`` if it is not ours."""
    if not isinstance(tag, str) or not tag.startswith(TAG_PREFIX):
        return None
    task_id, _, attempt = tag[len(TAG_PREFIX) :].partition(":")
    try:
        return int(task_id), int(attempt)
    except ValueError:
        return None


def message_from_task(task: wpb.Task) -> dict[str, Any]:
    """The Kombu message a granted task is delivered as: the message as published, with the
    lease as its delivery tag, ``redelivered`` after the first attempt, and ``retries`` raised
    by the earlier attempts (Celery's ``request.retries``; a retry is the same task's next
    attempt, see docs/CELERY.md)."""
    message = json.loads(task.args)
    if not isinstance(message, dict) or not isinstance(message.get("headers"), dict):
        raise ValueError("not a Kombu message (no headers)")
    headers = message["headers"]
    properties = message.setdefault("properties", {})
    properties["delivery_tag"] = lease_tag(task.task_id, task.attempt)
    info = properties.setdefault("delivery_info", {})
    info.setdefault("exchange", "")
    info.setdefault("routing_key", task.queue)
    info["redelivered"] = task.attempt > 1
    headers["retries"] = int(headers.get("retries") or 0) + max(task.attempt - 1, 0)
    return message


def revoked_ids(message: Mapping[str, Any]) -> list[str]:
    """The Celery ids a remote-control broadcast revokes (``app.control.revoke``,
    ``AsyncResult.revoke``): Kombu's message as ``basic_publish`` gets it, body not yet
    encoded; ``[]`` for any other broadcast or a body that is not JSON."""
    body = message.get("body")
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        command = json.loads(body) if isinstance(body, str) else None
    except ValueError:
        return []
    if not isinstance(command, dict) or command.get("method") != "revoke":
        return []
    ids = (command.get("arguments") or {}).get("task_id")
    if isinstance(ids, str):
        return [ids]
    return [str(i) for i in ids] if isinstance(ids, list) else []


def _eta_ms(eta: Any) -> int:
    if not eta:
        return 0
    at = datetime.fromisoformat(str(eta))
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)  # Celery writes UTC unless told otherwise
    return millis_ceil(at.timestamp())


def _time_limit_ms(timelimit: Any) -> int:
    hard = timelimit[0] if isinstance(timelimit, (list, tuple)) and timelimit else None
    if not hard:
        return NO_LIMIT_MS
    return millis_ceil(float(hard)) + LIMIT_GRACE_MS


def celery_meta(
    info: TaskInfo, celery_id: str, decode: Any, exception_to_python: Any
) -> dict[str, Any]:
    """Celery's meta of a task: ``decode`` reads a stored result, ``exception_to_python``
    rebuilds an exception (the backend's own methods)."""
    status = CELERY_STATES[info.state]
    result: Any = None
    if info.state is TaskState.SUCCEEDED:
        result = decode(info.result_bytes) if info.result_bytes else None
    elif info.state in (TaskState.DEAD, TaskState.RETRYING):
        error = _exception_dict(info.error)
        result = exception_to_python(error)
        if error["exc_type"] == REVOKED_TYPE:
            status = "REVOKED"  # revoked or expired in a Celery worker, stored as a failure
    elif info.state is TaskState.CANCELLED:
        result = exception_to_python(
            {"exc_type": REVOKED_TYPE, "exc_message": "cancelled", "exc_module": None}
        )
    done = info.state.is_final and info.state is not TaskState.NOT_FOUND
    return {
        "task_id": celery_id,
        "status": status,
        "result": result,
        "traceback": None,
        "children": [],
        "date_done": _iso(info.updated_unix_ms) if done else None,
    }


def _exception_dict(error: str) -> dict[str, Any]:
    """A stored failure as Celery's exception dict. A Celery worker on Flotilla stores Celery's
    own dict as the message (JSON); any other worker's plain message becomes a ``TaskFailed``."""
    try:
        parsed = json.loads(error)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and "exc_type" in parsed:
        return parsed
    return {"exc_type": "TaskFailed", "exc_message": error, "exc_module": None}


def _iso(unix_ms: int) -> Optional[str]:
    if not unix_ms:
        return None
    return datetime.fromtimestamp(unix_ms / 1000, tz=timezone.utc).isoformat()


class IdMap:
    """Celery task id → Flotilla task id, for the tasks this process submitted or looked up
    (bounded): a cache in front of the node's lookup by idempotency key."""

    def __init__(self, limit: int = 100_000) -> None:
        self._ids: OrderedDict[str, int] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def put(self, celery_id: str, flotilla_id: int) -> None:
        with self._lock:
            self._ids[celery_id] = flotilla_id
            self._ids.move_to_end(celery_id)
            while len(self._ids) > self._limit:
                self._ids.popitem(last=False)

    def get(self, celery_id: str) -> Optional[int]:
        with self._lock:
            return self._ids.get(celery_id)


#: The ids this process submitted through the transport or found, read by the backend.
SUBMITTED = IdMap()
