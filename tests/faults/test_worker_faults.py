"""A worker SIGKILLed in the middle of an idempotent payment (real processes, real Redis).

The vendor (`VendorSimulator`) dedups on `Idempotency-Key` like Stripe and counts what it
actually charged. Whatever the point of death, the key is free again once the dead worker's
lease ends, a retry with the same key gets the original charge, and the vendor charged once.

Related, in the Redis suite: `tests/multiprocess/test_redis_workers.py` (a worker killed
while its request is at a vendor without dedup; a worker killed after storing).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from nexus_connector_async import (
    Connector,
    IdempotencyInProgress,
    IdempotencyKey,
    RedisBackend,
)
from nexus_connector_async.testing import VendorSimulator
from tests._multiproc import WorkerError, run_in_processes
from tests._redis_servers import RedisServer

from . import _workers

pytestmark = [pytest.mark.multiprocess, pytest.mark.redis]

LEASE = 1.0
# Sent by the dead worker / charged by the vendor, per point of death.
EXPECTED = {
    "before_send": {"requests": 1, "charges": 1, "replayed": False},
    "after_send": {"requests": 2, "charges": 1, "replayed": False},
    "after_store": {"requests": 1, "charges": 1, "replayed": True},
}


@pytest.mark.parametrize("point", _workers.KILL_POINTS)
async def test_a_payment_whose_worker_was_sigkilled_is_charged_exactly_once(
    redis_server: RedisServer, redis_flush: None, point: str
) -> None:
    key = f"pay-{point}"
    async with VendorSimulator() as vendor:
        (outcome,) = await asyncio.to_thread(
            run_in_processes,
            _workers.pay_and_die,
            1,
            redis_server.url,
            vendor.url,
            point,
            key,
            LEASE,
            timeout=60.0,
        )
        assert isinstance(outcome.error, WorkerError)  # died by SIGKILL, no result
        sent_by_worker = len(vendor.requests)
        ep = _workers.payment(vendor.url)
        async with Connector(backend=RedisBackend.from_url(redis_server.url)) as c:
            if point != "after_store":
                # The dead worker's lease still holds the key: no second payment goes out.
                c.idempotency_wait = 0.0
                with pytest.raises(IdempotencyInProgress):
                    await c.execute("vendor", ep, {"amount": 1000}, idempotency_key=key)
                assert len(vendor.requests) == sent_by_worker
            c.idempotency_wait = 5.0
            start = time.monotonic()
            response = await c.execute(
                "vendor", ep, {"amount": 1000}, idempotency_key=IdempotencyKey(key)
            )
            waited = time.monotonic() - start
            again = await c.execute("vendor", ep, {"amount": 1000}, idempotency_key=key)
        counts = {"requests": len(vendor.requests), "charges": vendor.charges}
    assert response.status == 200
    assert response.json()["id"] == "ch_000001"  # the one charge, whoever made it
    assert {**counts, "replayed": response.replayed} == EXPECTED[point]
    assert (again.replayed, again.body) == (True, response.body)
    assert waited < LEASE + 0.5  # recoverable once the lease ended, not later
