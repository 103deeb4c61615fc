"""A fleet-wide concurrency limit (api.md 26) held by 4 OS processes on one real Redis.

The stub vendor runs in the test process and counts its requests in flight (it answers after
200 ms); the workers are spawned processes with 50 coroutines each. Timings here are generous
bounds and invariants; what a limit costs and how fast it converges is measured by the
benchmarks and reported in docs/concepts/concurrency-limit.md.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from nexus_connector_async import RedisBackend
from tests._multiproc import WorkerError, run_in_processes
from tests._redis_servers import RedisServer
from tests.multiprocess import _slot_workers as workers
from tests.multiprocess._stub import running_slot_vendor

pytestmark = [pytest.mark.multiprocess, pytest.mark.redis]

PROCESSES, COROUTINES, LIMIT = 4, 50, 8
# Redis TIME (lease ends) and this process's time.monotonic() may drift apart a little.
CLOCK_SLEW = 0.05


async def until(
    predicate: Callable[[], Awaitable[bool]], timeout: float, step: float = 0.01
) -> float:
    """Seconds until `predicate()` holds; fails the test after `timeout`."""
    start = time.monotonic()
    while not await predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout} s")
        await asyncio.sleep(step)
    return time.monotonic() - start


async def usage(redis_url: str) -> tuple[int, int]:
    backend = RedisBackend.from_url(redis_url)
    try:
        return await backend.slot_usage(workers.SERVICE, None, LIMIT)
    finally:
        await backend.aclose()


async def test_4_processes_x_50_calls_never_exceed_the_limit_all_complete_and_keep_it_full(
    redis_server: RedisServer, redis_flush: None
) -> None:
    async with running_slot_vendor(delay=0.2) as vendor:
        outcomes = await asyncio.to_thread(
            run_in_processes,
            workers.limited_calls,
            PROCESSES,
            redis_server.url,
            vendor.url,
            COROUTINES,
            LIMIT,
            timeout=120.0,
        )
        statuses = [s for o in outcomes for s in o.unwrap()]
    # (a) The vendor never saw more than the limit, and saw the limit itself.
    assert vendor.peak == LIMIT
    # (b) Every call completed (each waited for its slot within max_wait).
    assert statuses == [200] * PROCESSES * COROUTINES
    assert vendor.statuses() == [200] * PROCESSES * COROUTINES
    # (c) While work was queued the limit was kept full: from the ramp-up's end (the stub first
    # sees LIMIT in flight) to the last departure, at least 90 % of it on average.
    first = vendor.timeline[0][0]
    full = next(t for t, n in vendor.timeline if n == LIMIT)
    last = vendor.timeline[-1][0]
    used = vendor.utilisation(full, last, LIMIT)
    print(f"ramp-up {full - first:.3f} s, run {last - full:.3f} s, utilisation {used:.1%}")
    assert full - first < 2.0
    assert used >= 0.90, used
    assert await usage(redis_server.url) == (0, LIMIT)


async def test_a_sigkilled_workers_slots_come_back_within_their_lease_and_others_use_them(
    redis_server: RedisServer, redis_flush: None
) -> None:
    lease = 2.0
    async with running_slot_vendor(delay=0.2) as vendor:
        (outcome,) = await asyncio.to_thread(
            run_in_processes,
            workers.die_holding_slots,
            1,
            redis_server.url,
            vendor.url,
            LIMIT,
            lease,
        )
        assert isinstance(outcome.error, WorkerError)  # SIGKILLed holding every slot
        assert vendor.hanging == LIMIT
        assert await usage(redis_server.url) == (LIMIT, LIMIT)  # still held by the dead worker

        async def all_back() -> bool:
            return await usage(redis_server.url) == (0, LIMIT)

        back = await until(all_back, timeout=lease + 2.0)
        # Renewed every half lease until the kill, so they end between lease/2 and lease later.
        print(f"slots back {back:.3f} s after the kill (lease {lease} s)")
        assert back <= lease + CLOCK_SLEW + 0.5
        # The others get all of them back: the stub sees the full limit again, never more.
        outcomes = await asyncio.to_thread(
            run_in_processes,
            workers.limited_calls,
            PROCESSES - 1,
            redis_server.url,
            vendor.url,
            COROUTINES,
            LIMIT,
            timeout=120.0,
        )
        statuses = [s for o in outcomes for s in o.unwrap()]
    assert statuses == [200] * (PROCESSES - 1) * COROUTINES
    assert vendor.peak == LIMIT
    assert await usage(redis_server.url) == (0, LIMIT)


async def test_calls_cancelled_at_every_await_point_leave_no_slot_held(
    redis_server: RedisServer, redis_flush: None
) -> None:
    async with running_slot_vendor(delay=0.2) as vendor:
        outcomes = await asyncio.to_thread(
            run_in_processes,
            workers.cancelled_calls,
            PROCESSES,
            redis_server.url,
            vendor.url,
            COROUTINES,
            LIMIT,
            timeout=120.0,
        )
        hits = [o.unwrap() for o in outcomes]
    keys = (*workers.POINTS, "anywhere@vendor", "cancelled", "completed")
    total = {k: sum(h.get(k, 0) for h in hits) for k in keys}
    print(total, f"vendor peak {vendor.peak}")
    # Cancellations landed at every await point of a limited call...
    assert all(total[p] > 0 for p in workers.POINTS), total
    assert total["cancelled"] + total["completed"] == PROCESSES * COROUTINES
    # A request abandoned at the vendor gives its slot back at once, while the vendor may still
    # be working on it: beyond that, the vendor never saw more than the limit.
    assert vendor.peak <= LIMIT + total["at_vendor"] + total["anywhere@vendor"]
    # ...and every slot came back by release, long before its 600 s lease, with no waiter left
    # in the queue.
    await until(lambda: _settled(redis_server.url), timeout=5.0)


async def _settled(redis_url: str) -> bool:
    if await usage(redis_url) != (0, LIMIT):
        return False
    backend = RedisBackend.from_url(redis_url)
    (held, queue, _), _ = backend._slot_keys(workers.SERVICE, None)
    await backend.aclose()
    async with aioredis.Redis.from_url(redis_url) as client:
        return bool(await client.zcard(held) == 0 and await client.zcard(queue) == 0)


async def test_adaptive_limit_converges_under_the_vendors_8_and_the_429s_stop(
    redis_server: RedisServer, redis_flush: None
) -> None:
    seconds, max_in_flight = 10.0, 20
    async with running_slot_vendor(delay=0.2, throttle_above=LIMIT) as vendor:
        outcomes = await asyncio.to_thread(
            run_in_processes,
            workers.adaptive_calls,
            PROCESSES,
            redis_server.url,
            vendor.url,
            COROUTINES,
            seconds,
            max_in_flight,
            timeout=120.0,
        )
        results = [o.unwrap() for o in outcomes]
    changes = sorted(c for changed, _ in results for c in changed)  # the fleet's limit, in time
    start = vendor.timeline[0][0]
    end = vendor.timeline[-1][0]
    throttled = [t for t, status in vendor.answers if status == 429]
    converged = next(t for t, limit, _ in changes if limit <= LIMIT)
    tail = end - (end - start) / 3  # the last third of the run
    late = [t for t in throttled if t >= tail]
    # Increases only: each worker stamps its own changes when it hears of them, so under load a
    # decrease made just before another worker's (20 -> 14, then 9 -> 8) can be stamped after it.
    # A climb back above 9 would show as increases (10, 11, ...), which this catches.
    above = [
        limit
        for t, limit, reason in changes
        if t >= converged and reason == "recovered" and limit > LIMIT
    ]
    print(
        f"converged after {converged - start:.3f} s; {len(changes)} changes; "
        f"{len(throttled)} 429s, {len(late)} in the last third; increases above 8 later: {above}"
    )
    assert converged - start < 5.0
    # After that the limit only probes one above the vendor's 8 (AIMD's additive increase),
    # and the 429 count all but stops growing: a probe costs one 429 per few windows.
    assert max(above, default=LIMIT) <= LIMIT + 1, above
    assert len(late) <= 10, late
