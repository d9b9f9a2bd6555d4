"""The worker's protocol core without threads or sockets: events in, actions out."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from flotilla.v1 import worker_pb2 as wpb
from flotilla.worker.core import (
    Abandon,
    Action,
    CloseSend,
    Exit,
    Identity,
    Lease,
    Reconnect,
    Run,
    Send,
    SessionCore,
)
from flotilla.worker.outcome import Failure, Success

IDENTITY = Identity("w", ["default"], [("t", "")], 2, "test")


def sent(actions: list[Action], kind: str) -> list[object]:
    return [
        getattr(a.message, kind)
        for a in actions
        if isinstance(a, Send) and a.message.WhichOneof("msg") == kind
    ]


def welcomed(ping_ms: int = 1000, max_result: int = 0) -> SessionCore:
    core = SessionCore(IDENTITY)
    core.connect(0.0)
    welcome = wpb.Welcome(ping_interval_ms=ping_ms, max_result_bytes=max_result)
    core.on_message(wpb.NodeMessage(welcome=welcome), 0.0)
    return core


def task(task_id: int, attempt: int = 1) -> wpb.NodeMessage:
    return wpb.NodeMessage(task=wpb.Task(task_id=task_id, attempt=attempt, name="t"))


def test_a_granted_task_runs_once_and_its_result_goes_out_once() -> None:
    core = welcomed()
    assert [type(a) for a in core.on_message(task(1), 0)] == [Run]
    assert core.on_message(task(1), 0) == [], "a repeated grant is not run twice"
    out = core.on_done(1, Lease(1, 1), Success(b"4"))
    assert [r.success for r in sent(out, "result")] == [b"4"]  # type: ignore[attr-defined]
    assert core.on_done(1, Lease(1, 1), Success(b"4")) == []
    ack = wpb.NodeMessage(ack=wpb.ResultAck(task_id=1, attempt=1, status=1))
    core.on_message(ack, 0)
    assert not core.unacked and not core.running


def test_results_of_attempts_that_end_while_disconnected_wait_for_the_next_welcome() -> None:
    core = welcomed()
    core.on_message(task(1), 0)
    assert isinstance(core.on_stream_end("UNAVAILABLE", "node died", 1)[-1], Reconnect)
    assert sent(core.on_done(1, Lease(1, 1), Failure("x", "E")), "result") == []
    hello = sent(core.connect(2), "hello")[0]
    assert [(x.task_id, x.attempt) for x in hello.resume] == [(1, 1)]  # type: ignore[attr-defined]
    out = core.on_message(wpb.NodeMessage(welcome=wpb.Welcome()), 2)
    assert [r.failure.kind for r in sent(out, "result")] == ["E"]  # type: ignore[attr-defined]


def test_a_result_over_the_limit_becomes_a_fatal_failure() -> None:
    core = welcomed(max_result=3)
    core.on_message(task(1), 0)
    (result,) = sent(core.on_done(1, Lease(1, 1), Success(b'"abcd"')), "result")
    assert result.failure.kind == "ResultTooLarge" and not result.failure.retryable  # type: ignore[attr-defined]


def test_silence_for_three_ping_intervals_reconnects_and_resumes() -> None:
    core = welcomed(ping_ms=100)
    assert core.on_tick(0.29) == []
    core.on_message(wpb.NodeMessage(ping=wpb.Ping(nonce=1)), 0.29)
    assert core.on_tick(0.5) == []
    assert isinstance(core.on_tick(0.6)[0], Reconnect)
    assert core._resume_next


def test_drain_with_nothing_held_and_no_stream_exits_at_once() -> None:
    core = SessionCore(IDENTITY)
    assert core.drain() == [Exit(0)]


def test_a_task_granted_after_our_side_closed_is_not_run() -> None:
    core = welcomed()
    assert [type(a) for a in core.drain()] == [Send, CloseSend]
    assert core.on_message(task(9), 0) == []
    assert core.on_message(wpb.NodeMessage(ping=wpb.Ping(nonce=1)), 0) == []
    assert core.on_message(wpb.NodeMessage(drained=wpb.Drained()), 0) == [Exit(0)]


events = st.lists(
    st.one_of(
        st.tuples(st.just("grant"), st.integers(1, 4), st.integers(1, 2)),
        st.tuples(st.just("done"), st.integers(1, 4), st.integers(1, 2)),
        st.tuples(st.just("ack"), st.integers(1, 4), st.integers(1, 2)),
        st.tuples(st.just("abort"), st.integers(1, 4), st.integers(1, 2)),
        st.tuples(
            st.just("break"), st.sampled_from(["UNAVAILABLE", "INVALID_ARGUMENT"]), st.just(0)
        ),
        st.tuples(st.just("drain"), st.just(0), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=500)
@given(events)
def test_no_result_is_sent_twice_in_a_session_and_none_for_an_abandoned_run(  # noqa: PLR0915
    script: list[tuple[str, object, int]],
) -> None:
    """Whatever the node does, per session: at most one result per lease; a result only for a
    lease granted and answered by a run that was not abandoned; a session that ends by refusal
    resumes nothing, and one that breaks resumes only leases granted."""
    core = SessionCore(IDENTITY)
    granted: set[Lease] = set()
    started: dict[Lease, list[int]] = {}  # runs not finished yet, oldest first
    abandoned: set[int] = set()
    finishing: list[int] = []  # the run whose `done` is being applied
    per_session: list[Lease] = []
    refused = False

    def apply(actions: list[Action]) -> None:
        nonlocal per_session
        for a in actions:
            if isinstance(a, Run):
                lease = Lease(a.task.task_id, a.task.attempt)
                granted.add(lease)
                started.setdefault(lease, []).append(a.run)
            if isinstance(a, Abandon):
                abandoned.add(a.run)
            if isinstance(a, Reconnect):
                per_session = []
                hello = sent(core.connect(0), "hello")[0]
                resumed = {Lease(x.task_id, x.attempt) for x in hello.resume}  # type: ignore[attr-defined]
                assert not (refused and resumed)
                assert resumed <= granted
                apply(core.on_message(wpb.NodeMessage(welcome=wpb.Welcome()), 0))
        for r in sent(actions, "result"):
            lease = Lease(r.task_id, r.attempt)  # type: ignore[attr-defined]
            assert lease in granted
            assert not (finishing and finishing[-1] in abandoned), "result of an abandoned run"
            assert lease not in per_session, "result sent twice in one session"
            per_session.append(lease)

    apply(core.connect(0))
    apply(core.on_message(wpb.NodeMessage(welcome=wpb.Welcome()), 0))
    for kind, x, attempt in script:
        if core.exited:
            break
        if kind == "grant":
            apply(core.on_message(task(int(x), attempt), 0))  # type: ignore[call-overload]
        elif kind == "done":
            lease = Lease(int(x), attempt)  # type: ignore[call-overload]
            if started.get(lease):
                run = started[lease].pop(0)
                finishing.append(run)
                apply(core.on_done(run, lease, Success(b"1")))
                finishing.pop()
        elif kind == "ack":
            m = wpb.ResultAck(task_id=int(x), attempt=attempt, status=1)  # type: ignore[call-overload]
            apply(core.on_message(wpb.NodeMessage(ack=m), 0))
        elif kind == "abort":
            m2 = wpb.Abort(task_id=int(x), attempt=attempt)  # type: ignore[call-overload]
            apply(core.on_message(wpb.NodeMessage(abort=m2), 0))
        elif kind == "break":
            refused = x == "INVALID_ARGUMENT"
            apply(core.on_stream_end(str(x), "test", 0))
        elif kind == "drain":
            apply(core.drain())
