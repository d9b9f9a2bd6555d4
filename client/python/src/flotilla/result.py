"""[`AsyncResult`]: a handle on one submitted task, in Celery's words: ``get(timeout=)``,
``state``, ``result``, ``ready()``. Every property asks the cluster (a linearizable read)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from flotilla.attempts import Attempt
from flotilla.errors import ResultTimeout, TaskCancelled, TaskFailed, TaskNotFound
from flotilla.info import TaskInfo, TaskState

if TYPE_CHECKING:
    from flotilla.app import Flotilla


class AsyncResult:
    """The task with id ``id`` on ``app``'s cluster (default: the last :class:`Flotilla` app
    created, like Celery's current app)."""

    def __init__(self, id: int, app: Optional[Flotilla] = None, *, duplicate: bool = False) -> None:
        from flotilla.app import current_app

        self.id = int(id)
        self.app = app or current_app()
        #: True when the submit's idempotency key had been seen: this is the earlier task.
        self.duplicate = duplicate

    def __repr__(self) -> str:
        return f"<AsyncResult {self.id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AsyncResult) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def info(self) -> TaskInfo:
        """The task as the cluster holds it now."""
        return self.app.client.get(self.id)

    @property
    def attempts(self) -> list[Attempt]:
        """The task's last attempts (at most 16), oldest first: which pool or worker ran
        each, when, and how it ended."""
        return self.app.client.attempts(self.id)

    @property
    def state(self) -> TaskState:
        """The task's current state."""
        return self.info().state

    def ready(self) -> bool:
        """Whether the task is final (succeeded, dead or cancelled)."""
        return self.state.is_final

    def successful(self) -> bool:
        return self.state is TaskState.SUCCEEDED

    def failed(self) -> bool:
        return self.state is TaskState.DEAD

    @property
    def result(self) -> Any:
        """The return value once succeeded; the error (an exception instance, not raised) once
        dead or cancelled; ``None`` before."""
        info = self.info()
        try:
            return outcome(info)
        except (TaskFailed, TaskCancelled) as e:
            return e

    def get(self, timeout: Optional[float] = None, propagate: bool = True) -> Any:
        """Waits until the task is final and returns its result.

        Raises :class:`TaskFailed` (carrying the remote message) when it is dead,
        :class:`TaskCancelled`, :class:`TaskNotFound`, or :class:`ResultTimeout` (a
        ``TimeoutError``) when ``timeout`` seconds pass first. With ``propagate=False`` the
        exception is returned instead of raised.
        """
        info = self.wait(timeout)
        try:
            return outcome(info)
        except (TaskFailed, TaskCancelled) as e:
            if propagate:
                raise
            return e

    def wait(self, timeout: Optional[float] = None) -> TaskInfo:
        """Waits until the task is final and returns it as the cluster holds it."""
        for info in self.app.client.wait([self.id], timeout):
            if info.state is TaskState.NOT_FOUND:
                raise TaskNotFound(self.id)
            return info
        raise ResultTimeout(f"task {self.id} not final within {timeout} s")

    def cancel(self) -> bool:
        """Cancels the task if it has not started; True when this call cancelled it."""
        return self.app.client.cancel([self.id])[0]

    def revoke(self, terminate: bool = False, reason: str = "") -> bool:
        """Cancels the task; with ``terminate`` also while it runs (an admin token): its worker
        is told to abort it and its result is dropped (Celery's ``revoke(terminate=True)``).
        True when this call cancelled it."""
        if not terminate:
            return self.cancel()
        return self.app.client.revoke([self.id], terminate=True, reason=reason)[0] != "unchanged"


def outcome(info: TaskInfo) -> Any:
    """The result of a final task, or its error raised; ``None`` for a task not final yet."""
    if info.state is TaskState.SUCCEEDED:
        return info.result()
    if info.state is TaskState.DEAD:
        raise TaskFailed(info.id, info.error)
    if info.state is TaskState.CANCELLED:
        raise TaskCancelled(info.id)
    if info.state is TaskState.NOT_FOUND:
        raise TaskNotFound(info.id)
    return None
