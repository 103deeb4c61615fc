"""The connector holds a slot per attempt and gives it back on every way out (api.md 26)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

from nexus_connector_async import (
    CircuitBreakerConfig,
    ConcurrencyLimit,
    ConcurrencyLimitExceeded,
    Connector,
    ConnectorError,
    Endpoint,
    MemoryBackend,
    RedisBackend,
    Response,
    RetryPolicy,
)
from nexus_connector_async.backends.redis._keys import key

EP = Endpoint.create("https://api.example.com/x", "GET")


class Gate:
    """A transport whose answers wait for `release`, recording how many are in flight."""

    def __init__(self, status: int = 200) -> None:
        self.release = asyncio.Event()
        self.in_flight = 0
        self.peak = 0
        self.status = status

    async def send(self, *args: Any, **kw: Any) -> Response:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await self.release.wait()
        finally:
            self.in_flight -= 1
        return Response(self.status, {}, b"{}")

    async def aclose(self) -> None:
        pass


async def test_fail_fast_beyond_the_limit_and_slots_come_back() -> None:
    backend = MemoryBackend()
    gate = Gate()
    conn = Connector(backend=backend, http=gate)  # type: ignore[arg-type]
    ep = EP.with_concurrency_limit(ConcurrencyLimit(2))
    calls = [asyncio.ensure_future(conn.execute("svc", ep)) for _ in range(2)]
    await asyncio.sleep(0.01)
    with pytest.raises(ConcurrencyLimitExceeded):
        await conn.execute("svc", ep)
    gate.release.set()
    await asyncio.gather(*calls)
    assert await backend.slot_usage("svc", None, 2) == (0, 2)


async def test_waiting_callers_all_complete_never_above_the_limit() -> None:
    backend = MemoryBackend()
    gate = Gate()
    conn = Connector(backend=backend, http=gate)  # type: ignore[arg-type]
    ep = EP.with_concurrency_limit(ConcurrencyLimit(3, max_wait=5.0))
    calls = [asyncio.ensure_future(conn.execute("svc", ep)) for _ in range(10)]
    await asyncio.sleep(0.01)
    gate.release.set()
    results = await asyncio.gather(*calls)
    assert all(r.status == 200 for r in results)
    assert gate.peak == 3


async def test_cancellation_leaves_no_slot_held() -> None:
    backend = MemoryBackend()
    gate = Gate()
    conn = Connector(backend=backend, http=gate)  # type: ignore[arg-type]
    ep = EP.with_concurrency_limit(ConcurrencyLimit(1, max_wait=5.0))
    holder = asyncio.ensure_future(conn.execute("svc", ep))
    waiter = asyncio.ensure_future(conn.execute("svc", ep))
    await asyncio.sleep(0.01)
    holder.cancel()
    waiter.cancel()
    await asyncio.gather(holder, waiter, return_exceptions=True)
    await asyncio.sleep(0.01)
    assert await backend.slot_usage("svc", None, 1) == (0, 1)


async def test_adaptive_cuts_on_429() -> None:
    backend = MemoryBackend()
    gate = Gate(status=429)
    gate.release.set()
    conn = Connector(backend=backend, http=gate)  # type: ignore[arg-type]
    ep = EP.with_concurrency_limit(ConcurrencyLimit(10, adaptive=True))
    r = await conn.execute(
        "svc", ep.with_retry(ep.retry.__class__(max_attempts=1)), raise_for_status=False
    )
    assert r.status == 429
    assert await backend.slot_usage("svc", None, 10) == (0, 7)


@pytest.mark.redis
async def test_on_redis_waiters_complete_and_the_vendor_never_sees_more(
    redis_url: str, redis_flush: None
) -> None:
    backend = RedisBackend.from_url(redis_url)
    gate = Gate()
    conn = Connector(backend=backend, http=gate)  # type: ignore[arg-type]
    ep = EP.with_concurrency_limit(ConcurrencyLimit(3, max_wait=5.0))
    try:
        calls = [asyncio.ensure_future(conn.execute("svc", ep)) for _ in range(12)]
        await asyncio.sleep(0.2)
        assert gate.peak == 3
        gate.release.set()
        results = await asyncio.gather(*calls)
        assert all(r.status == 200 for r in results)
        assert gate.peak == 3
        assert await backend.slot_usage("svc", None, 3) == (0, 3)
    finally:
        await backend.aclose()


class Broken:
    """A credential provider that fails: the attempt ends before its request."""

    async def get_credentials(self, service: str, tenant: str | None) -> Any:
        raise RuntimeError("no credentials today")

    async def refresh_credentials(self, service: str, tenant: str | None) -> Any:
        raise RuntimeError("no credentials today")


async def test_a_slot_taken_with_the_admission_comes_back_if_the_attempt_fails_before_sending() -> (
    None
):
    backend = MemoryBackend()
    gate = Gate()
    conn = Connector(backend=backend, http=gate, credentials=Broken())  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        await conn.execute("svc", EP.with_concurrency_limit(ConcurrencyLimit(1)))
    assert await backend.slot_usage("svc", None, 1) == (0, 1)
    assert gate.peak == 0


class Trips(Gate):
    """Records the backend's round trips so far when each request goes out."""

    def __init__(self, backend: RedisBackend) -> None:
        super().__init__()
        self.release.set()
        self.backend = backend
        self.at_send: list[int] = []

    async def send(self, *args: Any, **kw: Any) -> Response:
        self.at_send.append(self.backend.round_trips)
        return await super().send(*args, **kw)


@pytest.mark.redis
async def test_on_redis_a_limited_call_goes_out_after_one_round_trip_like_a_plain_one(
    redis_url: str, redis_flush: None
) -> None:
    """Rule 26: the slot comes with the admission; its release is queued, not waited for."""
    backend = RedisBackend.from_url(redis_url)
    trips = Trips(backend)
    limited = EP.with_concurrency_limit(ConcurrencyLimit(1))
    try:
        async with Connector(backend=backend, http=trips) as conn:  # type: ignore[arg-type]
            for ep in (EP, limited):
                await conn.execute("svc", ep)  # scripts loaded
                for _ in range(3):  # with a limit of 1, each call frees its slot for the next
                    before = backend.round_trips
                    await conn.execute("svc", ep)
                    assert trips.at_send[-1] - before == 1  # the admission alone
            assert await backend.slot_usage("svc", None, 1) == (0, 1)
    finally:
        await backend.aclose()


@pytest.mark.redis
async def test_more_waiters_than_pooled_connections_wait_their_turn_without_an_outage(
    redis_url: str, redis_flush: None
) -> None:
    """Each blocked waiter holds a connection; a full pool is our congestion, not a dead Redis."""
    client = aioredis.Redis.from_url(redis_url, max_connections=4, socket_timeout=1.0)
    backend = RedisBackend(client, owns_client=True)
    try:
        held = await backend.acquire_slot("svc", None, 1, 10.0, 0.0)
        waiters = [
            asyncio.ensure_future(backend.acquire_slot("svc", None, 1, 10.0, 20.0))
            for _ in range(8)
        ]
        # Wait until all 8 are queued (at most 3 of them block on a connection), not a sleep.
        probe = aioredis.Redis.from_url(redis_url)
        try:
            queue = f"{backend.prefix}:{{svc}}:slotq"
            async with asyncio.timeout(10):
                while await probe.zcard(queue) < 8:
                    await asyncio.sleep(0.01)
        finally:
            await probe.aclose()
        token = held.token
        for _ in range(8):
            await backend.release_slot("svc", None, token, 1)
            async with asyncio.timeout(5):
                done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            (got,) = done
            waiters.remove(got)
            assert got.result().acquired
            token = got.result().token
        assert backend.available
    finally:
        await backend.aclose()


@pytest.mark.redis
async def test_on_redis_a_failed_limited_call_releases_its_slot_inside_its_record(
    redis_url: str, redis_flush: None
) -> None:
    """Issue 17: the slot release rides in record.lua: admission + record, two round trips."""
    backend = RedisBackend.from_url(redis_url)
    gate = Gate(503)
    gate.release.set()
    ep = (
        EP.with_concurrency_limit(ConcurrencyLimit(1))
        .with_retry(RetryPolicy(max_attempts=1))
        .with_circuit_breaker(CircuitBreakerConfig(failure_threshold=1000))
    )
    try:
        async with Connector(backend=backend, http=gate) as conn:  # type: ignore[arg-type]
            with pytest.raises(ConnectorError):
                await conn.execute("svc", ep)  # scripts loaded
            for _ in range(3):
                before, commands = backend.round_trips, backend.commands
                with pytest.raises(ConnectorError):
                    await conn.execute("svc", ep)
                assert (backend.round_trips - before, backend.commands - commands) == (2, 2)
            assert await backend.slot_usage("svc", None, 1) == (0, 1)
            cb = await backend.client.hget(key(backend.prefix, "cb", "svc"), "failures")
            assert cb == b"4"
    finally:
        await backend.aclose()


@pytest.mark.redis
async def test_on_redis_a_release_hands_its_slot_to_the_head_waiter_without_another_script(
    redis_url: str, redis_flush: None
) -> None:
    """Issue 17: the woken waiter returns with the slot its release granted (FIFO)."""
    backend = RedisBackend.from_url(redis_url)
    try:
        held = await backend.acquire_slot("svc", None, 1, 10.0, 0.0)
        first = asyncio.ensure_future(backend.acquire_slot("svc", None, 1, 10.0, 5.0))
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(backend.acquire_slot("svc", None, 1, 10.0, 5.0))
        await asyncio.sleep(0.05)  # both queued and blocked, `first` ahead
        commands = backend.commands
        await backend.release_slot("svc", None, held.token, 1)
        got = await asyncio.wait_for(first, 2.0)
        assert got.acquired
        assert not second.done()
        assert backend.commands - commands == 1  # the release; no acquire after the wake-up
        assert await backend.slot_usage("svc", None, 1) == (1, 1)
        await backend.release_slot("svc", None, got.token, 1)
        assert (await asyncio.wait_for(second, 2.0)).acquired
    finally:
        await backend.aclose()
