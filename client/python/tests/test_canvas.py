"""The canvas without a node: what a chain, group and chord become on the wire, and how a
worker passes the parents' results to a handler (docs/WORKFLOWS.md)."""

from __future__ import annotations

import time

import pytest

from flotilla import Flotilla, InvalidArgument, chain, chord, group
from flotilla._rpc import MAX_REQUEST_BYTES
from flotilla.canvas import pass_parent_results

app = Flotilla("127.0.0.1:1")


@app.task(name="c.add")
def add(x: int, y: int) -> int:
    return x + y


def test_a_canvas_becomes_one_nested_wire_canvas_without_task_keys() -> None:
    c = chain(add.s(1, 1), chord([add.s(2), add.s(3)], add.si(0, 0)))
    node = c._node()
    assert node.WhichOneof("node") == "chain"
    first, second = node.chain.items
    assert first.task.spec.name == "c.add" and first.task.spec.idempotency_key == ""
    assert second.chord.header.WhichOneof("node") == "group"
    assert len(second.chord.header.group.items) == 2
    assert second.chord.body.task.immutable
    assert (add.s(1, 1) | add.s(2))._node().WhichOneof("node") == "chain"
    assert group([add.s(1, 1)])._node().WhichOneof("node") == "group"
    with pytest.raises(ValueError, match="an empty chain"):
        chain()
    with pytest.raises(ValueError, match="a chord needs a body"):
        chord([add.s(1, 1)])._node()


def test_parent_results_are_passed_as_the_canvas_asked() -> None:
    results = {"flotilla-parent-results": "[4, 5]"}
    assert pass_parent_results({**results, "flotilla-pass": "one"}, [1]) == [4, 1]
    assert pass_parent_results({**results, "flotilla-pass": "list"}, [1]) == [[4, 5], 1]
    assert pass_parent_results({**results, "flotilla-pass": "none"}, [1]) == [1]
    assert pass_parent_results({}, [1]) == [1]
    error = {
        "flotilla-pass": "error",
        "flotilla-parent-error": '{"task": 3, "state": "dead", "error": "x"}',
    }
    assert pass_parent_results(error, []) == [{"task": 3, "state": "dead", "error": "x"}]


def test_a_workflow_request_over_the_node_limit_is_refused_before_it_is_sent() -> None:
    # No node listens at the app's address: a request that was sent would be retried for the
    # whole retry budget; this one fails at once, naming the sizes.
    big = "x" * MAX_REQUEST_BYTES
    started = time.monotonic()
    with pytest.raises(InvalidArgument, match=f"over the limit of {MAX_REQUEST_BYTES} bytes"):
        chain(add.s(big, 1), add.s(2)).apply_async()
    assert time.monotonic() - started < 5
