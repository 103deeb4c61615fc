"""Worker bodies for `run_in_processes`: module level, so spawned children can import them."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import aiohttp
import redis.asyncio as aioredis
import structlog

from nexus_connector_async import (
    CircuitBreakerConfig,
    Connector,
    Endpoint,
    IdempotencyKey,
    RateLimitConfig,
    RedisBackend,
)
from nexus_connector_async.backends._base import ADMITTED

CB = CircuitBreakerConfig(failure_threshold=5, recovery_timeout=30.0)


def _quiet() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))


async def server_time(client: aioredis.Redis) -> float:
    sec, usec = await client.time()
    return sec + usec / 1e6


async def hammer_bucket(
    index: int, url: str, rate: float, seconds: float, tasks: int
) -> tuple[int, float, float]:
    """Take tokens from one shared bucket as fast as possible; report (admitted, start, end)."""
    _quiet()
    limit = RateLimitConfig.per_second(rate)
    backend = RedisBackend.from_url(url)
    admitted = 0
    stop = time.monotonic() + seconds

    async def loop() -> None:
        nonlocal admitted
        while time.monotonic() < stop:
            adm = await backend.admit("hammered", None, CB, limit, probe_lease=5.0)
            admitted += adm.reason == ADMITTED

    async with aioredis.Redis.from_url(url) as client:
        start = await server_time(client)
        await asyncio.gather(*(loop() for _ in range(tasks)))
        end = await server_time(client)
    await backend.aclose()
    return admitted, start, end


async def open_or_observe(index: int, url: str, observers: int) -> int | str | None:
    """Worker 0 opens the breaker by failures; the others, told so via Redis, try to call."""
    _quiet()
    backend = RedisBackend.from_url(url)
    try:
        async with aioredis.Redis.from_url(url) as client:
            if index == 0:
                states = [await backend.record("shared", CB, success=False) for _ in range(5)]
                await client.rpush("opened", *(["1"] * observers))
                return states[-1]
            assert await client.blpop(["opened"], timeout=20) is not None
            adm = await backend.admit("shared", None, CB, None, probe_lease=5.0)
            return adm.reason
    finally:
        await backend.aclose()


async def idempotent_calls(
    index: int, redis_url: str, vendor_url: str, calls: int
) -> list[tuple[bool, bytes]]:
    """Fire `calls` concurrent calls with one idempotency key through a real Connector."""
    _quiet()
    endpoint = Endpoint.create(f"{vendor_url}/pay")
    async with Connector(backend=RedisBackend.from_url(redis_url), idempotency_wait=20.0) as c:
        key = IdempotencyKey("order-42")
        responses = await asyncio.gather(
            *(
                c.execute("vendor", endpoint, {"amount": 42}, idempotency_key=key)
                for _ in range(calls)
            )
        )
    return [(r.replayed, r.body) for r in responses]


async def die_holding_the_key(
    index: int, redis_url: str, vendor_url: str, lease: float, dedup_header: bool = False
) -> None:
    """Claim the key, get the request to the vendor, then die by SIGKILL mid-call.

    `dedup_header`: the endpoint sends the key in the vendor's idempotency header (resendable).
    """
    _quiet()
    header = "Idempotency-Key" if dedup_header else None
    endpoint = Endpoint.create(f"{vendor_url}/pay", idempotency_header=header)
    c = Connector(backend=RedisBackend.from_url(redis_url), idempotency_lease=lease)
    call = asyncio.ensure_future(
        c.execute("vendor", endpoint, {"amount": 7}, idempotency_key="order-7")
    )
    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            async with http.get(f"{vendor_url}/seen") as resp:
                if (await resp.json())["count"] >= 1:
                    break
            await asyncio.sleep(0.01)  # polling the stub, bounded by the deadline
    os.kill(os.getpid(), signal.SIGKILL)
    await call


async def die_after_completing(index: int, redis_url: str, vendor_url: str) -> None:
    """Finish the call (result stored), then die by SIGKILL before anyone hears back."""
    _quiet()
    endpoint = Endpoint.create(f"{vendor_url}/pay")
    c = Connector(backend=RedisBackend.from_url(redis_url))
    await c.execute("vendor", endpoint, {"amount": 8}, idempotency_key="order-8")
    os.kill(os.getpid(), signal.SIGKILL)
