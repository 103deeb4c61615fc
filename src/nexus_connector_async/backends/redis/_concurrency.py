"""Fleet-wide concurrency slots on Redis (api.md 26; lua/slots.lua).

A waiter blocks on its own wake list. A release hands each freed slot to the head waiter in
the same script (FIFO, under the waiter's own lease) and tells it so on that list, so a woken
waiter returns with its slot without asking again. A release is queued before `release_slot`
returns; if the attempt's `record` follows within the tick, it rides in that script instead.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from ..._errors import BackendUnavailable
from .._slots import Adapt, Slot
from ._core import Parked, RedisCore, num
from ._health import RedisUnreachable
from ._replies import granted, release_reply, slot_reply, usage_reply

__all__ = ["ConcurrencyMixin"]


class ConcurrencyMixin(RedisCore):
    """`SlotStore` on Redis."""

    def _slot_args(
        self,
        op: bytes,
        wake: bytes,
        token: str = "",
        n: int = 0,
        lease: float = 0.0,
        x: float = 0.0,
        signal: bool | None = None,
        generation: int | None = None,
    ) -> tuple[Any, ...]:
        return (self._now(), op, *_slot_tail(wake, token, n, lease, x, signal, generation))

    async def acquire_slot(
        self, service: str, tenant: str | None, max_in_flight: int, lease: float, max_wait: float
    ) -> Slot:
        """Take a slot (one script through the batcher); wait in FIFO order up to `max_wait`.

        A waiter blocks on its own wake list, where a release (or a raised adaptive limit)
        hands it its slot; it also re-checks when the earliest lease ends (a dead holder's
        slot) and after each capped block.
        """
        keys, wake = self._slot_keys(service, tenant)
        token = secrets.token_hex(8)
        deadline = self._clock.monotonic() + max_wait

        def give_back(reply: Any) -> None:
            # Cancelled while the reply was in flight: a slot granted, or a place taken in the
            # queue (a ghost at its head would hold back every waiter behind it), goes back.
            if granted(reply):
                self._spawn_slot_release(service, tenant, token, max_in_flight)

        queued = False
        try:
            while True:
                remaining = max(0.0, deadline - self._clock.monotonic())
                args = self._slot_args(b"acquire", wake, token, max_in_flight, lease, remaining)
                command = ("EVALSHA", self._scripts.slots.sha, 3, *keys, *args)
                r = slot_reply(
                    await self._submit(command, self._scripts.slots, on_orphan=give_back)
                )
                queued = r.queued
                if not queued:
                    return Slot(token if r.granted else "", r.retry_after, r.generation)
                until_lease = r.retry_after or remaining
                woken = await self._block(
                    wake + token.encode(), min(remaining, max(until_lease, 0.01))
                )
                if woken is not None and woken[:1] == b"g":  # handed over by a release
                    queued = False
                    return Slot(token, 0.0, int(woken[1:]))
        finally:
            if queued:  # gave up or cancelled while queued: leave the queue, wake the next
                self._spawn_slot_release(service, tenant, token, max_in_flight)

    def _spawn_slot_release(
        self, service: str, tenant: str | None, token: str, max_in_flight: int
    ) -> None:
        fut = self.release_slot(service, tenant, token, max_in_flight)
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())

    def release_slot(
        self,
        service: str,
        tenant: str | None,
        token: str,
        max_in_flight: int,
        *,
        adapt: Adapt | None = None,
    ) -> asyncio.Future[int | None]:
        """Give a slot back (after the AIMD step of `adapt`, in the same script) and hand the
        freed slots to the waiters that may now go; if Redis is unreachable its lease frees it.

        The script is queued in the current batch before this returns, so it reaches Redis
        ahead of anything the caller sends next (its next admission sees the slot free), and
        nobody waits for its reply unless they await the future. Until that batch leaves, the
        release is parked: a `record` of the service sent meanwhile takes it along.
        """
        keys, wake = self._slot_keys(service, tenant)
        signal, window, generation = (None, 0.0, None) if adapt is None else adapt
        args = self._slot_args(
            b"release", wake, token, max_in_flight, 0.0, window, signal, generation
        )
        loop = asyncio.get_running_loop()
        out: asyncio.Future[int | None] = loop.create_future()
        command = ("EVALSHA", self._scripts.slots.sha, 3, *keys, *args)
        try:
            sent = self._submit_now(command, self._scripts.slots, defer=True)
        except BackendUnavailable:  # unreachable or closed: the lease frees the slot
            out.set_result(None)
            return out
        parked = self._parked[service] = Parked(sent, command)

        def done(f: asyncio.Future[Any]) -> None:
            if self._parked.get(service) is parked:
                del self._parked[service]
            if out.done():
                return
            if f.cancelled():
                out.set_result(None)
            elif (exc := f.exception()) is not None:
                if isinstance(exc, RedisUnreachable):
                    out.set_result(None)
                else:
                    out.set_exception(exc)
            else:
                out.set_result(release_reply(f.result()).new_limit)

        sent.add_done_callback(done)
        return out

    async def renew_slot(self, service: str, tenant: str | None, token: str, lease: float) -> bool:
        """Push the slot's lease end to now + `lease`; False if it was lost."""
        keys, wake = self._slot_keys(service, tenant)
        args = self._slot_args(b"renew", wake, token, 0, lease)
        return bool(await self._eval(self._scripts.slots, keys, args) == 1)

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
        """One AIMD step of the fleet's limit (stored in the meta hash); the new limit or None."""
        keys, wake = self._slot_keys(service, tenant)
        args = self._slot_args(b"adapt", wake, "", max_in_flight, 0.0, window, cut, generation)
        r = await self._eval(self._scripts.slots, keys, args)
        return None if r == -1 else int(r)

    async def slot_usage(
        self, service: str, tenant: str | None, max_in_flight: int
    ) -> tuple[int, int]:
        """(slots in use, current limit) of the scope, fleet-wide."""
        keys, wake = self._slot_keys(service, tenant)
        args = self._slot_args(b"usage", wake, "", max_in_flight)
        return usage_reply(await self._eval(self._scripts.slots, keys, args))


def _slot_tail(
    wake: bytes,
    token: str,
    n: int,
    lease: float,
    x: float,
    signal: bool | None,
    generation: int | None,
) -> tuple[bytes, ...]:
    """slots.lua's ARGV[3..9] (the same order as record.lua's ARGV[7..12] plus the lease)."""
    return (
        token.encode(),
        str(n).encode(),
        num(lease),
        num(x),
        wake,
        b"" if signal is None else b"1" if signal else b"0",
        b"" if generation is None else str(generation).encode(),
    )
