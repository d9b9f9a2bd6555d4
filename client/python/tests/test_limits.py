"""Flow control in the SDK without a node: a concurrency key reaches the wire spec, options
layer it like the others, and the limit calls exist on the stubs (docs/LIMITS.md)."""

from __future__ import annotations

import grpc

from flotilla import _rpc
from flotilla.spec import SubmitOptions, build_spec


def test_a_concurrency_key_reaches_the_wire_spec() -> None:
    spec = build_spec("emails.send", options=SubmitOptions(concurrency_key="tenant-1"))
    assert spec.concurrency_key == "tenant-1"
    assert build_spec("emails.send").concurrency_key == ""


def test_a_call_key_overrides_the_task_key() -> None:
    task = SubmitOptions(concurrency_key="from-task", queue="q")
    assert SubmitOptions(concurrency_key="call").over(task).concurrency_key == "call"
    assert SubmitOptions().over(task).concurrency_key == "from-task"


def test_the_stub_has_the_limit_calls() -> None:
    with grpc.insecure_channel("127.0.0.1:1") as channel:
        stub = _rpc.QueueStub(channel)
        for call in (stub.set_limit, stub.list_limits, stub.remove_limit):
            assert callable(call)
    assert _rpc.LIMIT_SERVICE == "flotilla.v1.LimitService"
