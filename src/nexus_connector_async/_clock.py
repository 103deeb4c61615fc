"""Injected time: everything that reads the clock or sleeps goes through a `Clock`."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """Where the library reads time and sleeps; swap in `testing.FakeClock` in tests."""

    def time(self) -> float:
        """Wall-clock seconds since the epoch (token expiries)."""
        ...

    def monotonic(self) -> float:
        """Monotonic seconds (durations, buckets, breakers, deadlines)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep for `seconds` (backoff, rate-limit waits, polling)."""
        ...


class SystemClock:
    """The real clock: `time.time`, `time.monotonic` and `asyncio.sleep`."""

    __slots__ = ()

    def time(self) -> float:
        """`time.time()`."""
        return time.time()

    def monotonic(self) -> float:
        """`time.monotonic()`."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """`asyncio.sleep()` (negative means no sleep)."""
        await asyncio.sleep(max(0.0, seconds))


SYSTEM_CLOCK = SystemClock()
