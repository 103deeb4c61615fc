"""The in-process backend: the same semantics as Redis, for one process. The default.

Bounded memory (api.md rule 24): what Redis lets expire, this backend frees. Every entry that can
become garbage (an idempotency record, a bucket, a breaker, a KV value with a TTL) has one entry
in an expiry heap; each call first pops the entries that are due and frees what is expired (a
record past its TTL or lease, a value past its TTL), full (a bucket full for a second: the same
as none) or idle (a clean closed breaker; any breaker an hour after its last use, like its Redis
key). So memory returns to its baseline once keys expire, at O(log n) per write.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from dataclasses import dataclass, field
from typing import Any

from .._clock import SYSTEM_CLOCK, Clock, wait_or_timeout
from .._config import CircuitBreakerConfig, RateLimitConfig, RetryPolicy
from ._base import (
    ADMITTED,
    BUDGET_EXHAUSTED,
    CIRCUIT_OPEN,
    CONCURRENCY_LIMITED,
    RATE_LIMITED,
    Admission,
    Claim,
    MemoryPermit,
)
from ._slots import Adapt, MemorySlots, Slot, SlotAsk

__all__ = ["MemoryBackend"]

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
_IDEM, _BUCKET, _BREAKER, _KV = 0, 1, 2, 3  # the tables an expiry heap entry points into
_IDLE_BUCKET = 1.0  # a bucket is freed once it has been full this long (less churn when busy)
_IDLE_BREAKER = 3600.0  # like the Redis breaker key: kept an hour (plus its timers) after use


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
    keep_until: float = 0.0  # freed after this even if not clean (the Redis key's TTL)

    def clean(self, now: float) -> bool:
        """Nothing a fresh breaker would not also say: freeing it changes no decision."""
        return (
            self.state == CLOSED
            and not self.failures
            and not self.probes
            and self.paused_until <= now
            and self.budget < 0
        )


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float
    cap: float
    rate: float

    def full_at(self) -> float:
        """When the bucket is full again (then freeing it equals a fresh, full one)."""
        return self.updated + (self.cap - self.tokens) / self.rate


@dataclass(slots=True)
class _Idem:
    fingerprint: str
    token: str
    expires: float  # lease end while in progress, TTL end once completed
    result: bytes | None = None
    unknown_ttl: float | None = None  # at most once: a lease that ends turns `unknown`
    unknown: bool = False  # the request may have reached the vendor; nothing may resend it


class MemoryBackend:
    """State in this process's memory: breakers, buckets, idempotency keys and a KV store.

    Every method runs without awaiting in between its reads and writes, which makes each
    transition atomic with respect to other tasks, mirroring one Lua script on Redis.
    """

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock = clock or SYSTEM_CLOCK
        self._breakers: dict[str, _Breaker] = {}
        self._buckets: dict[tuple[Any, ...], _Bucket] = {}
        self._idem: dict[tuple[str, str | None, str], _Idem] = {}
        self._kv: dict[str, tuple[bytes, float | None]] = {}
        self._changed: dict[tuple[str, str | None, str], asyncio.Event] = {}
        self._ids = itertools.count(1)
        # (due, seq, table, key, entry): one per freeable entry; stale ones are skipped
        self._expiry: list[tuple[float, int, int, Any, Any]] = []
        self._seq = itertools.count()
        self._freed = 0

    def _watch(self, due: float, table: int, key: Any, entry: Any) -> None:
        heapq.heappush(self._expiry, (due, next(self._seq), table, key, entry))

    def _sweep(self, now: float) -> None:
        """Free every entry that is due: expired, full or idle (see the module docstring)."""
        heap = self._expiry
        if not heap or heap[0][0] > now:
            return
        tables: tuple[dict[Any, Any], ...] = (self._idem, self._buckets, self._breakers, self._kv)
        while heap and heap[0][0] <= now:
            _, _, kind, key, entry = heapq.heappop(heap)
            table = tables[kind]
            if key not in table or table[key] is not entry:
                continue  # replaced or freed meanwhile; the new entry has its own watch
            due = self._due(kind, entry, now)
            if due is None:
                del table[key]
                self._freed += 1
                if kind == _IDEM:
                    self._notify(key)
            else:
                self._watch(due, kind, key, entry)
        if self._freed > 4096 and self._freed > 2 * sum(map(len, tables)):
            # A dict keeps its peak-sized table after deletes: copy them to give it back.
            self._freed = 0
            self._idem, self._buckets = dict(self._idem), dict(self._buckets)
            self._breakers, self._kv = dict(self._breakers), dict(self._kv)
            self._changed = dict(self._changed)

    @staticmethod
    def _due(kind: int, entry: Any, now: float) -> float | None:
        """None if `entry` can be freed now, else when to look at it again."""
        if kind == _IDEM:
            ended = entry.expires <= now and entry.result is None and not entry.unknown
            if ended and entry.unknown_ttl is not None:  # at-most-once lease ended: unknown
                entry.unknown, entry.expires = True, entry.expires + entry.unknown_ttl
            return None if entry.expires <= now else entry.expires
        if kind == _BUCKET:
            idle_at: float = entry.full_at() + _IDLE_BUCKET
            return None if idle_at <= now else idle_at
        if kind == _BREAKER:
            if entry.clean(now) or (entry.keep_until <= now and entry.paused_until <= now):
                return None
            return float(min(entry.keep_until, max(entry.paused_until, now) + 1.0))
        expires: float | None = entry[1]  # a KV value with a TTL
        return None if expires is None or expires <= now else expires

    def entries(self) -> int:
        """How many entries this backend holds (records, buckets, breakers, values, waiters).

        For tests and metrics: it returns to its baseline once keys expire (rule 24).
        """
        return (
            len(self._idem)
            + len(self._buckets)
            + len(self._breakers)
            + len(self._kv)
            + len(self._changed)
        )

    def __repr__(self) -> str:
        return f"MemoryBackend(services={len(self._breakers)})"

    # -- admission --------------------------------------------------------------------------

    def _breaker(self, service: str, now: float, keep: float = 0.0) -> _Breaker:
        b = self._breakers.get(service)
        if b is None:
            b = self._breakers[service] = _Breaker()
            self._watch(now + 1.0, _BREAKER, service, b)
        b.keep_until = now + _IDLE_BREAKER + keep  # never freed while paused: see _due
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
        slot: SlotAsk | None = None,
    ) -> Admission:
        now = self._clock.monotonic()
        self._sweep(now)
        b = self._breaker(service, now, breaker.recovery_timeout)
        was_open = b.state == OPEN
        would = self._decide(
            b,
            service,
            tenant,
            breaker,
            limit,
            budget,
            is_retry,
            now,
            probe_lease,
            None if shadow else slot,  # shadow mode: the slot is asked for before sending
        )
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
        slot: SlotAsk | None = None,
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
        # 1b. a concurrency slot: refused before anything is spent, taken once admitted
        free = False
        if slot is not None:
            free = self._slot_pools.free_for_newcomer(service, slot.tenant, slot.max_in_flight)
            if not free and slot.fail_fast:
                return Admission(
                    CONCURRENCY_LIMITED, self._slot_pools.retry_after(service, slot.tenant)
                )
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
            # One bucket per distinct limit (or name) of the service: rule 21. The numbers as a
            # tuple (5 and 5.0 hash alike), not `bucket_id`'s string: this is the hot path.
            scoped = tenant if limit.scope == "tenant" else None
            key = (
                (service, scoped, limit.name)
                if limit.name is not None
                else (service, scoped, limit.rate, limit.period, limit.capacity)
            )
            bucket = self._buckets.get(key)
            cap = limit.capacity
            rate = limit.refill_per_second
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(cap, now, cap, rate)
                self._watch(now + 1.0 / rate + _IDLE_BUCKET, _BUCKET, key, bucket)
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
            permit = MemoryPermit(next(self._ids))
            b.probes[permit] = now + probe_lease
        clean = b.state == CLOSED and b.failures == 0
        if free and wait == 0 and slot is not None:
            taken = self._slot_pools.take(service, slot.tenant, slot.lease)
            return Admission(
                ADMITTED, 0.0, permit, clean, slot=taken.token, slot_generation=taken.generation
            )
        return Admission(ADMITTED, wait, permit, clean)

    async def record(
        self, service: str, breaker: CircuitBreakerConfig, *, success: bool, probe: str = ""
    ) -> str | None:
        now = self._clock.monotonic()
        b = self._breaker(service, now, breaker.recovery_timeout)
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

    async def renew_probe(self, service: str, probe: str, lease: float) -> bool:
        b = self._breakers.get(service)
        if b is None or b.state == CLOSED:
            return True
        if b.state != HALF_OPEN or probe not in b.probes:
            return False  # pruned after its lease (its slot may be another's), or re-opened
        b.probes[probe] = self._clock.monotonic() + lease
        return True

    async def pause(self, service: str, seconds: float) -> None:
        now = self._clock.monotonic()
        b = self._breaker(service, now, seconds)
        b.paused_until = max(b.paused_until, now + seconds)

    def breaker_state(self, service: str) -> str:
        """The breaker's current state (`closed`, `open`, `half_open`), for tests and status."""
        b = self._breakers.get(service)
        return CLOSED if b is None else b.state

    # -- idempotency ------------------------------------------------------------------------

    def _live(self, k: tuple[str, str | None, str], now: float) -> _Idem | None:
        rec = self._idem.get(k)
        if rec is not None and rec.expires <= now:
            if rec.result is None and rec.unknown_ttl is not None and not rec.unknown:
                # The owner's lease ended without an answer: it may have sent the request.
                rec.unknown, rec.expires = True, rec.expires + rec.unknown_ttl
                if rec.expires > now:
                    self._notify(k)
                    return rec
            del self._idem[k]
            self._notify(k)
            return None
        return rec

    def _notify(self, k: tuple[str, str | None, str]) -> None:
        ev = self._changed.pop(k, None)
        if ev is not None:
            ev.set()

    async def claim(
        self,
        service: str,
        tenant: str | None,
        key: str,
        fingerprint: str,
        lease: float,
        *,
        unknown_ttl: float | None = None,
    ) -> Claim:
        k = (service, tenant, key)
        now = self._clock.monotonic()
        self._sweep(now)
        rec = self._live(k, now)
        if rec is None:
            token = f"t{next(self._ids)}"
            rec = self._idem[k] = _Idem(fingerprint, token, now + lease, None, unknown_ttl)
            self._watch(rec.expires, _IDEM, k, rec)
            return Claim("acquired", token)
        if rec.fingerprint != fingerprint:
            return Claim("conflict")
        if rec.result is not None:
            return Claim("completed", "", rec.result)
        if rec.unknown:
            return Claim("unknown")
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
        if rec is None or rec.token != token or rec.result is not None or rec.unknown:
            return False
        rec.expires = self._clock.monotonic() + lease
        return True

    async def mark_unknown(
        self, service: str, tenant: str | None, key: str, token: str, ttl: float
    ) -> bool:
        k = (service, tenant, key)
        rec = self._live(k, self._clock.monotonic())
        if rec is None or rec.token != token or rec.result is not None:
            return False
        rec.unknown, rec.expires = True, self._clock.monotonic() + ttl
        self._notify(k)
        return True

    async def forget(self, service: str, tenant: str | None, key: str) -> bool:
        k = (service, tenant, key)
        rec = self._live(k, self._clock.monotonic())
        if rec is None or not rec.unknown or rec.result is not None:
            return False
        del self._idem[k]
        self._notify(k)
        return True

    async def wait(
        self,
        service: str,
        tenant: str | None,
        key: str,
        fingerprint: str,
        lease: float,
        timeout: float,
        *,
        unknown_ttl: float | None = None,
    ) -> Claim:
        k = (service, tenant, key)
        deadline = self._clock.monotonic() + timeout
        while True:
            claim = await self.claim(
                service, tenant, key, fingerprint, lease, unknown_ttl=unknown_ttl
            )
            remaining = deadline - self._clock.monotonic()
            if claim.state != "in_progress" or remaining <= 0:
                return claim
            rec = self._idem[k]
            # Wake on completion/release, or when the holder's lease would expire.
            ev = self._changed.setdefault(k, asyncio.Event())
            await wait_or_timeout(
                ev.wait(), self._clock, min(remaining, rec.expires - self._clock.monotonic())
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
        now = self._clock.monotonic()
        self._sweep(now)
        item = self._kv[key] = (value, None if ttl is None else now + ttl)
        if item[1] is not None:
            self._watch(item[1], _KV, key, item)

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
        self._sweep(now)
        item = self._kv[key] = (str(new).encode(), expires)
        if expires is not None:
            self._watch(expires, _KV, key, item)
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

    async def extend_lock(self, key: str, token: str, lease: float) -> bool:
        if await self.get(key) != token.encode():
            return False
        await self.set(key, token.encode(), lease)
        return True

    async def compare_and_set(
        self, key: str, expected: bytes | None, value: bytes, ttl: float | None = None
    ) -> bool:
        if await self.get(key) != expected:
            return False
        await self.set(key, value, ttl)
        return True

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

    def release_slot(
        self,
        service: str,
        tenant: str | None,
        token: str,
        max_in_flight: int,
        *,
        adapt: Adapt | None = None,
    ) -> asyncio.Future[int | None]:
        """Give a concurrency slot back now (after an AIMD step), waking the next waiter."""
        done: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        done.set_result(
            self._slot_pools.release_slot(service, tenant, token, max_in_flight, adapt=adapt)
        )
        return done

    async def renew_slot(self, service: str, tenant: str | None, token: str, lease: float) -> bool:
        """Extend a slot's lease while a long attempt runs."""
        return await self._slot_pools.renew_slot(service, tenant, token, lease)

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
        """One AIMD step of an adaptive limit; the new limit if it changed."""
        return await self._slot_pools.adapt_slot_limit(
            service, tenant, max_in_flight, cut=cut, window=window, generation=generation
        )

    async def slot_usage(
        self, service: str, tenant: str | None, max_in_flight: int
    ) -> tuple[int, int]:
        """(slots in use, current limit)."""
        return await self._slot_pools.slot_usage(service, tenant, max_in_flight)

    async def aclose(self) -> None:
        """Nothing to release; present for symmetry with `RedisBackend`."""
