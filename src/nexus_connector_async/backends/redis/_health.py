"""Health of the connection to Redis: which errors are outages, and reconnect backoff.

A dead Redis must cost a call almost nothing: `Health` lets one trial per backoff window through
and fails every other call over at once. `RedisUnreachable` is the error the fallback strategies
(`_fallback`) act on; any other `BackendUnavailable` is raised as it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from redis import exceptions as rex

from ..._errors import BackendUnavailable

__all__ = ["Health", "RedisUnreachable", "as_backend_error", "is_outage", "pool_full"]

# Errors that mean "Redis cannot answer right now" (as opposed to a bug in a command).
_OUTAGE = (
    OSError,
    TimeoutError,
    rex.ConnectionError,
    rex.TimeoutError,
    rex.ClusterError,
    rex.TryAgainError,
    rex.ReadOnlyError,
    rex.OutOfMemoryError,
    rex.InvalidResponse,
    rex.RedisClusterException,
)


class RedisUnreachable(BackendUnavailable):
    """Redis could not be reached (or is in backoff after failing to); modes may fall back."""


def pool_full(exc: BaseException) -> bool:
    """Whether `exc` is our own connection pool being full (congestion, not a dead server).

    redis-py 6+ raises `MaxConnectionsError`; 5.x's asyncio pool a plain `ConnectionError`
    with this message.
    """
    return isinstance(exc, rex.MaxConnectionsError) or (
        type(exc) is rex.ConnectionError and str(exc) == "Too many connections"
    )


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` says Redis is unreachable rather than that a command was wrong."""
    return (
        isinstance(exc, _OUTAGE) and not isinstance(exc, rex.NoScriptError) and not pool_full(exc)
    )


def as_backend_error(exc: BaseException) -> BackendUnavailable:
    """Our error for a Redis failure: callers never see a raw redis-py exception."""
    if isinstance(exc, BackendUnavailable):
        return exc
    if is_outage(exc):
        return RedisUnreachable(f"redis unreachable: {type(exc).__name__}")
    return BackendUnavailable(f"redis error: {type(exc).__name__}: {exc}")


class Health:
    """Tracks outages and spaces out reconnect attempts, so a dead Redis costs little per call.

    While Redis is down, only one attempt per backoff window (doubling from 50 ms to 2 s) goes
    to Redis; every other call fails over at once without waiting on a socket.
    """

    BASE = 0.05
    CAP = 2.0

    def __init__(self, on_change: Callable[[bool, BaseException | None], None]) -> None:
        self.failures = 0
        self._retry_at = 0.0
        self._on_change = on_change

    @property
    def up(self) -> bool:
        """False while we believe Redis is unreachable."""
        return self.failures == 0

    def may_try(self) -> bool:
        """True if a command may go to Redis now (healthy, or this is the window's one trial)."""
        if not self.failures:
            return True
        now = time.monotonic()
        if now < self._retry_at:
            return False
        self._retry_at = now + self._delay()  # one trial per window; others fail over
        return True

    def failed(self, exc: BaseException) -> None:
        """Record a failed round trip."""
        self.failures += 1
        self._retry_at = time.monotonic() + self._delay()
        if self.failures == 1:
            self._on_change(False, exc)

    def succeeded(self) -> None:
        """Record a successful round trip: Redis is back."""
        if self.failures:
            self.failures = 0
            self._retry_at = 0.0
            self._on_change(True, None)

    def _delay(self) -> float:
        return min(self.CAP, self.BASE * 2.0 ** min(self.failures, 16))
