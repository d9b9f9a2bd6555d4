"""Flotilla's Python SDK: submit tasks to a Flotilla cluster, run them in Python workers, and
run Celery apps on Flotilla (docs/PYTHON.md, docs/CELERY.md).

    from flotilla import Flotilla
    app = Flotilla("127.0.0.1:7000")

    @app.task(queue="math", max_retries=3)
    def add(x, y):
        return x + y

    add.delay(2, 2).get(timeout=10)   # 4, once `flotilla-worker -A tasks` runs

Module map:
- ``app``: :class:`Flotilla`, the application: ``@app.task``, ``send_task``, ``submit_many``.
- ``task``: :class:`Task` (``delay``, ``apply_async``, ``s``), :class:`Signature` (a call not
  sent yet, its idempotency key fixed), :class:`TaskContext` (``task.request`` in a handler).
- ``result``: :class:`AsyncResult` (``get``, ``state``, ``result``, ``ready``).
- ``canvas``: :class:`chain`, :class:`group`, :class:`chord` (Celery's canvas, nested freely),
  each submitted as one workflow; :class:`WorkflowResult`; docs/WORKFLOWS.md.
- ``spec``: :class:`SubmitOptions` and ``build_spec``, the one place a call becomes a wire spec.
- ``schedule``: periodic schedules (``app.schedule``, ``schedule_request``); docs/SCHEDULES.md.
- ``payload``: the JSON convention for args and kwargs (docs/PAYLOADS.md).
- ``client``: :class:`Client`, the low-level calls, node failover and the retry loop.
- ``retry``: :class:`RetryPolicy`, the pure ``Backoff``, which failures are transient.
- ``info``: :class:`TaskInfo`, :class:`TaskState` and the other reply types.
- ``errors``: every exception of the SDK; :class:`Reject` and :class:`Retry` for handlers.
- ``worker``: the worker (``flotilla-worker``): the pure session core, the gRPC shell, the
  thread and process pools, the CLI.
- ``celery``: the ``flotilla://`` Kombu transport and Celery result backend.
- ``_rpc``: typed gRPC stubs over the generated descriptors; ``v1``: generated messages.
"""

from flotilla.app import Flotilla, current_app
from flotilla.attempts import Attempt
from flotilla.canvas import WorkflowResult, chain, chord, group
from flotilla.client import Client
from flotilla.errors import (
    FlotillaError,
    InvalidArgument,
    PayloadError,
    PermissionDenied,
    Reject,
    ResultTimeout,
    Retry,
    ServerError,
    SoftTimeLimitExceeded,
    TaskCancelled,
    TaskFailed,
    TaskNotFound,
    Unauthenticated,
    Unavailable,
)
from flotilla.events import Event, EventsLost
from flotilla.info import (
    QueueStats,
    ScheduleAdded,
    ScheduleInfo,
    Submitted,
    TaskInfo,
    TaskState,
    WorkerInfo,
    Workers,
)
from flotilla.result import AsyncResult
from flotilla.retry import RetryPolicy
from flotilla.spec import SubmitOptions
from flotilla.task import Signature, Task, TaskContext

__version__ = "0.1.0"

__all__ = [
    "AsyncResult",
    "Attempt",
    "Client",
    "Event",
    "EventsLost",
    "Flotilla",
    "FlotillaError",
    "InvalidArgument",
    "PayloadError",
    "PermissionDenied",
    "QueueStats",
    "Reject",
    "ResultTimeout",
    "Retry",
    "RetryPolicy",
    "ScheduleAdded",
    "ScheduleInfo",
    "ServerError",
    "Signature",
    "SoftTimeLimitExceeded",
    "SubmitOptions",
    "Submitted",
    "Task",
    "TaskCancelled",
    "TaskContext",
    "TaskFailed",
    "TaskInfo",
    "TaskNotFound",
    "TaskState",
    "Unauthenticated",
    "Unavailable",
    "WorkerInfo",
    "Workers",
    "WorkflowResult",
    "__version__",
    "chain",
    "chord",
    "current_app",
    "group",
]
