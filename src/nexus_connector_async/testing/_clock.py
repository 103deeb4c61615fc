"""`FakeClock`: time that moves only when a test says so."""

from __future__ import annotations

import asyncio
import heapq
import itertools

__all__ = ["FakeClock"]


class FakeClock:
    """A `Clock` whose time moves only by `advance()` or, with `autojump`, to the next sleeper.

    With `autojump=True`, whenever the event loop has nothing else to run for a few iterations,
    time jumps to the earliest pending `sleep()` deadline (like trio's `MockClock`), so code that
    waits for tokens or backoff runs instantly and deterministically. With `instant=True`, every
    `sleep()` moves time by its own duration and returns at once. Either way `slept` lists every
    duration asked for, so tests can assert on backoff and Retry-After delays.
    """

    def __init__(
        self, start: float = 1_700_000_000.0, *, autojump: bool = False, instant: bool = False
    ) -> None:
        self.instant = instant
        self.slept: list[float] = []
        self._now = 0.0
        self._epoch = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self.autojump = autojump
        self._jump_scheduled = False

    def time(self) -> float:
        """Fake wall-clock seconds: `start` plus the time advanced so far."""
        return self._epoch + self._now

    def monotonic(self) -> float:
        """Fake monotonic seconds, starting at 0."""
        return self._now

    async def sleep(self, seconds: float) -> None:
        """Wait until fake time reaches now + `seconds` (by `advance()` or autojump)."""
        self.slept.append(seconds)
        if self.instant:
            self.advance(max(0.0, seconds))
            await asyncio.sleep(0)
            return
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), fut))
        if self.autojump:
            self._schedule_jump()
        await fut

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose deadline has come."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._now += seconds
        self._wake()

    def _wake(self) -> None:
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    def _schedule_jump(self, idle_rounds: int = 5) -> None:
        if self._jump_scheduled:
            return
        self._jump_scheduled = True
        loop = asyncio.get_running_loop()
        state = {"rounds": idle_rounds, "ready": _ready_count(loop)}

        def tick() -> None:
            ready = _ready_count(loop)
            if ready > 1:  # other callbacks are still running: not idle yet
                state["rounds"] = idle_rounds
            else:
                state["rounds"] -= 1
            if state["rounds"] > 0:
                loop.call_soon(tick)
                return
            self._jump_scheduled = False
            while self._sleepers and self._sleepers[0][2].done():
                heapq.heappop(self._sleepers)
            if self._sleepers:
                self._now = max(self._now, self._sleepers[0][0])
                self._wake()
                if self._sleepers:
                    self._schedule_jump()

        loop.call_soon(tick)

    @property
    def pending_sleepers(self) -> int:
        """How many `sleep()` calls are waiting."""
        return sum(1 for *_, f in self._sleepers if not f.done())


def _ready_count(loop: asyncio.AbstractEventLoop) -> int:
    ready = getattr(loop, "_ready", None)
    return len(ready) if ready is not None else 0
