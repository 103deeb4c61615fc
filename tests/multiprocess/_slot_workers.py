"""Worker bodies for test_concurrency_limit.py (run by `run_in_processes`, so module level).

Each worker builds its own `Connector` on one shared Redis and calls the `SlotVendor` stub of
the test process; results come back as plain lists and tuples.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from typing import Any

import aiohttp
import structlog

from nexus_connector_async import (
    ConcurrencyLimit,
    ConcurrencyLimitChanged,
    Connector,
    Endpoint,
    Event,
    RedisBackend,
    Response,
    RetryPolicy,
    Timeouts,
)
from nexus_connector_async.typing import Adapt, Admission, Slot

SERVICE = "vendor"
ONCE = RetryPolicy(max_attempts=1)


def _quiet() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))


def endpoint(vendor_url: str, limit: ConcurrencyLimit, lane: str = "work") -> Endpoint:
    return (
        Endpoint.create(f"{vendor_url}/{lane}")
        .with_concurrency_limit(limit)
        .with_retry(ONCE)
        .with_timeout(Timeouts(total=10.0))
    )


async def limited_calls(
    index: int, redis_url: str, vendor_url: str, calls: int, max_in_flight: int
) -> list[int]:
    """`calls` concurrent calls under one fleet-wide limit, waiting as long as they need."""
    _quiet()
    ep = endpoint(vendor_url, ConcurrencyLimit(max_in_flight, max_wait=60.0))
    backend = RedisBackend.from_url(redis_url)
    async with Connector(backend=backend, default_deadline=90.0) as c:
        responses = await asyncio.gather(*(c.execute(SERVICE, ep, {"i": i}) for i in range(calls)))
    return [r.status for r in responses]


async def die_holding_slots(
    index: int, redis_url: str, vendor_url: str, slots: int, lease: float
) -> None:
    """Take every slot with calls the stub never answers, then die by SIGKILL holding them."""
    _quiet()
    ep = endpoint(vendor_url, ConcurrencyLimit(slots, lease=lease), lane="hang")
    c = Connector(backend=RedisBackend.from_url(redis_url))
    calls = [asyncio.ensure_future(c.execute(SERVICE, ep, {"i": i})) for i in range(slots)]
    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline:
            async with http.get(f"{vendor_url}/hanging") as resp:
                if (await resp.json())["hanging"] >= slots:
                    break
            await asyncio.sleep(0.01)  # polling the stub, bounded by the deadline
    os.kill(os.getpid(), signal.SIGKILL)
    await asyncio.gather(*calls)


# -- cancellation at each await point of a limited call --------------------------------------

#: Where a call is cancelled: while its admission (which takes a free slot) is in flight; when
#: none was free, while its own request for a slot is in flight or while it waits in the
#: queue; while it is at the vendor; right as its slot is given back (the release is queued,
#: not awaited: the cancel lands at the call's next await); or at a time of its own.
POINTS = ("admitting", "acquiring", "queued", "at_vendor", "releasing", "anywhere")


class _Cancels:
    """Cancels each call at its assigned point, recording which points were really reached."""

    def __init__(self) -> None:
        self.point: dict[asyncio.Task[Any], str] = {}  # the call's task -> where to cancel it
        self.holder: dict[str, asyncio.Task[Any]] = {}  # slot token -> the call's task
        self.hit: Counter[str] = Counter()
        self.sending: set[asyncio.Task[Any]] = set()  # calls whose request is at the vendor

    def here(self, point: str, task: asyncio.Task[Any] | None = None) -> None:
        task = task or asyncio.current_task()
        if task is not None and self.point.get(task) == point and not task.done():
            self.hit[point] += 1
            task.cancel()  # lands at the next await: the one this hook runs just before

    def anywhere(self, task: asyncio.Task[Any]) -> None:
        if not task.done():
            self.hit["anywhere@vendor" if task in self.sending else "anywhere"] += 1
            task.cancel()


class CancellingBackend(RedisBackend):
    """A RedisBackend whose slot operations call the test's cancel hooks first."""

    cancels: _Cancels

    async def admit(self, *args: Any, **kw: Any) -> Admission:
        task = asyncio.current_task()
        self.cancels.here("admitting")
        adm = await super().admit(*args, **kw)
        if adm.slot and task is not None:
            self.cancels.holder[adm.slot] = task
        return adm

    async def acquire_slot(
        self, service: str, tenant: str | None, max_in_flight: int, lease: float, max_wait: float
    ) -> Slot:
        task = asyncio.current_task()
        self.cancels.here("acquiring")
        slot = await super().acquire_slot(service, tenant, max_in_flight, lease, max_wait)
        if slot.acquired and task is not None:
            self.cancels.holder[slot.token] = task
        return slot

    async def _block(self, notify: bytes, seconds: float) -> None:
        self.cancels.here("queued")  # only a caller waiting for a slot blocks here
        await super()._block(notify, seconds)

    def release_slot(
        self,
        service: str,
        tenant: str | None,
        token: str,
        max_in_flight: int,
        *,
        adapt: Adapt | None = None,
    ) -> asyncio.Future[int | None]:
        holder = self.cancels.holder.pop(token, None)
        if holder is not None:
            self.cancels.here("releasing", holder)
        return super().release_slot(service, tenant, token, max_in_flight, adapt=adapt)


class CancellingTransport:
    """The connector's HTTP transport, with the "at the vendor" cancel hook."""

    def __init__(self, inner: Any, cancels: _Cancels) -> None:
        self.inner = inner
        self.cancels = cancels

    async def send(self, *args: Any, **kw: Any) -> Response:
        task = asyncio.current_task()
        assert task is not None
        self.cancels.here("at_vendor")
        self.cancels.sending.add(task)
        try:
            response: Response = await self.inner.send(*args, **kw)
        finally:
            self.cancels.sending.discard(task)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def cancelled_calls(
    index: int, redis_url: str, vendor_url: str, calls: int, max_in_flight: int
) -> dict[str, int]:
    """`calls` limited calls, each cancelled at one of `POINTS`; the points actually hit."""
    _quiet()
    from nexus_connector_async import AiohttpTransport  # noqa: PLC0415

    cancels = _Cancels()
    backend = CancellingBackend.from_url(redis_url)
    assert isinstance(backend, CancellingBackend)
    backend.cancels = cancels
    # A lease far longer than the test: only a release can give a slot back in time.
    ep = endpoint(vendor_url, ConcurrencyLimit(max_in_flight, max_wait=60.0, lease=600.0))
    transport = CancellingTransport(AiohttpTransport(), cancels)
    async with Connector(backend=backend, http=transport, default_deadline=90.0) as c:
        tasks = []
        for i in range(calls):
            task = asyncio.ensure_future(c.execute(SERVICE, ep, {"i": i}))
            point = POINTS[i % len(POINTS)]
            cancels.point[task] = point
            if point == "anywhere":  # spread over the first second: every phase of a call
                delay = (i * 7 + index) % 1000 / 1000
                asyncio.get_running_loop().call_later(delay, cancels.anywhere, task)
            tasks.append(task)
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    hit = Counter(cancels.hit)
    hit["cancelled"] = sum(isinstance(o, asyncio.CancelledError) for o in outcomes)
    hit["completed"] = sum(isinstance(o, Response) for o in outcomes)
    return dict(hit)


# -- adaptive -----------------------------------------------------------------------------------


async def adaptive_calls(
    index: int, redis_url: str, vendor_url: str, tasks: int, seconds: float, max_in_flight: int
) -> tuple[list[tuple[float, int, str]], dict[int, int]]:
    """`tasks` loops calling for `seconds` under an adaptive limit.

    Returns the limit changes this worker made, as `(time.monotonic(), new limit, reason)`,
    and its count of answers per status.
    """
    _quiet()
    changes: list[tuple[float, int, str]] = []

    def record(event: Event) -> None:
        if isinstance(event, ConcurrencyLimitChanged):
            changes.append((time.monotonic(), event.limit, event.reason))

    ep = endpoint(vendor_url, ConcurrencyLimit(max_in_flight, max_wait=30.0, adaptive=True))
    statuses: Counter[int] = Counter()
    stop = time.monotonic() + seconds
    backend = RedisBackend.from_url(redis_url)
    async with Connector(backend=backend, events=[record], default_deadline=60.0) as c:

        async def loop() -> None:
            while time.monotonic() < stop:
                r = await c.execute(SERVICE, ep, {"i": index}, raise_for_status=False)
                statuses[r.status] += 1

        await asyncio.gather(*(loop() for _ in range(tasks)))
    return changes, dict(statuses)
