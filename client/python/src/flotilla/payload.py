"""The one JSON convention for task arguments (docs/PAYLOADS.md), shared with the Rust SDK.

A task's arguments travel as ONE JSON document (``TaskSpec.args``). A call ``f(*args,
**kwargs)`` is encoded so that tasks taking one JSON value (the Rust built-ins ``echo``,
``sleep {"ms": N}``, any ``register::<A>`` handler) receive exactly that value:

========================================  ==========================================
call                                      document
========================================  ==========================================
``f()``                                   ``null``
``f(x)``, x not None and not a dict       ``x``
``f(**kw)``, keys not exactly args+kwargs ``{...kw}``
anything else                             ``{"args": [...], "kwargs": {...}}``
========================================  ==========================================

and decoded by :func:`decode_call` so that ``decode_call(encode_call(a, k)) == (a, k)`` for
every call whose values are JSON (tuples come back as lists). Results are plain JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from flotilla.errors import PayloadError

#: Keys of the envelope used when a call is neither empty, one value, nor keywords only.
ENVELOPE_KEYS = frozenset(("args", "kwargs"))


#: One encoder for every call (``json.dumps`` with options makes a new one each time, which a
#: worker answering thousands of tasks a second feels); ``encode`` keeps no state between calls.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def dumps(value: Any) -> bytes:
    """Compact JSON, refusing what JSON cannot carry (NaN, infinities, unknown types)."""
    if value is None:
        return b"null"  # most handlers return nothing: no encoder call per task
    try:
        return _ENCODER.encode(value).encode()
    except (TypeError, ValueError) as e:
        raise PayloadError(f"not JSON-serializable: {e}") from e


def loads(data: bytes) -> Any:
    """Parse a JSON document; empty bytes mean ``null`` (as the Rust registry reads them)."""
    if not data:
        return None
    try:
        # JSON between systems is UTF-8 (RFC 8259): no encoding detection per document.
        return json.loads(data.decode())
    except ValueError as e:  # UnicodeDecodeError included
        raise PayloadError(f"invalid JSON: {e}") from e


def call_document(args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
    """The JSON value a call ``f(*args, **kwargs)`` is sent as (before serialization)."""
    for key in kwargs:
        if not isinstance(key, str):
            raise PayloadError(f"keyword argument names must be strings, got {key!r}")
    if not args and not kwargs:
        return None
    if len(args) == 1 and not kwargs and args[0] is not None and not isinstance(args[0], Mapping):
        return _jsonable(args[0])
    if not args and set(kwargs) != ENVELOPE_KEYS:
        return dict(kwargs)
    return {"args": list(args), "kwargs": dict(kwargs)}


def encode_call(args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None) -> bytes:
    """The bytes of :func:`call_document`."""
    return dumps(call_document(args, kwargs or {}))


def split_document(doc: Any) -> tuple[list[Any], dict[str, Any]]:
    """How a handler is called with a JSON value: the inverse of :func:`call_document`."""
    if doc is None:
        return [], {}
    if isinstance(doc, dict):
        if (
            set(doc) == ENVELOPE_KEYS
            and isinstance(doc["args"], list)
            and isinstance(doc["kwargs"], dict)
        ):
            return list(doc["args"]), dict(doc["kwargs"])
        return [], dict(doc)
    return [doc], {}


def decode_call(data: bytes) -> tuple[list[Any], dict[str, Any]]:
    """Positional and keyword arguments for a handler from a task's argument bytes."""
    if not data or data == b"null":
        return [], {}  # ``f()``: no JSON parse per task for the commonest call
    return split_document(loads(data))


def _jsonable(value: Any) -> Any:
    # Tuples are JSON arrays; everything else is checked when the document is serialized.
    return list(value) if isinstance(value, tuple) else value
