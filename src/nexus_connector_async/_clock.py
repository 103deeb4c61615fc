"""Injected time: everything that reads the clock or sleeps goes through a `Clock`."""

from __future__ import annotations

import asyncio
import time as _time
from collections.abc import Awaitable
from typing import Any, Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock", "wait_or_timeout"]


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

    # The builtins themselves, not methods calling them: read a few times per call, a Python
    # frame each would be most of what reading the clock costs.
    time = staticmethod(_time.time)
    monotonic = staticmethod(_time.monotonic)

    async def sleep(self, seconds: float) -> None:
        """`asyncio.sleep()` (negative means no sleep)."""
        await asyncio.sleep(max(0.0, seconds))


SYSTEM_CLOCK = SystemClock()


async def wait_or_timeout(awaitable: Awaitable[Any], clock: Clock, timeout: float) -> None:
    """Wait for `awaitable` or for `timeout` seconds of `clock` time, whichever ends first.

    A coroutine runs as a task that is cancelled (and let finish) when the time is up; a future
    passed in may be shared with other waiters, so it is left alone. The awaitable's exception,
    if it failed first, propagates.
    """
    if timeout <= 0:
        return
    own = not asyncio.isfuture(awaitable)
    waiter = asyncio.ensure_future(awaitable)
    sleeper = asyncio.ensure_future(clock.sleep(timeout))
    try:
        await asyncio.wait((waiter, sleeper), return_when=asyncio.FIRST_COMPLETED)
    finally:
        sleeper.cancel()
        if own:
            waiter.cancel()
            await asyncio.wait((waiter,))  # e.g. a cancelled BLMOVE drops its connection now
    if waiter.done() and not waiter.cancelled() and waiter.exception() is not None:
        raise waiter.exception()  # type: ignore[misc]
