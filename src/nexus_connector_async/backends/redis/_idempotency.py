"""Idempotency keys on Redis: leases, fencing tokens and stored results (lua/idem_*.lua).

No fallback here: while Redis is unreachable every method raises `BackendUnavailable`, in any
`on_unavailable` mode, since a call must never silently lose its at-most-once guarantee.
"""

from __future__ import annotations

import contextlib
from typing import Literal

from ..._errors import BackendUnavailable
from .._base import Claim
from ._core import RedisCore, num
from ._keys import key
from ._replies import ClaimReply, claim_reply
from ._scripts import Script
from ._wire import NotReplicated

__all__ = ["IdempotencyMixin"]


class IdempotencyMixin(RedisCore):
    """`IdempotencyStore` on Redis."""

    def _idem_keys(self, service: str, tenant: str | None, digest: str) -> tuple[bytes, bytes]:
        if tenant is None:
            parts: tuple[str, ...] = (digest,)
            kind: Literal["idem", "tidem"] = "idem"
        else:
            parts, kind = (tenant, digest), "tidem"
        rec = key(self.prefix, kind, service, *parts)
        return rec.encode(), f"{rec}:n".encode()  # key(..., *parts, "n"), built once

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
        """Take the key if free, else report it (raises `BackendUnavailable` in any outage)."""
        keys = self._idem_keys(service, tenant, key)
        claim, _ = await self._claim(service, keys, fingerprint, lease, unknown_ttl)
        return claim

    async def _claim(
        self,
        service: str,
        keys: tuple[bytes, bytes],
        fingerprint: str,
        lease: float,
        unknown_ttl: float | None,
    ) -> tuple[Claim, float]:
        amo = b"" if unknown_ttl is None else num(unknown_ttl)
        args = (self._now(), fingerprint, num(lease), amo)
        try:
            script = self._scripts.idem_claim
            r = await self._eval(script, keys, args, durable=True, batch=service)
        except NotReplicated as exc:
            await self._unclaim(keys, claim_reply(exc.reply))
            raise BackendUnavailable(str(exc)) from None
        reply = claim_reply(r)
        return self._opened(keys, reply), reply.lease_left

    def _opened(self, keys: tuple[bytes, bytes], reply: ClaimReply) -> Claim:
        """The claim, its stored result unsealed (when results are sealed)."""
        stored = reply.result
        if stored is not None and self._sealer is not None:
            stored = self._sealer.open(keys[0], stored)
        return Claim(reply.state, reply.token, stored)

    async def _unclaim(self, keys: tuple[bytes, bytes], reply: ClaimReply) -> None:
        """Give back a key a failover could lose (no replica took the claim): nothing is sent
        on it, so free it now rather than leave it taken for a whole lease (best effort)."""
        if reply.state == "acquired":
            with contextlib.suppress(BackendUnavailable):
                await self._eval(self._scripts.idem_release, keys, (self._now(), reply.token))

    async def complete(
        self, service: str, tenant: str | None, key: str, token: str, result: bytes, ttl: float
    ) -> bool:
        """Store the final result for `ttl` seconds if `token` still owns the key."""
        keys = self._idem_keys(service, tenant, key)
        if self._sealer is not None:
            result = self._sealer.seal(keys[0], result)
        args = (self._now(), token, result, num(ttl))
        script = self._scripts.idem_complete
        return bool(await self._eval(script, keys, args, durable=True, batch=service) == 1)

    async def release(self, service: str, tenant: str | None, key: str, token: str) -> None:
        """Free the key after a transient failure (owner only), waking its waiters."""
        keys = self._idem_keys(service, tenant, key)
        await self._eval(self._scripts.idem_release, keys, (self._now(), token))

    async def extend(
        self, service: str, tenant: str | None, key: str, token: str, lease: float
    ) -> bool:
        """Push our lease end to now + `lease` while the call is still running."""
        return await self._owner_write(
            self._scripts.idem_extend, service, tenant, key, token, lease
        )

    async def mark_unknown(
        self, service: str, tenant: str | None, key: str, token: str, ttl: float
    ) -> bool:
        """Keep our key `unknown` for `ttl` seconds (at most once: its outcome is unknown)."""
        script = self._scripts.idem_mark_unknown
        return await self._owner_write(script, service, tenant, key, token, ttl)

    async def _owner_write(
        self, script: Script, service: str, tenant: str | None, key: str, token: str, t: float
    ) -> bool:
        """One owner-only script taking (token, seconds); True if `token` still owned the key."""
        keys = self._idem_keys(service, tenant, key)
        return bool(await self._eval(script, keys, (self._now(), token, num(t))) == 1)

    async def forget(self, service: str, tenant: str | None, key: str) -> bool:
        """Free an `unknown` key the application has reconciled; True if it was one."""
        keys = self._idem_keys(service, tenant, key)
        return bool(await self._eval(self._scripts.idem_forget, keys, (self._now(),)) == 1)

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
        """Wait up to `timeout` for an in-progress key, without polling; claim it if released.

        Waiters block on the key's notify list with `BLMOVE list list` (a rotation: one element
        wakes every waiter), which `complete` and `release` fill; each wake-up, each short block
        timeout and the holder's lease end lead to a re-check of the record.
        """
        keys = self._idem_keys(service, tenant, key)
        deadline = self._clock.monotonic() + timeout
        while True:
            claim, lease_left = await self._claim(service, keys, fingerprint, lease, unknown_ttl)
            remaining = deadline - self._clock.monotonic()
            if claim.state != "in_progress" or remaining <= 0:
                return claim
            await self._block(keys[1], min(remaining, lease_left))
