"""The in-process backend: the same semantics as Redis, for one process. The default."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

from .._clock import SYSTEM_CLOCK, Clock
from .._config import CircuitBreakerConfig, RateLimitConfig, RetryPolicy
from ._base import (
    ADMITTED,
    BUDGET_EXHAUSTED,
    CIRCUIT_OPEN,
    RATE_LIMITED,
    Admission,
    Claim,
)
from ._slots import MemorySlots, Slot

__all__ = ["MemoryBackend"]

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(slots=True)
class _Breaker:
    state: str = CLOSED
    failures: int = 0
    successes: int = 0
    opened_at: float = 0.0
    paused_until: float = 0.0
    probes: dict[str, float] = field(default_factory=dict)  # permit -> lease expiry
    budget: float = -1.0  # retry budget balance; -1 = not started
    budget_at: float = 0.0


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


@dataclass(slots=True)
class _Idem:
    fingerprint: str
    token: str
    expires: float  # lease end while in progress, TTL end once completed
    result: bytes | None = None


class MemoryBackend:
    """State in this process's memory: breakers, buckets, idempotency keys and a KV store.

    Every method runs without awaiting in between its reads and writes, which makes each
    transition atomic with respect to other tasks, mirroring one Lua script on Redis.
    """

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock = clock or SYSTEM_CLOCK
        self._breakers: dict[str, _Breaker] = {}
        self._buckets: dict[tuple[str, str | None], _Bucket] = {}
        self._idem: dict[tuple[str, str | None, str], _Idem] = {}
        self._kv: dict[str, tuple[bytes, float | None]] = {}
        self._changed: dict[tuple[str, str | None, str], asyncio.Event] = {}
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"MemoryBackend(services={len(self._breakers)})"

    # -- admission --------------------------------------------------------------------------

    def _breaker(self, service: str) -> _Breaker:
        b = self._breakers.get(service)
        if b is None:
            b = self._breakers[service] = _Breaker()
        return b

    async def admit(
        self,
        service: str,
        tenant: str | None,
        breaker: CircuitBreakerConfig,
        limit: RateLimitConfig | None,
        *,
        probe_lease: float,
        budget: RetryPolicy | None = None,
        is_retry: bool = False,
        shadow: bool = False,
    ) -> Admission:
        now = self._clock.monotonic()
        b = self._breaker(service)
        was_open = b.state == OPEN
        would = self._decide(b, service, tenant, breaker, limit, budget, is_retry, now, probe_lease)
        if was_open and b.state == HALF_OPEN:
            would = would._replace(half_opened=True)
        if would.reason == ADMITTED or not shadow:
            return would
        # Shadow mode: report what would have happened, block nothing, take nothing.
        return Admission(ADMITTED, 0.0, "", False, would.reason, would.half_opened)

    def _decide(
        self,
        b: _Breaker,
        service: str,
        tenant: str | None,
        cfg: CircuitBreakerConfig,
        limit: RateLimitConfig | None,
        budget: RetryPolicy | None,
        is_retry: bool,
        now: float,
        probe_lease: float,
    ) -> Admission:
        # 1. circuit breaker
        probe = False
        if b.state == OPEN:
            reopen_at = b.opened_at + cfg.recovery_timeout
            if now < reopen_at:
                return Admission(CIRCUIT_OPEN, reopen_at - now)
            b.state, b.successes, b.probes = HALF_OPEN, 0, {}
        if b.state == HALF_OPEN:
            for permit, expiry in list(b.probes.items()):
                if expiry <= now:
                    del b.probes[permit]
            if len(b.probes) >= cfg.half_open_max_calls:
                return Admission(CIRCUIT_OPEN, max(0.001, min(b.probes.values()) - now))
            probe = True
        # 2. retry budget
        if budget is not None and budget.budget_ratio is not None:
            floor = budget.budget_min_per_second
            cap = max(1.0, floor * 10.0)
            if b.budget < 0:
                b.budget, b.budget_at = floor, now
            b.budget = min(cap, b.budget + (now - b.budget_at) * floor)
            b.budget_at = now
            if is_retry:
                if b.budget < 1.0:
                    return Admission(BUDGET_EXHAUSTED, 1.0 / floor if floor else 1.0)
                b.budget -= 1.0
            else:
                b.budget = min(cap, b.budget + budget.budget_ratio)
        # 3. shared pause and token bucket
        wait = max(0.0, b.paused_until - now)
        if limit is not None:
            key = (service, tenant if limit.scope == "tenant" else None)
            bucket = self._buckets.get(key)
            cap = limit.capacity
            rate = limit.refill_per_second
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(cap, now)
            tokens = min(cap, bucket.tokens + (now - bucket.updated) * rate)
            start = now + wait
            tokens_at_start = min(cap, tokens + wait * rate)
            need = 0.0 if tokens_at_start >= 1.0 else (1.0 - tokens_at_start) / rate
            total = wait + need
            if total > limit.max_wait:
                return Admission(RATE_LIMITED, total)
            bucket.tokens, bucket.updated = tokens_at_start - 1.0, start
            wait = total
        elif wait > 0:
            return Admission(RATE_LIMITED, wait)
        permit = ""
        if probe:
            permit = f"p{next(self._ids)}"
            b.probes[permit] = now + probe_lease
        return Admission(ADMITTED, wait, permit, b.state == CLOSED and b.failures == 0)

    async def record(
        self, service: str, breaker: CircuitBreakerConfig, *, success: bool, probe: str = ""
    ) -> str | None:
        b = self._breaker(service)
        now = self._clock.monotonic()
        if b.state == CLOSED:
            if success:
                b.failures = 0
                return None
            b.failures += 1
            if b.failures >= breaker.failure_threshold:
                b.state, b.opened_at = OPEN, now
                return OPEN
            return None
        if b.state == HALF_OPEN and probe and b.probes.pop(probe, None) is not None:
            if not success:
                b.state, b.opened_at, b.probes = OPEN, now, {}
                return OPEN
            b.successes += 1
            if b.successes >= breaker.success_threshold:
                b.state, b.failures, b.successes, b.probes = CLOSED, 0, 0, {}
                return CLOSED
        return None

    async def release_probe(self, service: str, probe: str) -> None:
        b = self._breakers.get(service)
        if b is not None and probe:
            b.probes.pop(probe, None)

    async def pause(self, service: str, seconds: float) -> None:
        b = self._breaker(service)
        b.paused_until = max(b.paused_until, self._clock.monotonic() + seconds)

    def breaker_state(self, service: str) -> str:
        """The breaker's current state (`closed`, `open`, `half_open`), for tests and status."""
        b = self._breakers.get(service)
        return CLOSED if b is None else b.state

    # -- idempotency ------------------------------------------------------------------------

    def _live(self, k: tuple[str, str | None, str], now: float) -> _Idem | None:
        rec = self._idem.get(k)
        if rec is not None and rec.expires <= now:
            del self._idem[k]
            self._notify(k)
            return None
        return rec

    def _notify(self, k: tuple[str, str | None, str]) -> None:
        ev = self._changed.pop(k, None)
        if ev is not None:
            ev.set()

    async def claim(
        self, service: str, tenant: str | None, key: str, fingerprint: str, lease: float
    ) -> Claim:
        k = (service, tenant, key)
        now = self._clock.monotonic()
        rec = self._live(k, now)
        if rec is None:
            token = f"t{next(self._ids)}"
            self._idem[k] = _Idem(fingerprint, token, now + lease)
            return Claim("acquired", token)
        if rec.fingerprint != fingerprint:
            return Claim("conflict")
        if rec.result is not None:
            return Claim("completed", "", rec.result)
        return Claim("in_progress")

    async def complete(
        self, service: str, tenant: str | None, key: str, token: str, result: bytes, ttl: float
    ) -> bool:
        k = (service, tenant, key)
        rec = self._live(k, self._clock.monotonic())
        if rec is None or rec.token != token or rec.result is not None:
            return False
        rec.result, rec.expires = result, self._clock.monotonic() + ttl
        self._notify(k)
        return True

    async def release(self, service: str, tenant: str | None, key: str, token: str) -> None:
        k = (service, tenant, key)
        rec = self._idem.get(k)
        if rec is not None and rec.token == token and rec.result is None:
            del self._idem[k]
            self._notify(k)

    async def extend(
        self, service: str, tenant: str | None, key: str, token: str, lease: float
    ) -> bool:
        rec = self._live((service, tenant, key), self._clock.monotonic())
        if rec is None or rec.token != token or rec.result is not None:
            return False
        rec.expires = self._clock.monotonic() + lease
        return True

    async def wait(
        self,
        service: str,
        tenant: str | None,
        key: str,
        fingerprint: str,
        lease: float,
        timeout: float,
    ) -> Claim:
        k = (service, tenant, key)
        deadline = self._clock.monotonic() + timeout
        while True:
            claim = await self.claim(service, tenant, key, fingerprint, lease)
            remaining = deadline - self._clock.monotonic()
            if claim.state != "in_progress" or remaining <= 0:
                return claim
            rec = self._idem[k]
            # Wake on completion/release, or when the holder's lease would expire.
            ev = self._changed.setdefault(k, asyncio.Event())
            await _wait_event(
                ev, self._clock, min(remaining, rec.expires - self._clock.monotonic())
            )

    # -- key-value --------------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        item = self._kv.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires <= self._clock.monotonic():
            del self._kv[key]
            return None
        return value

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self._kv[key] = (value, None if ttl is None else self._clock.monotonic() + ttl)

    async def add(
        self,
        key: str,
        amount: int,
        *,
        limit: int | None = None,
        ttl: float | None = None,
        strict: bool = False,
    ) -> tuple[bool, int]:
        """Add `amount` to an integer counter unless the total would pass `limit`.

        `strict` changes nothing here: memory is always reachable.
        """
        item = self._kv.get(key)
        now = self._clock.monotonic()
        total, expires = 0, None
        if item is not None and (item[1] is None or item[1] > now):
            total, expires = int(item[0]), item[1]
        new = max(0, total + amount)
        if limit is not None and amount > 0 and new > limit:
            return False, total
        if expires is None and ttl is not None:
            expires = now + ttl
        self._kv[key] = (str(new).encode(), expires)
        return True, new

    async def delete(self, key: str) -> None:
        self._kv.pop(key, None)

    async def acquire_lock(self, key: str, token: str, lease: float) -> bool:
        if await self.get(key) is not None:
            return False
        await self.set(key, token.encode(), lease)
        return True

    async def release_lock(self, key: str, token: str) -> None:
        if await self.get(key) == token.encode():
            await self.delete(key)

    # -- concurrency slots (api.md 26; see _slots.py) -----------------------------------------

    @property
    def _slot_pools(self) -> MemorySlots:
        slots: MemorySlots | None = self.__dict__.get("_slots_store")
        if slots is None:
            slots = self.__dict__["_slots_store"] = MemorySlots(self._clock)
        return slots

    async def acquire_slot(
        self, service: str, tenant: str | None, max_in_flight: int, lease: float, max_wait: float
    ) -> Slot:
        """Take a concurrency slot, waiting up to `max_wait` in arrival order."""
        return await self._slot_pools.acquire_slot(service, tenant, max_in_flight, lease, max_wait)

    async def release_slot(self, service: str, tenant: str | None, token: str) -> None:
        """Give a concurrency slot back, waking the next waiter."""
        await self._slot_pools.release_slot(service, tenant, token)

    async def renew_slot(self, service: str, tenant: str | None, token: str, lease: float) -> bool:
        """Extend a slot's lease while a long attempt runs."""
        return await self._slot_pools.renew_slot(service, tenant, token, lease)

    async def adapt_slot_limit(
        self, service: str, tenant: str | None, max_in_flight: int, *, cut: bool, window: float
    ) -> int | None:
        """One AIMD step of an adaptive limit; the new limit if it changed."""
        return await self._slot_pools.adapt_slot_limit(
            service, tenant, max_in_flight, cut=cut, window=window
        )

    async def slot_usage(
        self, service: str, tenant: str | None, max_in_flight: int
    ) -> tuple[int, int]:
        """(slots in use, current limit)."""
        return await self._slot_pools.slot_usage(service, tenant, max_in_flight)

    async def aclose(self) -> None:
        """Nothing to release; present for symmetry with `RedisBackend`."""


async def _wait_event(ev: asyncio.Event, clock: Clock, timeout: float) -> None:
    """Wait for `ev` or `timeout` seconds of `clock` time, whichever comes first."""
    if timeout <= 0:
        return
    waiter = asyncio.ensure_future(ev.wait())
    sleeper = asyncio.ensure_future(clock.sleep(timeout))
    try:
        await asyncio.wait((waiter, sleeper), return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        sleeper.cancel()
