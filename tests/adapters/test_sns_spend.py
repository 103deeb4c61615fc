"""The shared SMS spend counter: exact under concurrency, per month, on memory and Redis."""

from __future__ import annotations

import asyncio

import pytest

from nexus_connector_async import MemoryBackend, RedisBackend
from nexus_connector_async.adapters import Money, SpendLimitExceeded
from nexus_connector_async.adapters.sns._spend import SpendTracker
from nexus_connector_async.testing import FakeClock

CENT = Money("0.01", "USD")
# 2024-01-31T23:59:00Z: one minute before February.
END_OF_JANUARY = 1_706_745_540.0


async def test_concurrent_reservations_never_pass_the_limit() -> None:
    tracker = SpendTracker(MemoryBackend(), "sns", FakeClock())
    outcomes = await asyncio.gather(
        *(tracker.reserve(CENT, Money("0.10", "USD")) for _ in range(50)),
        return_exceptions=True,
    )
    assert sum(not isinstance(o, BaseException) for o in outcomes) == 10
    assert all(isinstance(o, SpendLimitExceeded) for o in outcomes if isinstance(o, BaseException))
    assert await tracker.month_to_date() == Money("0.10", "USD")


async def test_two_trackers_on_one_backend_share_the_counter() -> None:
    backend, clock = MemoryBackend(), FakeClock()
    one, two = SpendTracker(backend, "sns", clock), SpendTracker(backend, "sns", clock)
    await one.reserve(CENT, None)
    month = await two.reserve(CENT, None)
    await one.refund(CENT, month)
    assert await two.month_to_date() == CENT
    other_service = SpendTracker(backend, "sns-eu", clock)
    assert await other_service.month_to_date() == Money("0", "USD")


async def test_each_month_starts_from_zero_and_refunds_go_to_the_month_charged() -> None:
    clock = FakeClock(start=END_OF_JANUARY)
    tracker = SpendTracker(MemoryBackend(), "sns", clock)
    january = await tracker.reserve(CENT, None)
    clock.advance(120.0)
    assert (january, tracker.month()) == ("2024-01", "2024-02")
    assert await tracker.month_to_date() == Money("0", "USD")
    await tracker.refund(CENT, january)
    assert await tracker.month_to_date("2024-01") == Money("0", "USD")


@pytest.mark.redis
async def test_trackers_in_many_tasks_share_one_redis_counter_exactly(redis_url: str) -> None:
    backends = [RedisBackend.from_url(redis_url) for _ in range(2)]
    try:
        clock = FakeClock()
        trackers = [SpendTracker(b, f"sns-{clock.time()}", clock) for b in backends]
        outcomes = await asyncio.gather(
            *(trackers[i % 2].reserve(CENT, Money("0.25", "USD")) for i in range(60)),
            return_exceptions=True,
        )
        assert sum(not isinstance(o, BaseException) for o in outcomes) == 25
        assert await trackers[0].month_to_date() == Money("0.25", "USD")
    finally:
        for b in backends:
            await b.aclose()
