"""Per-service batching: one service's calls of one tick to a script are ONE script call that
decides each in arrival order, exactly as separate calls would (issue 16)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from nexus_connector_async import (
    BackendUnavailable,
    CircuitBreakerConfig,
    RateLimitConfig,
    RedisBackend,
)
from nexus_connector_async.testing import FakeClock
from nexus_connector_async.typing import AdmissionReason
from tests._redis_servers import RedisServer

BREAKER = CircuitBreakerConfig(failure_threshold=1, recovery_timeout=60.0, half_open_max_calls=1)
LIMIT = RateLimitConfig(rate=1, period=3600, burst=20)


def _admit(b: RedisBackend, service: str = "svc", tenant: str | None = None, limit: Any = LIMIT):
    return b.admit(service, tenant, BREAKER, limit, probe_lease=5.0)


async def _sent(
    b: RedisBackend, calls: Callable[[], list[Awaitable[Any]]]
) -> tuple[int, list[Any]]:
    """What `calls` (issued in one tick) cost in commands sent, and their outcomes in order."""
    before = b.commands
    out = await asyncio.gather(*calls(), return_exceptions=True)
    return b.commands - before, out


async def _warm(b: RedisBackend) -> None:
    """The connection and every batched script in place (a first use costs a NOSCRIPT)."""
    await asyncio.gather(*(_admit(b, "warm", limit=None) for _ in range(2)))
    await asyncio.gather(*(b.record("warm", BREAKER, success=True) for _ in range(2)))
    claims = await asyncio.gather(*(b.claim("warm", None, k, "fp", 30.0) for k in "ab"))
    await asyncio.gather(
        *(b.complete("warm", None, k, c.token, b"", 1.0) for k, c in zip("ab", claims, strict=True))
    )


@pytest.fixture
async def backend(redis_server: RedisServer, redis_flush: None) -> Any:
    b = RedisBackend.from_url(redis_server.url)
    await _warm(b)
    yield b
    await b.aclose()


async def test_one_tick_of_one_service_is_one_command_deciding_in_arrival_order(
    backend: RedisBackend,
) -> None:
    sent, out = await _sent(backend, lambda: [_admit(backend) for _ in range(50)])
    assert sent == 1
    reasons = [a.reason for a in out]
    # The bucket holds 20: the first 20 callers get them, in the order they asked.
    assert reasons == [AdmissionReason.ADMITTED] * 20 + [AdmissionReason.RATE_LIMITED] * 30


async def test_batched_and_separate_calls_decide_the_same(backend: RedisBackend) -> None:
    def tick() -> list[Awaitable[Any]]:
        return [_admit(backend, "svc", f"t{i % 3}", limit) for i in range(30) for limit in LIMITS]

    LIMITS = [LIMIT, RateLimitConfig(rate=5, period=60, burst=4, scope="tenant"), None]
    sent, batched = await _sent(backend, tick)
    assert sent == 1  # tenants and settings differ: still one service, one script call
    backend._batch_scripts = False
    await _admit(backend, "warm", limit=None)  # the plain script in place
    await backend.client.flushdb()
    sent, separate = await _sent(backend, tick)
    assert sent == 90
    assert [a.reason for a in batched] == [a.reason for a in separate]
    # (separate scripts read Redis TIME a little later each: their waits are that much shorter)
    assert [a.wait for a in batched] == pytest.approx([a.wait for a in separate], abs=0.05)


async def test_runs_of_equal_calls_travel_once_each_and_decide_as_separate_calls(
    backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nexus_connector_async.backends.redis import _batched  # noqa: PLC0415

    packed: list[tuple[Any, ...]] = []
    pack = _batched.pack
    monkeypatch.setattr(_batched, "pack", lambda args: packed.append(args) or pack(args))
    small = RateLimitConfig(rate=1, period=3600, burst=3, name="small")
    # Arrival order A A A A B B A A A B: four runs; A holds 20 tokens, B 3.
    order = [LIMIT] * 4 + [small] * 2 + [LIMIT] * 3 + [small]

    def tick() -> list[Awaitable[Any]]:
        return [_admit(backend, "svc", limit=limit) for limit in order * 3]

    sent, batched = await _sent(backend, tick)
    assert sent == 1
    (args,) = packed
    assert args[-2:] == (b"12", b"3")  # 12 runs (the pattern thrice), 3 keys a call
    assert args[-14:-2] == (b"4", b"2", b"3", b"1") * 3
    assert len(args) == 3 + 12 * (3 + 14) + 12 + 2  # each run's keys and arguments once
    monkeypatch.setattr(backend, "_batch_scripts", False)
    await _admit(backend, "warm", limit=None)  # the plain script in place
    await backend.client.flushdb()
    sent, separate = await _sent(backend, tick)
    assert sent == 30
    assert [a.reason for a in batched] == [a.reason for a in separate]
    reasons = [a.reason for a in batched]
    assert reasons.count(AdmissionReason.ADMITTED) == 20 + 3  # A: 20 of 21 calls, B: 3 of 9


async def test_services_are_batched_apart(backend: RedisBackend) -> None:
    sent, out = await _sent(backend, lambda: [_admit(backend, f"s{i % 4}") for i in range(40)])
    assert sent == 4  # one script call per service: each one hash slot in a cluster
    assert all(a.reason == AdmissionReason.ADMITTED for a in out)


async def test_a_call_whose_script_fails_fails_alone(backend: RedisBackend) -> None:
    per_tenant = RateLimitConfig(rate=5, period=1, scope="tenant")
    # t1's bucket is not a hash: its script call fails (WRONGTYPE), the others' do not.
    await backend.client.set(backend._admission_keys("svc", "t1", per_tenant.bucket_id)[2], b"x")
    sent, out = await _sent(
        backend, lambda: [_admit(backend, "svc", f"t{i}", per_tenant) for i in range(3)]
    )
    assert sent == 1
    assert out[0].reason == AdmissionReason.ADMITTED
    assert isinstance(out[1], BackendUnavailable)
    assert "WRONGTYPE" in str(out[1])
    assert out[2].reason == AdmissionReason.ADMITTED


@pytest.fixture
async def clocked(redis_server: RedisServer, redis_flush: None) -> Any:
    """A backend on a test clock (its scripts take their time from it), and the clock."""
    clock = FakeClock()
    b = RedisBackend(aioredis.Redis.from_url(redis_server.url), owns_client=True, clock=clock)
    await _warm(b)
    yield b, clock
    await b.aclose()


async def test_a_cancelled_callers_probe_permit_goes_back(clocked: Any) -> None:
    b, clock = clocked
    await b.record("svc", BREAKER, success=False)  # open
    clock.advance(61.0)  # past recovery: the next admissions find it half-open, 1 probe
    first = asyncio.ensure_future(_admit(b, limit=None))
    second = asyncio.ensure_future(_admit(b, limit=None))
    await asyncio.sleep(0)  # both queued in one batch
    first.cancel()
    assert (await second).reason == AdmissionReason.CIRCUIT_OPEN  # the probe was first's
    # The first caller's permit, granted in a batch nobody took it from, is given back.
    async with asyncio.timeout(5):
        while (await _admit(b, limit=None)).reason != AdmissionReason.ADMITTED:
            await asyncio.sleep(0.01)


async def test_the_batched_script_comes_back_after_a_script_flush(backend: RedisBackend) -> None:
    await _sent(backend, lambda: [_admit(backend) for _ in range(3)])
    await backend.client.script_flush()
    sent, out = await _sent(backend, lambda: [_admit(backend) for _ in range(3)])
    assert sent == 2  # NOSCRIPT, then the same batch again once loaded
    assert [a.reason for a in out] == [AdmissionReason.ADMITTED] * 3


async def test_records_and_claims_of_one_tick_are_batched(backend: RedisBackend) -> None:
    sent, out = await _sent(
        backend, lambda: [backend.record("svc", BREAKER, success=True) for _ in range(10)]
    )
    assert (sent, out) == (1, [None] * 10)  # (a nil reply stays a reply of its own)
    sent, claims = await _sent(
        backend,
        lambda: [backend.claim("svc", None, k, "fp", 30.0) for k in ("a", "b", "a", "c")],
    )
    assert sent == 1
    assert [c.state for c in claims] == ["acquired", "acquired", "in_progress", "acquired"]
    sent, done = await _sent(
        backend,
        lambda: [
            backend.complete("svc", None, k, c.token, b"ok", 60.0)
            for k, c in zip("abc", (claims[0], claims[1], claims[3]), strict=True)
        ],
    )
    assert (sent, done) == (1, [True] * 3)


@pytest.mark.cluster
async def test_cluster_batches_per_service(redis_cluster: Any, redis_cluster_flush: None) -> None:
    b = RedisBackend.from_url(redis_cluster.url, cluster=True)
    try:
        for service in ("s0", "s1", "s2"):  # each master's batched script in place
            await asyncio.gather(*(_admit(b, service, limit=None) for _ in range(2)))
        sent, out = await _sent(b, lambda: [_admit(b, f"s{i % 3}") for i in range(90)])
        assert sent == 3
        assert [a.reason for a in out] == [AdmissionReason.ADMITTED] * 60 + [
            AdmissionReason.RATE_LIMITED
        ] * 30
    finally:
        await b.aclose()


async def test_a_batch_under_a_test_clock_shares_its_time(clocked: Any) -> None:
    b, _ = clocked
    limit = RateLimitConfig(rate=10, period=1, burst=2, max_wait=1.0, name="clocked")
    sent, out = await _sent(b, lambda: [_admit(b, "clocked", limit=limit) for _ in range(4)])
    assert sent == 1
    assert [a.wait for a in out] == pytest.approx([0.0, 0.0, 0.1, 0.2])


@pytest.mark.parametrize(
    "args",
    [("EVALSHA", "ab" * 20, 2, b"k1", b"", b"30.0"), ("X", 1.5, 0.1, -3), ("Y", "é", b"\xff")],
)
def test_the_c_packer_and_the_python_one_agree(args: tuple[Any, ...]) -> None:
    """Commands are packed by hiredis when it is there, else by our own RESP packer."""
    from nexus_connector_async.backends.redis import _wire  # noqa: PLC0415

    assert _wire.pack(args) == _wire._pack(args)
    assert _wire._pack(args).startswith(b"*%d\r\n" % len(args))
