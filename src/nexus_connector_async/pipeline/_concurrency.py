"""Fleet-wide concurrency slots (api.md 26): one per attempt, held while it is at the vendor.

The slot normally comes with the admission; this layer sends the request holding it, renews
its lease during a long exchange, and gives it back on every way out, with the adaptive
limit's step (AIMD) riding on the release.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .._errors import ConcurrencyLimitExceeded
from .._events import (
    AdmissionRejected,
    ConcurrencyLimitChanged,
    ConcurrencySlotHeld,
    ConcurrencySlotReleased,
)
from ..backends._slots import Adapt
from ._call import Call, Held, Progress, Wiring

__all__ = ["Slots"]

T = TypeVar("T")


class Slots:
    """Sends an attempt holding a concurrency slot; releases slots without waiting."""

    __slots__ = ("_wiring",)

    def __init__(self, wiring: Wiring) -> None:
        self._wiring = wiring

    async def run(
        self, call: Call, send: Callable[[], Awaitable[T]], progress: Progress | None
    ) -> T:
        """One attempt (an HTTP exchange, or a `call()` factory) holding a fleet-wide slot,
        given back on every way out.

        The slot normally came with the admission (`call.held`); if none was free then (or
        the admission had to wait for its token), the attempt waits for one here, first come
        first served, within `max_wait` and the deadline.
        """
        limit = call.concurrency
        assert limit is not None
        wiring = self._wiring
        clock = wiring.clock
        scoped = call.tenant if limit.scope == "tenant" else None
        lease = limit.lease if limit.lease is not None else call.probe_lease
        backend: Any = wiring.backend
        held = call.held
        waited = 0.0
        if held is None:
            asked = clock.monotonic()
            wait = limit.max_wait
            if call.deadline_at is not None:
                wait = min(wait, max(0.0, call.deadline_at - clock.monotonic()))
            slot = await backend.acquire_slot(
                call.service, scoped, limit.max_in_flight, lease, wait
            )
            if not slot.acquired:
                wiring.events.emit(
                    AdmissionRejected(call.service, "concurrency_limit", slot.retry_after, False)
                )
                raise ConcurrencyLimitExceeded(
                    f"concurrency limit of {call.service!r} reached", retry_after=slot.retry_after
                )
            held = Held(slot, clock.monotonic())
            waited = held.taken_at - asked
        if wiring.hooked:  # metrics: slots in use and waits (nothing built without a hook)
            held.announced = True
            wiring.events.emit(ConcurrencySlotHeld(call.service, scoped, waited))
        token = held.slot.token
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None

        def renew() -> None:  # a long attempt keeps its slot: renewed every half lease
            nonlocal handle
            wiring.tasks.spawn(backend.renew_slot(call.service, scoped, token, lease))
            handle = loop.call_later(lease / 2.0, renew)

        started = clock.monotonic()
        handle = loop.call_later(max(0.0, lease / 2.0 - (started - held.taken_at)), renew)
        if progress is not None:
            progress.sending = True
        try:
            response = await send()
        except BaseException:
            handle.cancel()
            self.release(call, held)
            raise
        handle.cancel()
        status = getattr(response, "status", 200)  # a `call()` result that returned succeeded
        if not limit.adaptive or not isinstance(status, int):
            self.release(call, held)
            return response
        slow = (
            limit.latency_target is not None and clock.monotonic() - started > limit.latency_target
        )
        cut = status == 429 or slow
        if cut or status < 300:
            reason = ("slow" if slow else "throttled") if cut else "recovered"
            self.release(call, held, Adapt(cut, limit.window, held.slot.generation), reason)
        else:
            self.release(call, held)
        return response

    def release(self, call: Call, held: Held, adapt: Adapt | None = None, reason: str = "") -> None:
        """Give the slot back without waiting: the backend queues the release at once.

        It reaches Redis before anything this process sends next, and the caller does not wait
        for its reply (under load it shares a round trip with other calls' commands). With
        `adapt`, the AIMD step rides on the release (one script): a cut limit is in force
        before the freed slot goes to the next waiter; a change is reported once it lands.
        """
        held.released = True
        limit = call.concurrency
        assert limit is not None
        wiring = self._wiring
        scoped = call.tenant if limit.scope == "tenant" else None
        if held.announced:
            wiring.events.emit(ConcurrencySlotReleased(call.service, scoped))
        backend: Any = wiring.backend
        future = asyncio.ensure_future(
            backend.release_slot(
                call.service, scoped, held.slot.token, limit.max_in_flight, adapt=adapt
            )
        )
        background = wiring.tasks.background
        background.add(future)

        def landed(done: asyncio.Future[int | None]) -> None:
            background.discard(done)
            if done.cancelled():
                return
            exc = done.exception()
            if exc is not None:  # its lease frees the slot
                wiring.log.error("nexus.backend.cleanup_failed", error=type(exc).__name__)
                return
            new = done.result()
            if new is not None:
                wiring.events.emit(ConcurrencyLimitChanged(call.service, scoped, new, reason))

        future.add_done_callback(landed)
