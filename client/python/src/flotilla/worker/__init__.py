"""The Python worker: runs an app's tasks for the cluster over ``flotilla.v1.WorkerService``.

- ``core``: :class:`SessionCore`, the protocol as a pure state machine (events in, actions out).
- ``shell``: :class:`SessionShell`, the stream, the loop that owns the core and reconnects
  (also under the Celery consumer, ``flotilla.celery.session``).
- ``runner``: :class:`Worker`, the shell with a pool running the app's handlers.
- ``pools``: thread and process pools; ``load_app`` for ``-A module[:attr]``.
- ``outcome``: ``execute`` a handler and map what happens to Success or Failure.
- ``cli``: the ``flotilla-worker`` command.
"""

from flotilla.worker.core import Lease, SessionCore
from flotilla.worker.outcome import Failure, Success, execute
from flotilla.worker.runner import Worker

__all__ = ["Failure", "Lease", "SessionCore", "Success", "Worker", "execute"]
