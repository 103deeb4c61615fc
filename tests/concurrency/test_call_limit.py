"""`Connector.call(..., concurrency_limit=)`: an SDK call holds a fleet-wide slot per attempt."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from nexus_connector_async import (
    ConcurrencyLimit,
    ConcurrencyLimitExceeded,
    Connector,
    IdempotencyKey,
    OutcomeUnknown,
)


class Gauge:
    """Counts the calls of `fn` running at once; they finish when `release` is set."""

    def __init__(self) -> None:
        self.now = self.peak = self.calls = 0
        self.release = asyncio.Event()

    async def fn(self) -> str:
        self.calls += 1
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await self.release.wait()
        finally:
            self.now -= 1
        return "ok"


async def _until(predicate: Callable[[], bool]) -> None:
    for _ in range(200):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never held")


async def test_at_most_max_in_flight_calls_run_at_once_the_rest_wait_for_a_slot() -> None:
    gauge = Gauge()
    limit = ConcurrencyLimit(3, max_wait=5.0)
    async with Connector() as connector:
        calls = [
            asyncio.ensure_future(
                connector.call("sdk", "sdk.Op", gauge.fn, concurrency_limit=limit)
            )
            for _ in range(10)
        ]
        await _until(lambda: gauge.now == 3)
        await asyncio.sleep(0.05)  # the others stay queued while the three hold their slots
        assert (gauge.now, gauge.calls) == (3, 3)
        gauge.release.set()
        assert await asyncio.gather(*calls) == ["ok"] * 10
    assert gauge.peak == 3


async def test_without_a_free_slot_fail_fast_raises_and_never_calls_fn() -> None:
    gauge = Gauge()
    limit = ConcurrencyLimit(1)  # max_wait=0: fail fast
    async with Connector() as connector:
        first = asyncio.ensure_future(
            connector.call("sdk", "sdk.Op", gauge.fn, concurrency_limit=limit)
        )
        await _until(lambda: gauge.now == 1)
        with pytest.raises(ConcurrencyLimitExceeded):
            await connector.call("sdk", "sdk.Op", gauge.fn, concurrency_limit=limit)
        assert gauge.calls == 1
        gauge.release.set()
        assert await first == "ok"
        # The slot came back: the next call runs.
        assert await connector.call("sdk", "sdk.Op", gauge.fn, concurrency_limit=limit) == "ok"


async def test_a_keyed_call_refused_a_slot_was_never_sent_so_its_key_is_not_unknown() -> None:
    gauge = Gauge()
    limit = ConcurrencyLimit(1)
    key = IdempotencyKey("sms-1")
    async with Connector() as connector:
        held = asyncio.ensure_future(
            connector.call("sdk", "sdk.Op", gauge.fn, concurrency_limit=limit)
        )
        await _until(lambda: gauge.now == 1)
        with pytest.raises(ConcurrencyLimitExceeded):
            await connector.call(
                "sdk", "sdk.Op", gauge.fn, idempotency_key=key, concurrency_limit=limit
            )
        gauge.release.set()
        await held
        try:
            again = await connector.call(
                "sdk", "sdk.Op", gauge.fn, idempotency_key=key, concurrency_limit=limit
            )
        except OutcomeUnknown:  # pragma: no cover - the failure this test guards against
            pytest.fail("a call that never ran left its key unknown")
        assert again == "ok"
    assert gauge.calls == 2


async def test_the_slot_is_given_back_when_fn_raises_or_is_cancelled() -> None:
    limit = ConcurrencyLimit(1)

    async def boom() -> str:
        raise RuntimeError("sdk bug")

    gauge = Gauge()
    async with Connector() as connector:
        with pytest.raises(RuntimeError):
            await connector.call("sdk", "sdk.Op", boom, concurrency_limit=limit)
        stuck = asyncio.ensure_future(
            connector.call("sdk", "sdk.Op", gauge.fn, concurrency_limit=limit)
        )
        await _until(lambda: gauge.now == 1)
        stuck.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stuck
        await asyncio.sleep(0)  # the release is queued without waiting
        gauge.release.set()
        assert await connector.call("sdk", "sdk.Op", gauge.fn, concurrency_limit=limit) == "ok"


async def test_a_call_without_a_limit_takes_no_slot() -> None:
    gauge = Gauge()
    gauge.release.set()
    async with Connector() as connector:
        results = await asyncio.gather(
            *(connector.call("sdk", "sdk.Op", gauge.fn) for _ in range(5))
        )
    assert results == ["ok"] * 5
