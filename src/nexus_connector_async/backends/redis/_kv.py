"""The shared key-value and lock surface on Redis (OAuth token cache, single-flight refresh).

While Redis is unreachable the fallback strategy picks the store: fail_closed raises, fail_open
and local use process memory (a spend guard's `add(strict=True)` raises in every mode).
"""

from __future__ import annotations

from ._core import RedisCore, num
from ._health import RedisUnreachable
from ._keys import key
from ._replies import counter_reply

__all__ = ["KeyValueMixin"]


class KeyValueMixin(RedisCore):
    """`KeyValueStore` on Redis."""

    def _kv_key(self, name: str) -> tuple[bytes]:
        return (key(self.prefix, "kv", "", name).encode(),)

    async def get(self, key: str) -> bytes | None:
        """A shared value, or None (process memory while Redis is down, unless fail_closed)."""
        try:
            r = await self._eval(self._scripts.kv_get, self._kv_key(key), (self._now(),))
        except RedisUnreachable as exc:
            return await self._fallback.memory(exc).get(key)
        return None if r is None else bytes(r)

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store a shared value, for `ttl` seconds if given."""
        args = (self._now(), value, b"" if ttl is None else num(ttl))
        try:
            await self._eval(self._scripts.kv_set, self._kv_key(key), args)
        except RedisUnreachable as exc:
            await self._fallback.memory(exc).set(key, value, ttl)

    async def add(
        self,
        key: str,
        amount: int,
        *,
        limit: int | None = None,
        ttl: float | None = None,
        strict: bool = False,
    ) -> tuple[bool, int]:
        """Add `amount` to a shared counter unless the total would pass `limit` (one script).

        `strict=True` (spend guards) raises `BackendUnavailable` while Redis is unreachable,
        whatever `on_unavailable` says: a local count would restart from zero.
        """
        args = (
            self._now(),
            str(int(amount)),
            b"" if limit is None else str(int(limit)),
            b"" if ttl is None else num(ttl),
        )
        try:
            r = await self._eval(self._scripts.kv_add, self._kv_key(key), args)
        except RedisUnreachable as exc:
            if strict:
                raise
            return await self._fallback.memory(exc).add(key, amount, limit=limit, ttl=ttl)
        return counter_reply(r)

    async def delete(self, key: str) -> None:
        """Remove a shared value."""
        try:
            await self._submit(("DEL", *self._kv_key(key)))
        except RedisUnreachable as exc:
            await self._fallback.memory(exc).delete(key)

    async def acquire_lock(self, key: str, token: str, lease: float) -> bool:
        """Take the lock for `lease` seconds (`SET NX` semantics); True if we now hold it."""
        args = (self._now(), token, num(lease))
        try:
            r = await self._eval(self._scripts.lock_acquire, self._kv_key(key), args)
        except RedisUnreachable as exc:
            return await self._fallback.memory(exc).acquire_lock(key, token, lease)
        return bool(r == 1)

    async def release_lock(self, key: str, token: str) -> None:
        """Release the lock only if `token` still holds it (checked inside one script)."""
        try:
            await self._eval(self._scripts.lock_release, self._kv_key(key), (self._now(), token))
        except RedisUnreachable as exc:
            await self._fallback.memory(exc).release_lock(key, token)

    async def extend_lock(self, key: str, token: str, lease: float) -> bool:
        """Extend our lock's lease (checked inside one script); False if we no longer hold it."""
        args = (self._now(), token, num(lease))
        try:
            r = await self._eval(self._scripts.lock_extend, self._kv_key(key), args)
        except RedisUnreachable as exc:
            return await self._fallback.memory(exc).extend_lock(key, token, lease)
        return bool(r == 1)

    async def compare_and_set(
        self, key: str, expected: bytes | None, value: bytes, ttl: float | None = None
    ) -> bool:
        """Store `value` only if the live value is still `expected`: one script, no race."""
        args = (self._now(), expected or b"", value, b"" if ttl is None else num(ttl))
        try:
            r = await self._eval(self._scripts.kv_cas, self._kv_key(key), args)
        except RedisUnreachable as exc:
            return await self._fallback.memory(exc).compare_and_set(key, expected, value, ttl)
        return bool(r == 1)
