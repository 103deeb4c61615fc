"""Several OS processes sharing one Redis: exact counts for buckets, breakers and idempotency."""

from __future__ import annotations

import asyncio
import time

import pytest

from nexus_connector_async import Connector, Endpoint, OutcomeUnknown, RedisBackend
from nexus_connector_async.backends._base import CIRCUIT_OPEN
from tests._multiproc import WorkerError, run_in_processes
from tests._redis_servers import RedisProcess
from tests.multiprocess import _workers
from tests.multiprocess._stub import running_vendor

pytestmark = [pytest.mark.multiprocess, pytest.mark.redis]


def test_four_processes_never_exceed_a_100_per_second_bucket_and_use_98_percent_of_it(
    redis_server: RedisProcess, redis_flush: None
) -> None:
    rate = 100.0
    outcomes = run_in_processes(_workers.hammer_bucket, 4, redis_server.url, rate, 1.5, 4)
    results = [o.unwrap() for o in outcomes]
    admitted = sum(r[0] for r in results)
    starts, ends = [r[1] for r in results], [r[2] for r in results]
    # Server time bounds the window: a full bucket (100) plus 100 per second of it. Never more
    # than that over the whole run...
    allowed = rate + rate * (max(ends) - min(starts))
    assert admitted <= allowed
    # ...and at least 98% of it over the part of the run when all four were hammering (a
    # process scheduled late on a busy machine must not count as an idle bucket).
    saturated = rate + rate * (min(ends) - max(starts))
    print(f"admitted {admitted}; at most {allowed:.1f}; saturated window {saturated:.1f}")
    assert admitted >= 0.98 * saturated, (admitted, saturated)


def test_a_breaker_opened_in_one_process_rejects_calls_in_all_others(
    redis_server: RedisProcess, redis_flush: None
) -> None:
    outcomes = run_in_processes(_workers.open_or_observe, 4, redis_server.url, 3)
    assert [o.unwrap() for o in outcomes] == ["open", CIRCUIT_OPEN, CIRCUIT_OPEN, CIRCUIT_OPEN]


async def test_one_idempotency_key_from_100_calls_in_4_processes_sends_one_request(
    redis_server: RedisProcess, redis_flush: None
) -> None:
    async with running_vendor(delay=0.3) as vendor:
        outcomes = await asyncio.to_thread(
            run_in_processes, _workers.idempotent_calls, 4, redis_server.url, vendor.url, 25
        )
        results = [r for o in outcomes for r in o.unwrap()]
        assert vendor.count == 1
    assert len(results) == 100
    assert len({body for _, body in results}) == 1
    assert sorted(replayed for replayed, _ in results) == [False] + [True] * 99


async def test_a_killed_workers_lease_ends_and_then_the_key_is_free(
    redis_server: RedisProcess, redis_flush: None
) -> None:
    """A resendable call (the vendor dedups by its header): after the lease, a retry resends."""
    lease = 1.0
    async with running_vendor() as vendor:
        vendor.hang_first = True
        endpoint = Endpoint.create(f"{vendor.url}/pay", idempotency_header="Idempotency-Key")
        (outcome,) = await asyncio.to_thread(
            run_in_processes,
            _workers.die_holding_the_key,
            1,
            redis_server.url,
            vendor.url,
            lease,
            True,
        )
        assert isinstance(outcome.error, WorkerError)  # SIGKILLed while holding the key
        backend = RedisBackend.from_url(redis_server.url)
        async with Connector(backend=backend, idempotency_wait=5.0) as c:
            start = time.monotonic()
            response = await c.execute("vendor", endpoint, {"amount": 7}, idempotency_key="order-7")
            waited = time.monotonic() - start
        assert response.status == 200
        assert response.replayed is False
        assert vendor.count == 2
    assert waited < lease + 0.5


async def test_a_killed_workers_call_the_vendor_cannot_dedup_is_never_sent_again(
    redis_server: RedisProcess, redis_flush: None
) -> None:
    """Rule 19: no idempotency header, so the dead worker's key ends its lease as unknown."""
    lease = 1.0
    async with running_vendor() as vendor:
        vendor.hang_first = True
        endpoint = Endpoint.create(f"{vendor.url}/pay")
        (outcome,) = await asyncio.to_thread(
            run_in_processes, _workers.die_holding_the_key, 1, redis_server.url, vendor.url, lease
        )
        assert isinstance(outcome.error, WorkerError)  # SIGKILLed while at the vendor
        backend = RedisBackend.from_url(redis_server.url)
        async with Connector(backend=backend, idempotency_wait=5.0) as c:
            start = time.monotonic()
            with pytest.raises(OutcomeUnknown) as err:
                await c.execute("vendor", endpoint, {"amount": 7}, idempotency_key="order-7")
            waited = time.monotonic() - start
            assert err.value.idempotency_key == "order-7"
            assert vendor.count == 1
            # Reconciled with the vendor (say the charge did not happen): forget, then resend.
            assert await c.forget("vendor", "order-7") is True
            response = await c.execute("vendor", endpoint, {"amount": 7}, idempotency_key="order-7")
        assert (response.status, response.replayed, vendor.count) == (200, False, 2)
    assert waited < lease + 0.5


async def test_a_retry_after_a_worker_died_post_completion_does_not_send_again(
    redis_server: RedisProcess, redis_flush: None
) -> None:
    async with running_vendor() as vendor:
        (outcome,) = await asyncio.to_thread(
            run_in_processes, _workers.die_after_completing, 1, redis_server.url, vendor.url
        )
        assert isinstance(outcome.error, WorkerError)
        endpoint = Endpoint.create(f"{vendor.url}/pay")
        async with Connector(backend=RedisBackend.from_url(redis_server.url)) as c:
            response = await c.execute("vendor", endpoint, {"amount": 8}, idempotency_key="order-8")
        assert response.replayed is True
        assert vendor.count == 1
