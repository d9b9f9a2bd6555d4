"""Which failed calls are retried, and how long to wait between attempts: the rules of the Rust
client (``client/src/retry.rs``, ``flotilla_proto::Backoff``) in Python.

A failure is *transient* when the node says ``UNAVAILABLE`` (no leader yet, forwarding failed,
shutting down), ``CANCELLED`` (the node enforced this attempt's deadline), or when the attempt
got no reply at all (``DEADLINE_EXCEEDED`` of a unary call: our own per-attempt timeout).
Transient failures are retried with exponential backoff and jitter, each retry on the next node,
until the policy's ``max_elapsed`` has passed. Every other status is final.

:class:`Backoff` is pure: the caller passes the clock reading and the jitter draw, so it is
tested without sleeping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import grpc


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how often a transient failure is retried (times in seconds)."""

    #: Give up once this long has passed since the first failure of a call.
    max_elapsed: float = 30.0
    #: Wait before the first retry; it doubles with each retry.
    initial_backoff: float = 0.02
    #: Upper bound on the wait between two attempts.
    max_backoff: float = 1.0

    @classmethod
    def never(cls) -> RetryPolicy:
        """Exactly one attempt."""
        return cls(max_elapsed=0.0)


class Backoff:
    """The backoff state of one logical call, which may span many attempts."""

    def __init__(self, policy: RetryPolicy, now: float) -> None:
        self.policy = policy
        self.started = now
        self.next = policy.initial_backoff
        self.attempts = 0

    def on_failure(self, now: float, jitter: float) -> Optional[float]:
        """Counts a failed attempt; the wait before the next one, or None when time is up.

        ``jitter`` in ``[0, 1)`` picks the wait within ``[base/2, base]``, so clients that
        failed together do not retry in lockstep. The wait never runs past ``max_elapsed``.
        """
        self.attempts += 1
        left = self.policy.max_elapsed - (now - self.started)
        if left <= 0:
            return None
        cap = max(self.policy.max_backoff, self.policy.initial_backoff)
        base = min(self.next, cap)
        self.next = min(base * 2, cap)
        jitter = 0.0 if math.isnan(jitter) else min(max(jitter, 0.0), 1.0)
        return min(base / 2 + base / 2 * jitter, left)

    def reset(self, now: float) -> None:
        """Starts over after progress: the budget covers consecutive failures only."""
        self.started = now
        self.next = self.policy.initial_backoff


_TRANSIENT = frozenset(
    (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED)
)


def is_transient(code: Optional[grpc.StatusCode]) -> bool:
    """Whether a unary call that failed with ``code`` may be retried on another node.

    Every call is safe to repeat: submits carry idempotency keys. ``DEADLINE_EXCEEDED`` is
    transient only for unary calls, whose deadline is our own per-attempt timeout; a
    ``WaitResults`` stream that ends with it has run out of the caller's time (see
    ``Client.wait``).
    """
    return code in _TRANSIENT


def describe(error: grpc.RpcError) -> str:
    """One line for a failed call: ``UNAVAILABLE: connection refused``."""
    code = error.code() if isinstance(error, grpc.Call) else None
    details = error.details() if isinstance(error, grpc.Call) else str(error)
    name = code.name if code is not None else "UNKNOWN"
    return f"{name}: {details}"
