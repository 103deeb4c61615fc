"""What a `RedisBackend` does while Redis is unreachable: one strategy, chosen at construction.

`on_unavailable` names one of three `Fallback`s, so the backend's methods never test the mode:
they hand the `RedisUnreachable` to the strategy, which raises it or answers in its place.

- `FailClosed` (``"fail_closed"``, the default, the safe choice for payments): every call raises.
- `FailOpen` (``"fail_open"``): nothing is blocked (no limiter, no breaker); logged loudly.
- `Local` (``"local"``): buckets and breakers live in an in-process `MemoryBackend` until Redis
  answers.

Idempotency keys raise in every mode (a call must never silently lose its at-most-once
guarantee), so they never reach a strategy. The shared KV store (token cache, refresh lock)
falls back to process memory in ``fail_open`` and ``local``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal, Protocol, TypeVar

from .._base import Admission, AdmissionReason
from .._memory import MemoryBackend
from ._health import RedisUnreachable

__all__ = ["MODES", "FailClosed", "FailOpen", "Fallback", "Local", "OnUnavailable", "fallback"]

OnUnavailable = Literal["fail_closed", "fail_open", "local"]

T = TypeVar("T")
_OPEN_DOOR = Admission(AdmissionReason.ADMITTED, 0.0, "", True)  # admit, and skip record()


Ask = Callable[[MemoryBackend], Awaitable[T]]  # the same call, put to the local store


class Fallback(Protocol):
    """Answers in Redis's place, or raises the `RedisUnreachable` it is given.

    `ask` is the call that failed, put to a `MemoryBackend` instead; a strategy that answers
    otherwise never calls it.
    """

    mode: OnUnavailable

    async def admit(self, exc: RedisUnreachable, ask: Ask[Admission]) -> Admission:
        """The admission while Redis is down (no concurrency slot: those are Redis-only)."""
        ...

    async def record(self, exc: RedisUnreachable, ask: Ask[str | None]) -> str | None:
        """Feed an outcome to the breaker in force while Redis is down, if any."""
        ...

    async def pause(self, exc: RedisUnreachable, ask: Ask[None]) -> None:
        """Shared backpressure while Redis is down."""
        ...

    def probe_may_go(self, exc: RedisUnreachable) -> bool:
        """Whether a probe whose permit cannot be renewed may still be sent."""
        ...

    def memory(self, exc: RedisUnreachable) -> MemoryBackend:
        """The process-memory KV store that stands in for Redis's."""
        ...


class FailClosed:
    """Every call raises `BackendUnavailable` while Redis is unreachable."""

    mode: OnUnavailable = "fail_closed"

    async def admit(self, exc: RedisUnreachable, ask: Ask[Admission]) -> Admission:
        raise exc

    async def record(self, exc: RedisUnreachable, ask: Ask[str | None]) -> str | None:
        raise exc

    async def pause(self, exc: RedisUnreachable, ask: Ask[None]) -> None:
        raise exc

    def probe_may_go(self, exc: RedisUnreachable) -> bool:
        raise exc

    def memory(self, exc: RedisUnreachable) -> MemoryBackend:
        raise exc


class FailOpen:
    """Nothing is limited or broken while Redis is down; KV values live in process memory."""

    mode: OnUnavailable = "fail_open"

    def __init__(self, memory: MemoryBackend) -> None:
        self._memory = memory

    async def admit(self, exc: RedisUnreachable, ask: Ask[Admission]) -> Admission:
        return _OPEN_DOOR

    async def record(self, exc: RedisUnreachable, ask: Ask[str | None]) -> str | None:
        return None

    async def pause(self, exc: RedisUnreachable, ask: Ask[None]) -> None:
        return None

    def probe_may_go(self, exc: RedisUnreachable) -> bool:
        return True  # the breaker is not enforced fleet-wide while Redis is down anyway

    def memory(self, exc: RedisUnreachable) -> MemoryBackend:
        return self._memory


class Local(FailOpen):
    """Breakers, buckets, pauses and KV values live in process memory while Redis is down."""

    mode: OnUnavailable = "local"

    async def admit(self, exc: RedisUnreachable, ask: Ask[Admission]) -> Admission:
        return await ask(self._memory)

    async def record(self, exc: RedisUnreachable, ask: Ask[str | None]) -> str | None:
        return await ask(self._memory)

    async def pause(self, exc: RedisUnreachable, ask: Ask[None]) -> None:
        await ask(self._memory)


MODES: tuple[OnUnavailable, ...] = ("fail_closed", "fail_open", "local")


def fallback(mode: OnUnavailable, memory: MemoryBackend) -> Fallback:
    """The strategy `on_unavailable=mode` names."""
    if mode == "fail_closed":
        return FailClosed()
    return FailOpen(memory) if mode == "fail_open" else Local(memory)
