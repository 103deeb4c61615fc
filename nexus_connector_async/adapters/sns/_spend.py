"""Month-to-date SMS spend shared by every worker through the backend's key-value store.

A send reserves its estimated cost before publishing (refused with `SpendLimitExceeded` if that
would pass the limit) and gives it back only when SNS certainly did not publish. Each update is
a read-modify-write under the backend lock (`acquire_lock`), serialised in-process first so
local tasks do not spin on the shared lock. An atomic increment in the backend would remove the
lock; it is proposed, not yet part of the `KeyValueStore` protocol.
"""

from __future__ import annotations

import asyncio
import datetime
import random
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Final, TypeAlias

from ..._clock import Clock
from ...backends._base import KeyValueStore
from .._errors import SpendLimitExceeded
from .._money import Money
from ._errors import SpendCounterBusy

__all__ = ["SpendTracker"]

_USD: Final = "USD"
_KEEP: Final = 40 * 86400.0  # a month's counter outlives its month, then expires
_Change: TypeAlias = Callable[[Decimal], Decimal]


class SpendTracker:
    """The shared USD spend counter of one service, one key per calendar month (UTC)."""

    def __init__(
        self,
        store: KeyValueStore,
        service: str,
        clock: Clock,
        *,
        lock_lease: float = 5.0,
        lock_wait: float = 5.0,
    ) -> None:
        self._store = store
        self._service = service
        self._clock = clock
        self._lease = lock_lease
        self._wait = lock_wait
        self._local = asyncio.Lock()

    def month(self) -> str:
        """The current month, `YYYY-MM` in UTC."""
        now = datetime.datetime.fromtimestamp(self._clock.time(), datetime.UTC)
        return now.strftime("%Y-%m")

    def _key(self, month: str) -> str:
        return f"sms-spend:{self._service}:{month}"

    async def month_to_date(self, month: str | None = None) -> Money:
        """What was reserved so far in `month` (default: this month)."""
        raw = await self._store.get(self._key(month or self.month()))
        return Money(_parse(raw), _USD)

    async def reserve(self, cost: Money, limit: Money | None) -> str:
        """Add `cost` to this month unless that passes `limit`; returns the month charged."""
        month = self.month()

        def add(current: Decimal) -> Decimal:
            total = current + cost.amount
            if limit is not None and total > limit.amount:
                raise SpendLimitExceeded(
                    f"sending would bring this month's SMS spend to {total:f} USD, over the"
                    f" {limit.amount:f} USD limit ({current:f} USD spent so far); nothing sent"
                )
            return total

        await self._update(month, add)
        return month

    async def refund(self, cost: Money, month: str) -> None:
        """Give back a reservation for a message SNS certainly did not publish."""
        await self._update(month, lambda current: max(Decimal(0), current - cost.amount))

    async def _update(self, month: str, change: _Change) -> None:
        key = self._key(month)
        lock = f"{key}:lock"
        token = uuid.uuid4().hex
        async with self._local:
            await self._acquire(lock, token)
            try:
                current = _parse(await self._store.get(key))
                await self._store.set(key, f"{change(current):f}".encode(), _KEEP)
            finally:
                await self._store.release_lock(lock, token)

    async def _acquire(self, lock: str, token: str) -> None:
        deadline = self._clock.monotonic() + self._wait
        pause = 0.002
        while not await self._store.acquire_lock(lock, token, self._lease):
            if self._clock.monotonic() >= deadline:
                raise SpendCounterBusy(f"SMS spend counter still locked after {self._wait:g}s")
            await self._clock.sleep(random.uniform(pause / 2, pause))
            pause = min(pause * 2, 0.05)


def _parse(raw: bytes | None) -> Decimal:
    return Decimal(raw.decode("ascii")) if raw else Decimal(0)
