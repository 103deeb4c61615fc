"""Idempotency keys and the key-value store of `MemoryBackend` (same semantics as Redis's)."""

from __future__ import annotations

import asyncio

from .._clock import wait_or_timeout
from ._base import Claim
from ._memory_base import IDEM, KV, Idem, MemoryBase

__all__ = ["MemoryStores"]


class MemoryStores(MemoryBase):
    """`IdempotencyStore` and `KeyValueStore` in process memory."""

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
            rec = self._idem[k] = Idem(fingerprint, token, now + lease, None, unknown_ttl)
            self._watch(rec.expires, IDEM, k, rec)
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
            self._watch(item[1], KV, key, item)

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
            self._watch(expires, KV, key, item)
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
