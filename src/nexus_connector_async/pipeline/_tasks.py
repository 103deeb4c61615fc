"""Cancellation-safe task plumbing: background work the connector waits for at close.

`shielded` is the shielded write with undo: a backend write a cancellation must not cut off
halfway, whose effect (a claimed key, a permit) is handed back when the caller is gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from .._clock import Clock, wait_or_timeout
from .._errors import ConnectorError

__all__ = ["Tasks"]

T = TypeVar("T")


class Tasks:
    """The connector's background tasks, and the signal that it is closing."""

    __slots__ = ("_log", "background", "closed", "closing")

    def __init__(self, log: Any) -> None:
        self._log = log
        self.background: set[asyncio.Future[Any]] = set()
        self.closing = asyncio.Event()  # wakes background settles for their last try
        self.closed = False

    def spawn(self, coro: Awaitable[Any]) -> None:
        """Run `coro` in the background; `drain()` waits for it."""
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def shielded(
        self, coro: Awaitable[T], undo: Callable[[T], Awaitable[Any] | None] | None = None
    ) -> T:
        """Await a backend write; if we are cancelled meanwhile, it still completes, then `undo`.

        The write runs as its own task, so a cancellation cannot cut it off halfway; whatever it
        then took (a key, a permit) is handed back by `undo` in the background.
        """
        task = asyncio.ensure_future(coro)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            self.background.add(task)

            def settled(done: asyncio.Future[T]) -> None:
                self.background.discard(task)
                if done.cancelled() or done.exception() is not None:
                    return  # a failed write took nothing; its error was the caller's, now moot
                if undo is not None:
                    cleanup = undo(done.result())
                    if cleanup is not None:
                        self.spawn(cleanup)

            task.add_done_callback(settled)
            raise

    async def cleanup(self, coro: Awaitable[T]) -> T | None:
        """Run a release even if we are being cancelled; a backend failure is only logged.

        Returns what the release returned (None after a failure).
        """
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            raise
        except ConnectorError as exc:
            self._log.error("nexus.backend.cleanup_failed", error=type(exc).__name__)
            return None

    async def pause_unless_closing(self, clock: Clock, seconds: float) -> None:
        """Sleep `seconds` of clock time, or less if the connector starts closing."""
        if not self.closing.is_set():
            await wait_or_timeout(self.closing.wait(), clock, seconds)

    async def close(self, *steps: Callable[[], Awaitable[Any]], then: Iterable[Any] = ()) -> None:
        """Close down: mark closing, run `steps` (the adapters' closers, last registered first),
        wait for background work, then run the `then` closers (transport, backend)."""
        self.mark_closing()
        for step in reversed(steps):
            await step()
        await self.drain()
        for step in then:
            await step()

    def mark_closing(self) -> None:
        """From now on, background settles make their last try and give up."""
        self.closed = True
        self.closing.set()

    async def drain(self) -> None:
        """Wait for background work, which may spawn its own follow-up (a release)."""
        for _ in range(3):
            if not self.background:
                break
            await asyncio.gather(*self.background, return_exceptions=True)
