"""The backend contract: one `backend` fixture over memory, Redis and Redis Cluster.

Every test in this directory runs against all three with a `FakeClock` driving time (the Redis
scripts take it as their time override), so the same assertions prove the same semantics.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from nexus_connector_async import MemoryBackend, RedisBackend
from nexus_connector_async.backends._base import Backend
from nexus_connector_async.testing import FakeClock

BACKENDS = [
    "memory",
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("cluster", marks=pytest.mark.cluster),
]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[Backend]:
    """A fresh, empty backend of each kind, on the test's fake clock."""
    b: Backend
    if request.param == "memory":
        b = MemoryBackend(clock=clock)
    elif request.param == "redis":
        server = request.getfixturevalue("redis_server")
        server.flush()
        b = RedisBackend.from_url(server.url, clock=clock)
    else:
        cluster = request.getfixturevalue("redis_cluster")
        cluster.flushall()
        b = RedisBackend.from_url(cluster.url, cluster=True, clock=clock)
    yield b
    await b.aclose()


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Let the loop run until `predicate()` holds (a real-time deadline guards against hangs)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.001)
