"""W3C trace context at submit: taken from OpenTelemetry when it is installed and a span is
current, nothing otherwise (OpenTelemetry is optional)."""

from __future__ import annotations

import sys
import types

import pytest

from flotilla import client

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def fake_opentelemetry(monkeypatch: pytest.MonkeyPatch, carrier: dict[str, str]) -> None:
    """An ``opentelemetry`` package whose propagator injects ``carrier``."""
    package = types.ModuleType("opentelemetry")
    propagate = types.ModuleType("opentelemetry.propagate")

    def inject(into: dict[str, str]) -> None:
        into.update(carrier)

    propagate.inject = inject  # type: ignore[attr-defined]
    package.propagate = propagate  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "opentelemetry", package)
    monkeypatch.setitem(sys.modules, "opentelemetry.propagate", propagate)


def test_without_opentelemetry_no_header(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    assert client._current_trace_context() == {}


def test_the_current_span_becomes_the_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_opentelemetry(
        monkeypatch,
        {"traceparent": TRACEPARENT, "tracestate": "vendor=x", "baggage": "k=v"},
    )
    assert client._current_trace_context() == {
        "traceparent": TRACEPARENT,
        "tracestate": "vendor=x",
    }


def test_outside_a_span_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_opentelemetry(monkeypatch, {})
    assert client._current_trace_context() == {}
