"""Admission on Redis: breaker, probe permits, retry budget, pause, token bucket (admit.lua).

The hot path is `admit`: its EVALSHA is cached per settings in wire form, so a call costs one
dict lookup and one queued write. A `record` that follows an attempt whose concurrency slot is
still on its way back takes that release along in the same script (record.lua), so the two
cost one command.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from operator import methodcaller
from typing import Any

from ..._config import CircuitBreakerConfig, RateLimitConfig, RetryPolicy
from .._base import Admission, MemoryPermit
from .._slots import SlotAsk
from ._batched import Call, script_call
from ._concurrency import ConcurrencyMixin
from ._core import num
from ._health import RedisUnreachable
from ._keys import key
from ._replies import admission, record_reply
from ._wire import pack

__all__ = ["AdmissionMixin"]

_CACHE_MAX = 10_000  # cached key names and admission commands (services x tenants x settings)


class AdmissionMixin(ConcurrencyMixin):
    """`AdmissionStore` on Redis (with the slots it may take in the same script)."""

    def _admission_keys(
        self, service: str, tenant: str | None, limit: str = ""
    ) -> tuple[bytes, bytes, bytes]:
        """Breaker, probes and the bucket of limit `limit` (a `bucket_id`; "" for none)."""
        ks = self._keys.get((service, tenant, limit))
        if ks is None:
            if len(self._keys) >= _CACHE_MAX:  # bounded (rule 24): tenants come and go
                self._keys.clear()
            p = self.prefix
            parts = (limit,) if limit else ()
            bucket = (
                key(p, "bucket", service, *parts)
                if tenant is None
                else key(p, "tbucket", service, *parts, tenant)
            )
            ks = self._keys[(service, tenant, limit)] = (
                key(p, "cb", service).encode(),
                key(p, "probes", service).encode(),
                bucket.encode(),
            )
        return ks

    def _admission_command(
        self,
        service: str,
        tenant: str | None,
        breaker: CircuitBreakerConfig,
        limit: RateLimitConfig | None,
        probe_lease: float,
        budget: RetryPolicy | None,
        is_retry: bool,
        shadow: bool,
        slot: SlotAsk | None = None,
    ) -> tuple[Call, Callable[[Any], None]]:
        """The admission EVALSHA for these settings, in wire form, and what gives back its
        reply if nobody takes it (both cached: the hot path). The tenant counts only for a
        per-tenant limit: the other calls of a service share one command."""
        scoped = tenant if limit is not None and limit.scope == "tenant" else None
        ratio = None if budget is None else budget.budget_ratio
        floor = 0.0 if budget is None else budget.budget_min_per_second
        cache_key = (
            service,
            scoped,
            breaker,
            limit,
            probe_lease,
            ratio,
            floor,
            is_retry,
            shadow,
            slot,
        )
        cached = self._commands.get(cache_key)
        if cached is None:
            if len(self._commands) >= _CACHE_MAX:
                self._commands.clear()
            script = self._scripts.admit
            keys: tuple[bytes, ...] = self._admission_keys(
                service, scoped, "" if limit is None else limit.bucket_id
            )
            if slot is not None:
                keys += self._slot_keys(service, slot.tenant)[0]
            args = (
                b"",  # the time override, filled in only under a test clock
                num(breaker.recovery_timeout),
                str(breaker.half_open_max_calls).encode(),
                num(probe_lease),
                b"" if ratio is None else num(ratio),
                num(floor),
                b"1" if is_retry else b"0",
                b"" if limit is None else num(limit.capacity),
                b"" if limit is None else num(limit.refill_per_second),
                b"" if limit is None else num(limit.max_wait),
                b"1" if shadow else b"0",
                b"" if slot is None else str(slot.max_in_flight).encode(),
                b"" if slot is None else num(slot.lease),
                b"1" if slot is not None and slot.fail_fast else b"0",
            )
            call = script_call(script, self._batched[id(script)], service, keys, args)
            cached = self._commands[cache_key] = (
                call._replace(packed=pack(call.args)),
                self._give_back(service, slot),
            )
        return cached

    def _give_back(self, service: str, slot: SlotAsk | None) -> Callable[[Any], None]:
        """What hands back an admission reply nobody will use (its caller was cancelled while
        it was in flight): a permit goes back now, not when its lease ends (the breaker could
        not probe meanwhile); so does a slot."""

        def give_back(reply: Any) -> None:
            orphan = admission(reply)
            if orphan.probe:
                _, probes, _ = self._admission_keys(service, None)
                gone = self._pipe.submit(("ZREM", probes, orphan.probe.encode()))
                gone.add_done_callback(lambda f: f.cancelled() or f.exception())
            if slot is not None and orphan.slot:
                self._spawn_slot_release(service, slot.tenant, orphan.slot, slot.max_in_flight)

        return give_back

    def _test_time(self, call: Call, service: str) -> Call:
        """`call` with this moment of the test clock as its time override (ARGV[1])."""
        argv = (self._now(), *call.argv[1:])
        return script_call(call.script, call.batched, service, call.keys, argv)

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
        """Breaker, probe permit, retry budget, pause, token and a free concurrency slot: one
        script, one round trip."""
        call, give_back = self._admission_command(
            service, tenant, breaker, limit, probe_lease, budget, is_retry, shadow, slot
        )
        if self._test_clock:
            call = self._test_time(call, service)
        try:
            r = await self._submit(call, on_orphan=give_back)
        except RedisUnreachable as exc:
            # The same call, put to the local store (a methodcaller, not a lambda: a closure
            # would make every argument of this hot coroutine a cell, 8 objects a call).
            ask = methodcaller(
                "admit",
                service,
                tenant,
                breaker,
                limit,
                probe_lease=probe_lease,
                budget=budget,
                is_retry=is_retry,
                shadow=shadow,
            )
            return await self._fallback.admit(exc, ask)
        return admission(r)

    async def record(
        self, service: str, breaker: CircuitBreakerConfig, *, success: bool, probe: str = ""
    ) -> str | None:
        """Feed an outcome to the breaker; returns "open"/"closed" when the state changed.

        A slot release of the service still waiting in the current batch rides along (one
        command instead of two).
        """
        if isinstance(probe, MemoryPermit):  # a permit the local fallback handed out
            return await self._local.record(service, breaker, success=success, probe=probe)
        cb, probes, _ = self._admission_keys(service, None)
        args = (
            self._now(),
            b"1" if success else b"0",
            probe.encode(),
            str(breaker.failure_threshold).encode(),
            str(breaker.success_threshold).encode(),
            num(breaker.recovery_timeout),
        )
        try:
            parked = self._parked.pop(service, None)
            if parked is not None:
                command = (
                    "EVALSHA",
                    self._scripts.record.sha,
                    5,
                    cb,
                    probes,
                    *parked.keys,
                    *args,
                    *parked.args,
                )
                if self._pipe.replace(parked.reply, command, self._scripts.record):
                    # Shielded: the release's own future must not be cancelled with us.
                    return record_reply(await asyncio.shield(parked.reply))
            r = await self._eval(self._scripts.record, (cb, probes), args, batch=service)
        except RedisUnreachable as exc:
            ask = methodcaller("record", service, breaker, success=success, probe=probe)
            return await self._fallback.record(exc, ask)
        return record_reply(r)

    async def release_probe(self, service: str, probe: str) -> None:
        """Give back a half-open permit whose attempt never reported."""
        if not probe:
            return
        if isinstance(probe, MemoryPermit):
            await self._local.release_probe(service, probe)
            return
        _, probes, _ = self._admission_keys(service, None)
        try:
            await self._submit(("ZREM", probes, probe.encode()))
        except RedisUnreachable:  # the permit's lease frees it
            return

    async def renew_probe(self, service: str, probe: str, lease: float) -> bool:
        """Extend a probe permit's lease just before its request is sent (one script).

        While Redis is unreachable the fallback decides (fail_closed raises; fail_open and
        local let it go: the breaker is not enforced fleet-wide then anyway).
        """
        if not probe:
            return True
        if isinstance(probe, MemoryPermit):  # a permit the local fallback handed out
            return await self._local.renew_probe(service, probe, lease)
        cb, probes, _ = self._admission_keys(service, None)
        args = (self._now(), probe.encode(), num(lease))
        try:
            r = await self._eval(self._scripts.renew_probe, (cb, probes), args)
        except RedisUnreachable as exc:
            return self._fallback.probe_may_go(exc)
        return bool(r == 1)

    async def pause(self, service: str, seconds: float) -> None:
        """Admit nothing for `service` for `seconds`, in every worker (vendor backpressure)."""
        cb, _, _ = self._admission_keys(service, None)
        try:
            await self._eval(self._scripts.pause, (cb,), (self._now(), num(seconds)))
        except RedisUnreachable as exc:
            await self._fallback.pause(exc, methodcaller("pause", service, seconds))
