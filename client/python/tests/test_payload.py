"""The JSON convention (docs/PAYLOADS.md): every call round-trips, and the documented cases
encode exactly as written there."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flotilla import PayloadError
from flotilla.payload import decode_call, encode_call

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(
    st.lists(json_values, max_size=4),
    st.dictionaries(st.sampled_from(["args", "kwargs", "x", "ms", ""]), json_values, max_size=3),
)
def test_every_call_round_trips(args: list[Any], kwargs: dict[str, Any]) -> None:
    assert decode_call(encode_call(args, kwargs)) == (args, kwargs)


@pytest.mark.parametrize(
    ("args", "kwargs", "document"),
    [
        ((), {}, b"null"),
        (("hi",), {}, b'"hi"'),
        (([1, 2],), {}, b"[1,2]"),
        (((1, 2),), {}, b"[1,2]"),
        ((), {"ms": 5}, b'{"ms":5}'),
        ((2, 2), {}, b'{"args":[2,2],"kwargs":{}}'),
        ((1,), {"y": 2}, b'{"args":[1],"kwargs":{"y":2}}'),
        (({"a": 1},), {}, b'{"args":[{"a":1}],"kwargs":{}}'),
        ((None,), {}, b'{"args":[null],"kwargs":{}}'),
        ((), {"args": [], "kwargs": {}}, b'{"args":[],"kwargs":{"args":[],"kwargs":{}}}'),
        ((), {"args": 1}, b'{"args":1}'),
        (("é",), {}, '"é"'.encode()),
    ],
)
def test_documented_cases(args: tuple[Any, ...], kwargs: dict[str, Any], document: bytes) -> None:
    assert encode_call(args, kwargs) == document


@pytest.mark.parametrize(
    ("document", "call"),
    [
        (b"", ([], {})),
        (b"null", ([], {})),
        (b"7", ([7], {})),
        (b'{"ms":5}', ([], {"ms": 5})),
        (b'{"args":[1],"kwargs":{"y":2}}', ([1], {"y": 2})),
        # Not an envelope (wrong types or extra keys): keywords.
        (b'{"args":1,"kwargs":{}}', ([], {"args": 1, "kwargs": {}})),
        (b'{"args":[],"kwargs":{},"z":0}', ([], {"args": [], "kwargs": {}, "z": 0})),
    ],
)
def test_decoding_what_any_sdk_may_send(document: bytes, call: tuple[Any, Any]) -> None:
    assert decode_call(document) == call


def test_what_json_cannot_carry_is_refused() -> None:
    with pytest.raises(PayloadError):
        encode_call([float("nan")])
    with pytest.raises(PayloadError):
        encode_call([object()])
    with pytest.raises(PayloadError):
        decode_call(b"{oops")
