"""Celery's canvas on Flotilla: :class:`chain`, :class:`group` and :class:`chord` of task
signatures (``add.s(2, 2)``, ``add.si(1, 1)``), nested freely, each submitted atomically as
one workflow (one replicated log entry) and read back as one object (docs/WORKFLOWS.md).

    from flotilla.canvas import chain, chord, group
    chain(add.s(2, 2), add.s(4), add.s(8)).delay().get(timeout=10)         # 16
    group(add.s(i, i) for i in range(3)).delay().get(timeout=10)          # [0, 2, 4]
    chord([add.s(1, 1), add.s(2, 2)], tsum.s()).delay().get(timeout=10)   # 6

As in Celery, a chain passes each result to the next task as its first argument, and a chord's
callback (or a task after a group) gets the list of results as its first argument; an
immutable signature (``.si()``) gets nothing. The cluster delivers the results in the header
``flotilla-parent-results`` and the canvas says how to pass them in ``flotilla-pass``; the
worker applies it (:func:`pass_parent_results`). An error callback (``link_error=``) runs once
if any task ends dead or cancelled, with the failure as its first argument (a dict: ``task``,
``state``, ``error``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional, Union

from flotilla.client import new_idempotency_key
from flotilla.errors import ResultTimeout, TaskCancelled, TaskFailed
from flotilla.info import TaskInfo, TaskState
from flotilla.spec import build_spec
from flotilla.v1 import workflows_pb2 as fpb

if TYPE_CHECKING:
    from flotilla.app import Flotilla
    from flotilla.result import AsyncResult
    from flotilla.task import Signature

#: Headers of the workflow convention (set by the cluster and by the canvas).
PARENT_RESULTS_HEADER = "flotilla-parent-results"
PARENT_ERROR_HEADER = "flotilla-parent-error"
PASS_HEADER = "flotilla-pass"

Node = Union["Canvas", "Signature"]


class Canvas:
    """A chain, group or chord: submit it with :meth:`apply_async` (or :meth:`delay`)."""

    def _node(self) -> fpb.Canvas:
        raise NotImplementedError

    def _app(self) -> Flotilla:
        raise NotImplementedError

    def __or__(self, other: Node) -> chain:
        return chain(self, other)

    def apply_async(
        self, *, link_error: Optional[Signature] = None, idempotency_key: Optional[str] = None
    ) -> WorkflowResult:
        """Submits the whole canvas as one workflow; ``link_error``: a task that runs once if
        any task ends dead or cancelled. Retrying with the same ``idempotency_key`` returns the
        workflow the first submit created."""
        app = self._app()
        request = fpb.SubmitWorkflowRequest(
            canvas=self._node(), idempotency_key=idempotency_key or new_idempotency_key()
        )
        if link_error is not None:
            request.on_error.CopyFrom(_spec(link_error))
        reply = app.client.submit_workflow(request)
        return WorkflowResult(reply.id, list(reply.task_ids), app, duplicate=reply.duplicate)

    def delay(self) -> WorkflowResult:
        return self.apply_async()


def _items(items: tuple[Any, ...]) -> list[Node]:
    # Celery takes `chain(a, b)` and `chain([a, b])` (or a generator) alike.
    if (
        len(items) == 1
        and not isinstance(items[0], (Canvas, Mapping))
        and isinstance(items[0], Iterable)
    ):
        return list(items[0])
    return list(items)


def _spec(sig: Signature) -> Any:
    spec = build_spec(sig.name, sig.args, sig.kwargs, sig.options)
    # A workflow's tasks carry no key of their own: the workflow's key makes it exactly once.
    spec.idempotency_key = ""
    return spec


def _node_of(item: Node) -> fpb.Canvas:
    if isinstance(item, Canvas):
        return item._node()
    task = fpb.CanvasTask(spec=_spec(item), immutable=item.immutable)
    return fpb.Canvas(task=task)


def _app_of(items: Sequence[Node]) -> Flotilla:
    for item in items:
        return item._app() if isinstance(item, Canvas) else item.app
    raise ValueError("an empty canvas")


class chain(Canvas):  # noqa: N801 (Celery's name)
    """Tasks one after another; each gets the previous result as its first argument."""

    def __init__(self, *items: Any) -> None:
        self.items = _items(items)
        if not self.items:
            raise ValueError("an empty chain")

    def _node(self) -> fpb.Canvas:
        return fpb.Canvas(chain=fpb.CanvasList(items=[_node_of(i) for i in self.items]))

    def _app(self) -> Flotilla:
        return _app_of(self.items)


class group(Canvas):  # noqa: N801 (Celery's name)
    """Tasks side by side; the result is the list of their results."""

    def __init__(self, *items: Any) -> None:
        self.items = _items(items)
        if not self.items:
            raise ValueError("an empty group")

    def _node(self) -> fpb.Canvas:
        return fpb.Canvas(group=fpb.CanvasList(items=[_node_of(i) for i in self.items]))

    def _app(self) -> Flotilla:
        return _app_of(self.items)


class chord(Canvas):  # noqa: N801 (Celery's name)
    """A group (the header), then ``body`` with the list of its results as first argument.
    As in Celery, ``chord(header)(body)`` submits at once."""

    def __init__(self, header: Any, body: Optional[Node] = None) -> None:
        self.header: Canvas = header if isinstance(header, Canvas) else group(header)
        self.body = body

    def __call__(self, body: Node) -> WorkflowResult:
        return chord(self.header, body).apply_async()

    def _node(self) -> fpb.Canvas:
        if self.body is None:
            raise ValueError("a chord needs a body: chord(header, body) or chord(header)(body)")
        node = fpb.Chord(header=self.header._node(), body=_node_of(self.body))
        return fpb.Canvas(chord=node)

    def _app(self) -> Flotilla:
        return self.header._app()


class WorkflowResult:
    """A submitted workflow: ``get(timeout=)`` waits for it and returns its result (a chain's
    last result, a group's list, a chord's callback's); ``state``; ``results``, one
    :class:`AsyncResult` per task."""

    def __init__(
        self, id: int, task_ids: list[int], app: Flotilla, *, duplicate: bool = False
    ) -> None:
        self.id = id
        self.task_ids = task_ids
        self.app = app
        #: True when the key had been seen: this is the earlier workflow.
        self.duplicate = duplicate

    def __repr__(self) -> str:
        return f"<WorkflowResult {self.id}>"

    def info(self) -> fpb.GetWorkflowResponse:
        """The workflow as the cluster holds it now (state, result, tasks)."""
        return self.app.client.get_workflow(self.id)

    @property
    def state(self) -> str:
        """``running``, ``succeeded`` or ``failed``."""
        name: str = fpb.WorkflowState.Name(self.info().state)
        return name.removeprefix("WORKFLOW_STATE_").lower()

    @property
    def results(self) -> list[AsyncResult]:
        from flotilla.result import AsyncResult

        return [AsyncResult(i, self.app) for i in self.task_ids]

    def ready(self) -> bool:
        """Whether every task is final."""
        return all(
            not t.HasField("task") or TaskInfo.from_wire(t.task).state.is_final
            for t in self.info().tasks
        )

    def get(self, timeout: Optional[float] = None, propagate: bool = True) -> Any:
        """Waits until every task is final, then returns the workflow's result; raises (or,
        with ``propagate=False``, returns) :class:`TaskFailed` for the first task that died
        (or :class:`TaskCancelled`), and :class:`ResultTimeout` when ``timeout`` passes."""
        for _ in self.app.client.wait(self.task_ids, timeout):
            pass
        w = self.info()
        if w.state == fpb.WORKFLOW_STATE_SUCCEEDED:
            return json.loads(w.result) if w.result else None
        if w.state != fpb.WORKFLOW_STATE_FAILED:
            raise ResultTimeout(f"workflow {self.id} not finished")
        error: Exception = TaskCancelled(self.id)
        for t in w.tasks:
            info = TaskInfo.from_wire(t.task)
            if not t.errback and info.state is TaskState.DEAD:
                error = TaskFailed(t.id, w.error or info.error or "")
                break
        if propagate:
            raise error
        return error


def pass_parent_results(headers: Mapping[str, str], args: list[Any]) -> list[Any]:
    """The handler's positional arguments with its parents' results put first, as the canvas
    asked (``flotilla-pass``): ``one`` the previous result, ``list`` the list of results,
    ``error`` the failure an error callback handles; ``none`` or no header: unchanged."""
    mode = headers.get(PASS_HEADER)
    if mode == "error":
        raw = headers.get(PARENT_ERROR_HEADER)
        return [json.loads(raw), *args] if raw is not None else args
    raw = headers.get(PARENT_RESULTS_HEADER)
    if mode not in ("one", "list") or raw is None:
        return args
    results = json.loads(raw)
    if mode == "one":
        return [results[0] if results else None, *args]
    return [results, *args]
