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

from .._config import CircuitBreakerConfig, RateLimitConfig, RetryPolicy
from ._base import ADMITTED, Admission, AdmissionReason, MemoryPermit
from ._memory_base import (
    BREAKER,
    BUCKET,
    CLOSED,
    HALF_OPEN,
    IDLE_BREAKER,
    IDLE_BUCKET,
    OPEN,
    Breaker,
    Bucket,
)
from ._memory_stores import MemoryStores
from ._slots import Adapt, MemorySlots, Slot, SlotAsk

__all__ = ["MemoryBackend"]

_LIMITS_MAX = 4096
_new = tuple.__new__


class MemoryBackend(MemoryStores):
    """State in this process's memory: breakers, buckets, idempotency keys and a KV store.

    Every method runs without awaiting in between its reads and writes, which makes each
    transition atomic with respect to other tasks, mirroring one Lua script on Redis.
    """

    def __repr__(self) -> str:
        return f"MemoryBackend(services={len(self._breakers)})"

    # -- admission --------------------------------------------------------------------------

    def _breaker(self, service: str, now: float, keep: float = 0.0) -> Breaker:
        b = self._breakers.get(service)
        if b is None:
            b = self._breakers[service] = Breaker()
            self._watch(now + 1.0, BREAKER, service, b)
        b.keep_until = now + IDLE_BREAKER + keep  # never freed while paused: see _due
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
        heap = self._expiry
        if heap and heap[0][0] <= now:  # checked here, not in a frame of its own: the hot path
            self._sweep(now)
        b = self._breakers.get(service)
        if b is None:
            b = self._breaker(service, now)
        b.keep_until = now + IDLE_BREAKER + breaker.recovery_timeout  # as _breaker() sets it
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
        if would.reason == AdmissionReason.ADMITTED or not shadow:
            return would
        # Shadow mode: report what would have happened, block nothing, take nothing.
        return Admission(AdmissionReason.ADMITTED, 0.0, "", False, would.reason, would.half_opened)

    def _decide(
        self,
        b: Breaker,
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
                return Admission(AdmissionReason.CIRCUIT_OPEN, reopen_at - now)
            b.state, b.successes, b.probes = HALF_OPEN, 0, {}
        if b.state == HALF_OPEN:
            for permit, expiry in list(b.probes.items()):
                if expiry <= now:
                    del b.probes[permit]
            if len(b.probes) >= cfg.half_open_max_calls:
                return Admission(
                    AdmissionReason.CIRCUIT_OPEN, max(0.001, min(b.probes.values()) - now)
                )
            probe = True
        # 1b. a concurrency slot: refused before anything is spent, taken once admitted
        free = False
        if slot is not None:
            free = self._slot_pools.free_for_newcomer(service, slot.tenant, slot.max_in_flight)
            if not free and slot.fail_fast:
                return Admission(
                    AdmissionReason.CONCURRENCY_LIMITED,
                    self._slot_pools.retry_after(service, slot.tenant),
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
                    return Admission(
                        AdmissionReason.BUDGET_EXHAUSTED, 1.0 / floor if floor else 1.0
                    )
                b.budget -= 1.0
            else:
                b.budget = min(cap, b.budget + budget.budget_ratio)
        # 3. shared pause and token bucket
        wait = max(0.0, b.paused_until - now)
        if limit is not None:
            # One bucket per distinct limit (or name) of the service: rule 21. The numbers as a
            # tuple (5 and 5.0 hash alike), not `bucket_id`'s string; worked out once per limit
            # (the hot path), bounded (limits may be made per call).
            scoped = tenant if limit.scope == "tenant" else None
            spec = self._limits.get(limit)
            if spec is None:
                if len(self._limits) >= _LIMITS_MAX:
                    self._limits.clear()
                cap = limit.capacity
                spec = self._limits[limit] = (
                    limit.name if limit.name is not None else (limit.rate, limit.period, cap),
                    cap,
                    limit.refill_per_second,
                )
            which, cap, rate = spec
            key = (service, scoped, which)
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = Bucket(cap, now, cap, rate)
                self._watch(now + 1.0 / rate + IDLE_BUCKET, BUCKET, key, bucket)
            tokens = min(cap, bucket.tokens + (now - bucket.updated) * rate)
            start = now + wait
            tokens_at_start = min(cap, tokens + wait * rate)
            need = 0.0 if tokens_at_start >= 1.0 else (1.0 - tokens_at_start) / rate
            total = wait + need
            if total > limit.max_wait:
                return Admission(AdmissionReason.RATE_LIMITED, total)
            bucket.tokens, bucket.updated = tokens_at_start - 1.0, start
            wait = total
        elif wait > 0:
            return Admission(AdmissionReason.RATE_LIMITED, wait)
        permit = ""
        if probe:
            permit = MemoryPermit(next(self._ids))
            b.probes[permit] = now + probe_lease
        clean = b.state == CLOSED and b.failures == 0
        if free and wait == 0 and slot is not None:
            taken = self._slot_pools.take(service, slot.tenant, slot.lease)
            return Admission(
                AdmissionReason.ADMITTED,
                0.0,
                permit,
                clean,
                slot=taken.token,
                slot_generation=taken.generation,
            )
        # Every field given: no NamedTuple `__new__` frame (the hot path).
        return _new(Admission, (ADMITTED, wait, permit, clean, ADMITTED, False, "", 0))

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
