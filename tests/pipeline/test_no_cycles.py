"""A call leaves no reference cycle behind: cyclic garbage is freed only by the collector,
whose passes over every live object cost a busy client more than the call itself (a timer
closure per keyed call once cost ~12 objects and tens of microseconds a call)."""

from __future__ import annotations

import gc

import pytest

from nexus_connector_async import Connector, Endpoint, IdempotencyKey, RedisBackend
from nexus_connector_async.backends._base import Backend
from nexus_connector_async.backends._memory import MemoryBackend
from tests._redis_servers import RedisServer

from ._stub import Stub


async def _garbage_per_call(backend: Backend, stub: Stub) -> float:
    """Objects in reference cycles that 20 keyed POSTs and 20 GETs leave, per call."""
    keyed = Endpoint.create(stub.url(), "POST", idempotency_header="Idempotency-Key")
    plain = Endpoint.create(stub.url(), "GET")
    async with Connector(backend=backend) as c:
        await c.execute("svc", keyed, {"a": 1}, idempotency_key=IdempotencyKey("warm"))
        await c.execute("svc", plain)
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            for i in range(20):
                key = IdempotencyKey(f"k{i}")
                await c.execute("svc", keyed, {"a": 1}, idempotency_key=key)
                await c.execute("svc", plain)
            gc.collect()
            garbage = len(gc.garbage)
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
    return garbage / 40


async def test_calls_on_the_memory_backend_leave_no_cycles(stub: Stub) -> None:
    assert await _garbage_per_call(MemoryBackend(), stub) < 0.5


@pytest.mark.redis
async def test_calls_on_redis_leave_no_cycles(
    redis_server: RedisServer, redis_flush: None, stub: Stub
) -> None:
    assert await _garbage_per_call(RedisBackend.from_url(redis_server.url), stub) < 0.5
