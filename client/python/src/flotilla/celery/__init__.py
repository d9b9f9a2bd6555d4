"""Celery apps on Flotilla with a URL change (docs/CELERY.md):
``Celery('tasks', broker='flotilla://127.0.0.1:7000', backend='flotilla://127.0.0.1:7000')``.

- ``transport``: the ``flotilla://`` Kombu transport. Publishing: a Celery message becomes one
  Flotilla task (idempotency key = the Celery task id, eta kept, headers kept). Consuming: a
  ``WorkerService`` session per consuming channel (``session``); a granted task is delivered
  as its message, the lease in the delivery tag.
- ``backend``: the ``flotilla://`` Celery result backend: a task's state and result are read
  from the node; a worker's store answers the lease of the message being run (``outcomes``).
- ``outcomes``: what a lease is answered with, in the process that ran or settled the task;
  ``inbox``: from a prefork child to its main process, whose session holds the lease.
- ``mapping``: the pure rules between Celery's and Flotilla's views (message ↔ task, task
  state → Celery meta), tested without a node.
- ``nodes``: node lists from ``flotilla://`` URLs, one client per process, and the publishers'
  group commit.

Kombu has no plugin entry points for transports: the wheel's ``flotilla_kombu.pth`` adds the
``flotilla`` alias when Kombu is imported; importing this package does it too. The backend is
found through Celery's ``celery.result_backends`` entry point.
"""

import _flotilla_kombu

_flotilla_kombu.install()
