"""Periodic schedules against a real node: ``app.schedule`` fires on the node's time, adding
is idempotent, a changed schedule replaces or is refused, pause/resume/remove, and refusals."""

from __future__ import annotations

import time

import pytest

import flotilla
from flotilla import Flotilla
from flotilla.schedule import schedule_request
from flotilla.v1 import queue_pb2 as qpb


def _by_name(app: Flotilla, name: str) -> flotilla.ScheduleInfo:
    return next(s for s in app.client.schedules(upcoming=3) if s.name == name)


def _wait_fired(app: Flotilla, name: str, at_least: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while _by_name(app, name).fired < at_least:
        assert time.monotonic() < deadline, f"{name} fired {_by_name(app, name).fired} times"
        time.sleep(0.1)


def test_a_schedule_fires_every_second_and_its_tasks_run(app: Flotilla) -> None:
    added = app.schedule("py-every", "echo", every=1, args=["tick"], result_ttl=600)
    assert added.outcome == "added" and added.next_unix_ms is not None
    info = _by_name(app, "py-every")
    assert (info.every_ms, info.cron, info.task, info.catch_up) == (1000, "", "echo", "skip")
    # Three upcoming times, a second apart.
    assert len(info.next_unix_ms) == 3
    assert [b - a for a, b in zip(info.next_unix_ms, info.next_unix_ms[1:])] == [1000, 1000]
    _wait_fired(app, "py-every", 2)
    info = _by_name(app, "py-every")
    assert info.last_task_id is not None and info.last_slot_unix_ms is not None
    assert app.AsyncResult(info.last_task_id).get(timeout=10) == "tick"
    app.client.remove_schedule("py-every")


def test_adding_again_is_harmless_and_a_change_replaces_or_is_refused(app: Flotilla) -> None:
    first = app.schedule("py-nightly", "noop", cron="30 2 * * *", tz="Europe/Berlin")
    again = app.schedule("py-nightly", "noop", cron="30 2 * * *", tz="Europe/Berlin")
    assert (again.id, again.outcome) == (first.id, "unchanged")
    with pytest.raises(flotilla.ServerError, match="exists") as e:
        app.schedule("py-nightly", "noop", cron="0 3 * * *", tz="Europe/Berlin", replace=False)
    assert e.value.code == "ALREADY_EXISTS"
    replaced = app.schedule("py-nightly", "noop", cron="0 3 * * *", tz="Europe/Berlin")
    assert (replaced.id, replaced.outcome) == (first.id, "replaced")
    info = _by_name(app, "py-nightly")
    assert (info.cron, info.tz) == ("0 3 * * *", "Europe/Berlin")
    app.client.remove_schedule("py-nightly")


def test_pause_resume_and_remove(app: Flotilla) -> None:
    app.schedule("py-pause", "noop", every=1)
    app.client.pause_schedule("py-pause")
    info = _by_name(app, "py-pause")
    assert info.paused and info.next_unix_ms == ()
    fired = info.fired
    time.sleep(1.5)
    assert _by_name(app, "py-pause").fired == fired
    app.client.resume_schedule("py-pause")
    assert not _by_name(app, "py-pause").paused
    _wait_fired(app, "py-pause", fired + 1)
    app.client.remove_schedule("py-pause")
    assert all(s.name != "py-pause" for s in app.client.schedules())
    with pytest.raises(flotilla.ServerError) as e:
        app.client.remove_schedule("py-pause")
    assert e.value.code == "NOT_FOUND"


def test_bad_schedules_are_refused_with_the_reason(app: Flotilla) -> None:
    with pytest.raises(flotilla.InvalidArgument, match="cron"):
        app.schedule("py-bad", "noop", cron="61 * * * *")
    with pytest.raises(flotilla.InvalidArgument, match="time zone"):
        app.schedule("py-bad", "noop", cron="* * * * *", tz="Mars/Olympus")
    with pytest.raises(flotilla.InvalidArgument, match="interval"):
        app.schedule("py-bad", "noop", every=0.5)
    with pytest.raises(flotilla.InvalidArgument, match="unknown task name"):
        app.schedule("py-bad", "no.such.task", every=5)
    assert all(s.name != "py-bad" for s in app.client.schedules())


def test_a_request_needs_exactly_one_cadence() -> None:
    task = qpb.TaskSpec(name="noop", idempotency_key="k")
    with pytest.raises(ValueError, match="exactly one"):
        schedule_request("s", task)
    with pytest.raises(ValueError, match="exactly one"):
        schedule_request("s", task, cron="* * * * *", every=1)
    with pytest.raises(ValueError, match="time zone"):
        schedule_request("s", task, every=1, tz="UTC")
    with pytest.raises(ValueError, match="catch_up"):
        schedule_request("s", task, every=1, catch_up="all")
    r = schedule_request("s", task, every=1.5, grace=2, catch_up="once")
    assert (r.schedule.every_ms, r.schedule.grace_ms, r.schedule.task.idempotency_key) == (
        1500,
        2000,
        "",
    )
