"""Periodic schedules (docs/SCHEDULES.md): the cluster enqueues a task at every slot of a cron
expression in a time zone, or of a fixed interval, exactly once per slot, with no beat process.

:func:`schedule_request` is the one place a schedule becomes a wire ``AddScheduleRequest``
(the replies, ``ScheduleAdded`` and ``ScheduleInfo``, are in ``info``). The calls are
``Client.add_schedule``, ``Client.schedules``, ``Client.pause_schedule``,
``Client.resume_schedule`` and ``Client.remove_schedule``; ``Flotilla.schedule`` adds one for a
task of the app (``@app.task``) or by name, the way Celery's ``beat_schedule`` names them.
"""

from __future__ import annotations

from typing import Optional

from flotilla.spec import millis_ceil
from flotilla.v1 import queue_pb2 as qpb
from flotilla.v1 import schedule_pb2 as spb

#: The catch-up policies: what becomes of slots missed by more than the grace (an outage).
CATCH_UP = {"skip": spb.CATCH_UP_SKIP, "once": spb.CATCH_UP_ONCE}


def schedule_request(
    name: str,
    task: qpb.TaskSpec,
    *,
    cron: Optional[str] = None,
    tz: str = "",
    every: Optional[float] = None,
    catch_up: str = "skip",
    grace: Optional[float] = None,
    replace: bool = False,
) -> spb.AddScheduleRequest:
    """The wire request adding schedule ``name``: ``task`` at every time of ``cron`` (in IANA
    zone ``tz``; empty is UTC), or every ``every`` seconds. ``grace`` (seconds, default 60): how
    late a slot may run; ``catch_up``: ``"skip"`` or ``"once"`` for slots missed beyond it."""
    if (cron is None) == (every is None):
        raise ValueError("give exactly one of cron and every")
    if tz and cron is None:
        raise ValueError("a time zone needs a cron expression")
    if catch_up not in CATCH_UP:
        raise ValueError(f"catch_up must be 'skip' or 'once', got {catch_up!r}")
    spec = qpb.TaskSpec()
    spec.CopyFrom(task)
    # Each slot's task is keyed by the cluster (schedule:<id>:<slot>).
    spec.idempotency_key = ""
    return spb.AddScheduleRequest(
        schedule=spb.Schedule(
            name=name,
            cron=cron or "",
            time_zone=tz,
            every_ms=millis_ceil(every) if every is not None else 0,
            catch_up=CATCH_UP[catch_up],
            grace_ms=millis_ceil(grace) if grace is not None else 0,
            task=spec,
        ),
        replace=replace,
    )
