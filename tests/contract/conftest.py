"""The backend contract: one `backend` fixture over memory, Redis and Redis Cluster.

Every test in this directory runs against memory and, for each server kind of the matrix
(Redis 6.2, Redis 7, Valkey 9), a single server and a 3-master cluster, with a `FakeClock`
driving time (the Redis scripts take it as their time override), so the same assertions prove
the same semantics everywhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from nexus_connector_async import Backend, MemoryBackend, RedisBackend
from nexus_connector_async.testing import FakeClock
from tests.conftest import ServerPool, matrix_kinds

BACKENDS = [
    pytest.param(("memory", ""), id="memory"),
    *(
        pytest.param((shape, kind), id=f"{shape}-{kind}", marks=getattr(pytest.mark, shape))
        for shape in ("redis", "cluster")
        for kind in matrix_kinds()
    ),
]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[Backend]:
    """A fresh, empty backend of each kind, on the test's fake clock."""
    b: Backend
    shape, kind = request.param
    pool: ServerPool = request.getfixturevalue("server_pool")
    if shape == "memory":
        b = MemoryBackend(clock=clock)
    elif shape == "redis":
        server = pool.single(kind)
        server.flush()
        b = RedisBackend.from_url(server.url, clock=clock)
    else:
        cluster = pool.cluster(kind)
        cluster.flushall()
        b = RedisBackend.from_url(cluster.url, cluster=True, clock=clock)
    yield b
    await b.aclose()


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Let the loop run until `predicate()` holds (a real-time deadline guards against hangs)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.001)


async def queued(backend: Any, n: int, service: str = "svc", timeout: float = 5.0) -> None:
    """Run the loop until exactly `n` slot waiters of `service` are queued (not a guessed sleep).

    The queue is read where each backend keeps it: the memory pool's waiters, or the Redis
    queue zset (through the backend's own client, so a cluster routes it by hash tag).
    """
    async with asyncio.timeout(timeout):
        while await _queue_length(backend, service) != n:
            await asyncio.sleep(0.001)


async def _queue_length(backend: Any, service: str) -> int:
    if isinstance(backend, MemoryBackend):
        pool = backend._slot_pools._pools.get((service, None))
        return 0 if pool is None else len(pool.queue)
    (_, queue, _), _ = backend._slot_keys(service, None)
    return int(await backend.client.zcard(queue))
