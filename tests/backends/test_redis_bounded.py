"""Bounded memory on the Redis side of the process (api.md rule 24): its caches have a cap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from nexus_connector_async import CircuitBreakerConfig, RateLimitConfig, RedisBackend
from nexus_connector_async.backends._base import ADMITTED
from nexus_connector_async.backends.redis import _admission as redis_backend_module
from tests._redis_servers import RedisServer

CB = CircuitBreakerConfig()


@pytest.fixture
async def backend(redis_server: RedisServer, redis_flush: None) -> AsyncIterator[RedisBackend]:
    b = RedisBackend.from_url(redis_server.url)
    yield b
    await b.aclose()


async def test_the_per_tenant_caches_are_bounded(
    backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # api.md rule 24: key names and admission commands are cached per (service, tenant, limit);
    # tenants come and go, so neither cache may grow without bound.
    monkeypatch.setattr(redis_backend_module, "_CACHE_MAX", 50)
    limit = RateLimitConfig.per_second(10, scope="tenant")
    for chunk in range(4):
        adms = await asyncio.gather(
            *(backend.admit("svc", f"t{chunk}-{i}", CB, limit, probe_lease=5.0) for i in range(100))
        )
        assert all(a.reason == ADMITTED for a in adms)
    assert len(backend._keys) <= 50
    assert len(backend._commands) <= 50
