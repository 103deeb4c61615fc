"""Admissions carry an `AdmissionReason` and typed probe permits; the fallback is a strategy."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from nexus_connector_async import CircuitBreakerConfig, MemoryBackend, RedisBackend
from nexus_connector_async.backends._base import (
    AdmissionReason,
    MemoryPermit,
    ProbePermit,
    RedisPermit,
)
from nexus_connector_async.backends.redis._fallback import FailClosed, FailOpen, Local, fallback
from nexus_connector_async.backends.redis._health import RedisUnreachable
from nexus_connector_async.testing import FakeClock
from tests._redis_servers import RedisProcess

CB = CircuitBreakerConfig(failure_threshold=1, recovery_timeout=1.0)


async def _half_open_admission(backend: MemoryBackend | RedisBackend, clock: FakeClock) -> str:
    await backend.record("svc", CB, success=False)
    refused = await backend.admit("svc", None, CB, None, probe_lease=5.0)
    assert refused.reason is AdmissionReason.CIRCUIT_OPEN
    clock.advance(1.5)
    probing = await backend.admit("svc", None, CB, None, probe_lease=5.0)
    assert probing.reason is AdmissionReason.ADMITTED
    assert probing.half_opened
    return probing.probe


async def test_memory_probe_permits_are_memory_permits() -> None:
    clock = FakeClock()
    backend = MemoryBackend(clock=clock)
    probe = await _half_open_admission(backend, clock)
    assert isinstance(probe, MemoryPermit)
    assert await backend.record("svc", CB, success=True, probe=probe) == "closed"


@pytest.fixture
async def redis_backend(
    redis_server: RedisProcess, redis_flush: None
) -> AsyncIterator[tuple[RedisBackend, FakeClock]]:
    clock = FakeClock()
    b = RedisBackend.from_url(redis_server.url, prefix="typed", clock=clock)
    yield b, clock
    await b.aclose()


@pytest.mark.redis
async def test_redis_probe_permits_are_redis_permits(
    redis_backend: tuple[RedisBackend, FakeClock],
) -> None:
    backend, clock = redis_backend
    probe = await _half_open_admission(backend, clock)
    assert isinstance(probe, RedisPermit)
    assert not isinstance(probe, MemoryPermit)
    assert await backend.renew_probe("svc", probe, 5.0)
    assert await backend.record("svc", CB, success=True, probe=probe) == "closed"


def test_a_permit_is_an_immutable_str_its_class_telling_who_granted_it() -> None:
    permit = MemoryPermit(7)
    assert permit == "7"
    assert isinstance(permit, ProbePermit)
    with pytest.raises(AttributeError):
        permit.origin = "redis"  # type: ignore[attr-defined]


async def test_each_mode_is_one_strategy() -> None:
    memory = MemoryBackend()
    exc = RedisUnreachable("down")
    assert isinstance(fallback("fail_closed", memory), FailClosed)
    assert type(fallback("fail_open", memory)) is FailOpen
    assert isinstance(fallback("local", memory), Local)
    with pytest.raises(RedisUnreachable):
        fallback("fail_closed", memory).memory(exc)
    assert fallback("fail_open", memory).memory(exc) is memory
    asked: list[MemoryBackend] = []

    async def ask(local: MemoryBackend) -> None:
        asked.append(local)

    await fallback("fail_open", memory).pause(exc, ask)
    assert asked == []  # fail_open enforces nothing: the local store is never asked
    await fallback("local", memory).pause(exc, ask)
    assert asked == [memory]
