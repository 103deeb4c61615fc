"""Month-to-date SMS spend shared by every worker through the backend's key-value store.

A send reserves its estimated cost before publishing (refused with `SpendLimitExceeded` if that
would pass the limit) and gives it back only when SNS certainly did not publish. Each update is
one atomic `add` on the backend (a Lua script on Redis): no lock, no read-modify-write, so any
number of workers can never reserve past the limit together. Every update is `strict`: while
Redis cannot be reached the guard fails closed (`BackendUnavailable`, nothing sent) whatever the
backend's `on_unavailable` mode, since a local count would start again from zero (rule 39).
"""

from __future__ import annotations

import datetime
from decimal import ROUND_CEILING, Decimal
from typing import Final

from ..._clock import Clock
from ..._errors import InvalidRequest
from ...backends._base import KeyValueStore
from ...backends._names import escape_name
from .._errors import SpendLimitExceeded
from .._money import Money, require_non_negative, require_positive

__all__ = ["SpendTracker", "parse_limit", "usd"]

_USD: Final = "USD"
_KEEP: Final = 40 * 86400.0  # a month's counter outlives its month, then expires
#: The counter holds nano-dollars: integers keep it exact (prices have at most 5-6 decimals).
_NANO: Final = Decimal("1e9")


def _nanos(amount: Decimal) -> int:
    """Dollars to whole nano-dollars, rounding a cost up (the guard errs on the safe side)."""
    return int((amount * _NANO).to_integral_value(rounding=ROUND_CEILING))


def _dollars(nanos: int) -> Money:
    return Money((Decimal(nanos) / _NANO).normalize(), _USD)


class SpendTracker:
    """The shared USD spend counter of one service, one key per calendar month (UTC).

    `account` names one of several AWS accounts the service sends from (a tenant's, with
    `SnsSmsAdapter(sessions=...)`): each gets its own counter.
    """

    def __init__(
        self, store: KeyValueStore, service: str, clock: Clock, account: str | None = None
    ) -> None:
        self._store = store
        self._clock = clock
        # Escaped names hold no ':', so "service:month" and "service:t.account:month" differ.
        self._prefix = f"sms-spend:{escape_name(service)}:"
        if account is not None:
            self._prefix += f"t.{escape_name(account)}:"

    def month(self) -> str:
        """The current month, `YYYY-MM` in UTC."""
        now = datetime.datetime.fromtimestamp(self._clock.time(), datetime.UTC)
        return now.strftime("%Y-%m")

    def _key(self, month: str) -> str:
        return self._prefix + month  # escaped: no name collides

    async def month_to_date(self, month: str | None = None) -> Money:
        """What was reserved so far in `month` (default: this month)."""
        _, total = await self._store.add(
            self._key(month or self.month()), 0, ttl=_KEEP, strict=True
        )
        return _dollars(total)

    async def reserve(self, cost: Money, limit: Money | None) -> str:
        """Add `cost` to this month unless that passes `limit`; returns the month charged."""
        month = self.month()
        amount = _nanos(cost.amount)
        ceiling = None if limit is None else int(limit.amount * _NANO)
        applied, total = await self._store.add(
            self._key(month), amount, limit=ceiling, ttl=_KEEP, strict=True
        )
        if not applied:
            spent = _dollars(total).amount
            raise SpendLimitExceeded(
                f"sending would bring this month's SMS spend to {spent + cost.amount:f} USD, over"
                f" the {limit.amount if limit else 0:f} USD limit ({spent:f} USD spent so far);"
                " nothing sent"
            )
        return month

    async def refund(self, cost: Money, month: str) -> None:
        """Give back a reservation for a message SNS certainly did not publish."""
        await self._store.add(self._key(month), -_nanos(cost.amount), ttl=_KEEP, strict=True)


def usd(name: str, value: Money | None, *, positive: bool = False) -> Money | None:
    """`value` checked as a USD amount (SNS bills SMS in USD), or None."""
    if value is None:
        return None
    checked = require_positive(value, name) if positive else require_non_negative(value, name)
    if checked.currency != "USD":
        raise InvalidRequest(f"{name} must be in USD (SNS bills SMS in USD), got {checked}")
    return checked


def parse_limit(text: str) -> Money | None:
    """`MonthlySpendLimit` is a whole-dollar string; absent or unreadable means no limit known."""
    try:
        return Money(Decimal(text), "USD") if text else None
    except (InvalidRequest, ArithmeticError):
        return None
