"""Fleet-wide concurrency slots (api.md rule 26), the in-process side and the shared types.

A slot is a lease: held by a token until it is released or its lease ends (so a dead worker's
slots come back by themselves). Waiters queue first come first served: a caller may take a free
slot only if fewer waiters are ahead of it than there are free slots. A release wakes exactly
the waiters that may now go; a waiter also wakes when the earliest lease ends.

On the happy path the slot comes with the admission (`SlotAsk` given to `admit`: one step with
the breaker and the token); `acquire_slot` is the wait for one when none was free.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, runtime_checkable

from .._clock import Clock, wait_or_timeout

__all__ = ["Adapt", "MemorySlots", "Slot", "SlotAsk", "SlotStore", "adapted"]

CUT = 0.7  # multiplicative decrease of an adaptive limit


class Slot(NamedTuple):
    """The answer to asking for a slot: `token` ("" if none came free) and the retry-after.

    `generation` counts the changes of an adaptive limit: the one in force when the slot was
    granted, so that a throttle answers for the limit the attempt was admitted under.
    """

    token: str
    retry_after: float = 0.0
    generation: int = 0

    @property
    def acquired(self) -> bool:
        return bool(self.token)


class SlotAsk(NamedTuple):
    """A slot to take in the admission itself, if one is free for a newcomer (api.md 26).

    `tenant` is the slot scope's tenant (None: the service's own). With `fail_fast`, no free
    slot refuses the admission (`CONCURRENCY_LIMITED`, nothing taken); otherwise the attempt is
    admitted without a slot and waits for one with `acquire_slot`. An admission that must wait
    for a token takes no slot (it would hold it while sleeping).
    """

    tenant: str | None
    max_in_flight: int
    lease: float
    fail_fast: bool


class Adapt(NamedTuple):
    """An attempt's AIMD signal, given with its slot back: a throttle (`cut`) or a success."""

    cut: bool
    window: float
    generation: int  # the slot's `Slot.generation`


@runtime_checkable
class SlotStore(Protocol):
    """Concurrency slots of each (service, tenant) scope; `tenant` None is the service's own."""

    async def acquire_slot(
        self, service: str, tenant: str | None, max_in_flight: int, lease: float, max_wait: float
    ) -> Slot:
        """Take a slot, waiting up to `max_wait` seconds in arrival order for one to free."""
        ...

    def release_slot(
        self,
        service: str,
        tenant: str | None,
        token: str,
        max_in_flight: int,
        *,
        adapt: Adapt | None = None,
    ) -> Awaitable[int | None]:
        """Give a slot back, waking the waiters that may now go; unknown tokens are ignored.

        The release is under way when this returns (queued in order with the caller's next
        commands), so nobody has to wait for it; await the result for the new limit. With
        `adapt`, the AIMD step runs first, in the same step, so a cut limit is the one the
        freed slot is handed on under. Resolves to the new limit when it changed, else None.
        """
        ...

    async def renew_slot(self, service: str, tenant: str | None, token: str, lease: float) -> bool:
        """Push the slot's lease end to now + `lease`; False if the slot was lost meanwhile."""
        ...

    async def adapt_slot_limit(
        self,
        service: str,
        tenant: str | None,
        max_in_flight: int,
        *,
        cut: bool,
        window: float,
        generation: int | None = None,
    ) -> int | None:
        """AIMD: cut the limit (x0.7) or raise it by one per `window`; see `adapted`.

        Returns the new limit when it changed, else None.
        """
        ...

    async def slot_usage(
        self, service: str, tenant: str | None, max_in_flight: int
    ) -> tuple[int, int]:
        """(slots in use, current limit) of the scope."""
        ...


def adapted(
    current: int,
    max_in_flight: int,
    cut: bool,
    now: float,
    changed_at: float,
    window: float,
    fresh: bool | None = None,
) -> int | None:
    """The AIMD step shared by every backend: the new limit, or None to leave it.

    A raise needs `window` seconds since the last change. A cut needs a *fresh* throttle: one
    from an attempt admitted under the limit in force (its slot's generation is the current
    one), so the many 429s of one overload cut once, while a throttle right after a raise cuts
    at once. `fresh` None (the signal's generation is not known): at most one cut per window.
    """
    current = min(current, max_in_flight)
    recent = now - changed_at < window
    if cut:
        if fresh is False or (fresh is None and recent):
            return None
        new = max(1, math.floor(current * CUT))
    else:
        if recent:
            return None
        new = min(max_in_flight, current + 1)
    return new if new != current else None


@dataclass(slots=True)
class _Pool:
    held: dict[str, float] = field(default_factory=dict)  # token -> lease end
    queue: dict[str, asyncio.Event] = field(default_factory=dict)  # waiters, arrival order
    limit: int | None = None  # adaptive: the current limit (None: max_in_flight)
    changed_at: float = -math.inf
    generation: int = 0  # adaptive: changes of the limit so far


class MemorySlots:
    """Slots of one process; each method's reads and writes run without an await between."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._pools: dict[tuple[str, str | None], _Pool] = {}
        self._ids = itertools.count(1)

    def _pool(self, service: str, tenant: str | None) -> _Pool:
        pool = self._pools.get((service, tenant))
        if pool is None:
            pool = self._pools[(service, tenant)] = _Pool()
        return pool

    def _reclaim(self, pool: _Pool, now: float) -> None:
        for token in [t for t, end in pool.held.items() if end <= now]:
            del pool.held[token]

    def _limit(self, pool: _Pool, max_in_flight: int) -> int:
        return max_in_flight if pool.limit is None else min(pool.limit, max_in_flight)

    def _wake(self, pool: _Pool, max_in_flight: int) -> None:
        free = self._limit(pool, max_in_flight) - len(pool.held)
        for ev in itertools.islice(pool.queue.values(), max(0, free)):
            ev.set()

    def _try(self, pool: _Pool, ticket: str, max_in_flight: int, lease: float) -> bool:
        now = self._clock.monotonic()
        self._reclaim(pool, now)
        free = self._limit(pool, max_in_flight) - len(pool.held)
        ahead = 0
        for waiting in pool.queue:
            if waiting == ticket:
                break
            ahead += 1
        if free > ahead:
            pool.held[ticket] = now + lease
            pool.queue.pop(ticket, None)
            return True
        return False

    def free_for_newcomer(self, service: str, tenant: str | None, max_in_flight: int) -> bool:
        """Whether a caller arriving now may take a slot at once (free ones beyond the queue)."""
        pool = self._pools.get((service, tenant))
        if pool is None:
            return True
        self._reclaim(pool, self._clock.monotonic())
        return self._limit(pool, max_in_flight) - len(pool.held) > len(pool.queue)

    def take(self, service: str, tenant: str | None, lease: float) -> Slot:
        """Take a slot `free_for_newcomer` said is free (no await between the two)."""
        pool = self._pool(service, tenant)
        token = f"m{next(self._ids)}"
        pool.held[token] = self._clock.monotonic() + lease
        return Slot(token, 0.0, pool.generation)

    def retry_after(self, service: str, tenant: str | None) -> float:
        pool = self._pools.get((service, tenant))
        return 0.0 if pool is None else self._retry_after(pool)

    def _retry_after(self, pool: _Pool) -> float:
        if not pool.held:
            return 0.0
        return max(0.0, min(pool.held.values()) - self._clock.monotonic())

    async def acquire_slot(
        self, service: str, tenant: str | None, max_in_flight: int, lease: float, max_wait: float
    ) -> Slot:
        pool = self._pool(service, tenant)
        ticket = f"m{next(self._ids)}"
        if self._try(pool, ticket, max_in_flight, lease):
            return Slot(ticket, 0.0, pool.generation)
        if max_wait <= 0:
            return Slot("", self._retry_after(pool))
        deadline = self._clock.monotonic() + max_wait
        ev = pool.queue[ticket] = asyncio.Event()
        try:
            while True:
                remaining = deadline - self._clock.monotonic()
                if remaining <= 0:
                    return Slot("", self._retry_after(pool))
                ev.clear()
                until_lease = self._retry_after(pool) if pool.held else remaining
                await wait_or_timeout(
                    ev.wait(), self._clock, min(remaining, max(until_lease, 1e-3))
                )
                if self._try(pool, ticket, max_in_flight, lease):
                    return Slot(ticket, 0.0, pool.generation)
        finally:
            if pool.queue.pop(ticket, None) is not None:
                self._wake(pool, max_in_flight)  # our place in the queue goes to the next

    def release_slot(
        self,
        service: str,
        tenant: str | None,
        token: str,
        max_in_flight: int,
        *,
        adapt: Adapt | None = None,
    ) -> int | None:
        """Give a slot back at once (see `SlotStore.release_slot`); the new limit or None."""
        pool = self._pools.get((service, tenant))
        if pool is None or pool.held.pop(token, None) is None:
            return None
        new = None
        if adapt is not None:
            new = self._adapt(pool, max_in_flight, adapt.cut, adapt.window, adapt.generation)
        self._reclaim(pool, self._clock.monotonic())
        self._wake(pool, max_in_flight)  # exactly the waiters that may now go
        if not pool.held and not pool.queue and pool.limit is None:
            del self._pools[(service, tenant)]  # bounded memory: idle scopes are dropped
        return new

    async def renew_slot(self, service: str, tenant: str | None, token: str, lease: float) -> bool:
        pool = self._pools.get((service, tenant))
        now = self._clock.monotonic()
        if pool is None or pool.held.get(token, -math.inf) <= now:
            return False
        pool.held[token] = now + lease
        return True

    async def adapt_slot_limit(
        self,
        service: str,
        tenant: str | None,
        max_in_flight: int,
        *,
        cut: bool,
        window: float,
        generation: int | None = None,
    ) -> int | None:
        pool = self._pool(service, tenant)
        new = self._adapt(pool, max_in_flight, cut, window, generation)
        self._wake(pool, max_in_flight)
        return new

    def _adapt(
        self, pool: _Pool, max_in_flight: int, cut: bool, window: float, generation: int | None
    ) -> int | None:
        now = self._clock.monotonic()
        current = self._limit(pool, max_in_flight)
        fresh = None if generation is None else generation == pool.generation
        new = adapted(current, max_in_flight, cut, now, pool.changed_at, window, fresh)
        if new is not None:
            pool.limit, pool.changed_at = new, now
            pool.generation += 1
        return new

    async def slot_usage(
        self, service: str, tenant: str | None, max_in_flight: int
    ) -> tuple[int, int]:
        pool = self._pools.get((service, tenant))
        if pool is None:
            return 0, max_in_flight
        self._reclaim(pool, self._clock.monotonic())
        return len(pool.held), self._limit(pool, max_in_flight)
