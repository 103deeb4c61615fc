"""A batch that finds our own connection pool full waits for a connection (nothing was sent)."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from nexus_connector_async import CircuitBreakerConfig, RedisBackend
from nexus_connector_async.typing import AdmissionReason
from tests._redis_servers import RedisServer


async def test_a_batch_waits_for_a_connection_while_blocked_commands_hold_the_pool(
    redis_server: RedisServer, redis_flush: None
) -> None:
    """Blocked waiters may hold every pooled connection: that is congestion, not an outage."""
    client = aioredis.Redis.from_url(redis_server.url, max_connections=2, socket_timeout=5.0)
    backend = RedisBackend(client, owns_client=True)
    other = aioredis.Redis.from_url(redis_server.url)
    try:
        blockers = [asyncio.ensure_future(client.blpop([f"hold{i}"], timeout=5)) for i in (0, 1)]
        async with asyncio.timeout(5):  # both pooled connections are now blocked
            while len(client.connection_pool._in_use_connections) < 2:
                await asyncio.sleep(0.001)
        admission = asyncio.ensure_future(
            backend.admit("svc", None, CircuitBreakerConfig(), None, probe_lease=5.0)
        )
        for _ in range(20):  # the batch goes out and finds no free connection
            await asyncio.sleep(0)
        assert not admission.done()
        await other.rpush("hold0", "x")
        await other.rpush("hold1", "x")
        async with asyncio.timeout(5):
            assert (await admission).reason == AdmissionReason.ADMITTED
        await asyncio.gather(*blockers)
    finally:
        await other.aclose()
        await backend.aclose()
