"""The ``flotilla://`` Celery result backend: a Celery task's state and result are the
Flotilla task's (one record, replicated with the queue; no second store).

Read side: a Celery id is the task's idempotency key (``celery:<id>``), so any process finds
its Flotilla task (``FindTasksByIdempotencyKey``, remembered once found); ``get_task_meta``
reads the task (GetTask) and ``wait_for`` waits on a ``WaitResults`` stream instead of
polling. Write side: a store from a Celery worker answers the lease of the message being run
(``outcomes.stored``; the lease is in the request's delivery tag), so the task's result *is*
its completion, committed with the lease; ``forget`` is a no-op (results expire with the
task's result TTL).
"""

from __future__ import annotations

import time
from typing import Any, Optional

from celery import states
from celery.backends.base import BaseBackend
from celery.exceptions import TimeoutError as CeleryTimeoutError

from flotilla.celery import outcomes
from flotilla.celery.mapping import SUBMITTED, celery_meta, idempotency_key
from flotilla.celery.nodes import client_for, nodes_from_urls
from flotilla.errors import ResultTimeout, TaskNotFound
from flotilla.info import TaskInfo, TaskState

NOT_DELIVERED = (
    "the flotilla:// result backend stores the outcomes of tasks delivered by the flotilla:// "
    "broker (a task's result is its completion); task {id} came from elsewhere"
)

outcomes.connect_signals()


class FlotillaBackend(BaseBackend):  # type: ignore[misc]
    """``result_backend = 'flotilla://host:port[,host:port]'``."""

    #: Results expire with their task (the node's result TTL): no cleanup task needed.
    supports_autoexpire = True
    persistent = True

    def __init__(self, app: Any, url: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(app, url=url, **kwargs)
        self.nodes = nodes_from_urls([url or ""])

    def as_uri(self, include_password: bool = False) -> str:
        return "flotilla://" + ",".join(self.nodes)

    def _flotilla_id(self, celery_id: str) -> Optional[int]:
        """The Flotilla task of ``celery_id``: published here (remembered), else found by its
        idempotency key (published by any process); ``None`` while no task holds it."""
        flotilla_id = SUBMITTED.get(celery_id)
        if flotilla_id is None:
            client = client_for(self.nodes)
            (flotilla_id,) = client.find_by_idempotency_keys([idempotency_key(celery_id)])
            if flotilla_id is not None:
                SUBMITTED.put(celery_id, flotilla_id)
        return flotilla_id

    def _info(self, celery_id: str) -> Optional[TaskInfo]:
        flotilla_id = self._flotilla_id(str(celery_id))
        if flotilla_id is None:
            return None
        try:
            return client_for(self.nodes).get(flotilla_id)
        except TaskNotFound:
            return None  # purged since it was found

    def _meta(self, celery_id: str, info: Optional[TaskInfo]) -> dict[str, Any]:
        if info is None:
            return {
                "task_id": celery_id,
                "status": states.PENDING,
                "result": None,
                "traceback": None,
                "children": [],
                "date_done": None,
            }
        return celery_meta(info, celery_id, self.decode, self.exception_to_python)

    def _get_task_meta_for(self, task_id: str) -> dict[str, Any]:
        return self._meta(task_id, self._info(task_id))

    def wait_for(
        self,
        task_id: str,
        timeout: Optional[float] = None,
        interval: float = 0.5,
        no_ack: bool = True,
        on_interval: Any = None,
    ) -> dict[str, Any]:
        """The final meta of ``task_id``, pushed by the node as soon as it is final."""
        self._ensure_not_eager()
        deadline = None if timeout is None else time.monotonic() + timeout
        flotilla_id = self._flotilla_id(str(task_id))
        while flotilla_id is None:
            # Not published yet (a chain's next step, published by the worker that runs the
            # step before it): look again every `interval`, as Celery's base backend polls.
            if deadline is not None and time.monotonic() + interval > deadline:
                raise CeleryTimeoutError("The operation timed out.")
            time.sleep(interval)
            if on_interval:
                on_interval()
            flotilla_id = self._flotilla_id(str(task_id))
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            for info in client_for(self.nodes).wait([flotilla_id], left):
                if info.state is TaskState.NOT_FOUND:
                    return self._meta(task_id, None)
                return self._meta(task_id, info)
        except ResultTimeout:
            pass
        raise CeleryTimeoutError("The operation timed out.")

    def _store_result(
        self,
        task_id: str,
        result: Any,
        state: str,
        traceback: Any = None,
        request: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Answer the lease of the message being run: its result, failure or retry."""
        outcome = outcomes.stored(state, result, self.encode, str(task_id))
        if outcome is None:
            return result  # STARTED and the like: the node shows LEASED already
        lease = outcomes.lease_of_request(request)
        if lease is None:
            raise ValueError(NOT_DELIVERED.format(id=task_id))
        outcomes.answer(lease, outcome)
        return result

    def _forget(self, task_id: str) -> None:
        """Results expire with their task; nothing to delete early."""
