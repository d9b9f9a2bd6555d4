"""Celery apps on Flotilla with a URL change (docs/CELERY.md):
``Celery('tasks', broker='flotilla://127.0.0.1:7000', backend='flotilla://127.0.0.1:7000')``.

- ``transport``: the ``flotilla://`` Kombu transport. Submit side done: a published Celery
  message becomes one Flotilla task (idempotency key = the Celery task id, eta kept, headers
  kept). The consuming side waits for the node's WorkerService (see docs/CELERY.md).
- ``backend``: the ``flotilla://`` Celery result backend. Read side done: a Celery task id's
  state and result come from the node (GetTask, WaitResults). Storing results from the worker
  waits for the node's lease completion RPC.
- ``mapping``: the pure rules between Celery's and Flotilla's views (message → TaskSpec, task
  state → Celery meta), shared by both and tested without a node.
- ``nodes``: node lists from ``flotilla://`` URLs and one client per process.

Kombu has no plugin entry points for transports: the wheel's ``flotilla_kombu.pth`` adds the
``flotilla`` alias when Kombu is imported; importing this package does it too. The backend is
found through Celery's ``celery.result_backends`` entry point.
"""

import _flotilla_kombu

_flotilla_kombu.install()
