"""Redis faults end to end, through a Connector and a real vendor stub, for each on_unavailable.

Per fault and mode: how many of a burst of calls reached the vendor, what the others raised,
that no call waited on Redis past about a second, and that the pipeline recovers (scripts
reloaded) once Redis is back. A burst is 10 concurrent calls to an endpoint limited to 3 per
minute (burst 3, no waiting), plus one call under an idempotency key.

Backend-level outage tests (kill, SIGSTOP hang, restart, script reload) live in
tests/backends/test_redis_outage.py; this file drives the whole pipeline.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import pytest
import redis

from nexus_connector_async import (
    BackendUnavailable,
    Connector,
    ConnectorError,
    Endpoint,
    RateLimitConfig,
    RedisBackend,
    RetryPolicy,
)
from nexus_connector_async.backends.redis._backend import OnUnavailable
from tests._redis_servers import RedisProcess, free_port
from tests.pipeline._stub import Stub, held

from ._servers import serve_stub

pytestmark = pytest.mark.redis

T = TypeVar("T")
MODES: list[OnUnavailable] = ["fail_closed", "fail_open", "local"]
MAX_CALL = 1.3  # "about a second"
BURST = 10
LIMIT = RateLimitConfig.per_minute(3, burst=3)

# What a burst of 10 does while Redis cannot be reached: (reached the vendor, raised).
DURING_OUTAGE = {
    "fail_closed": (0, {"BackendUnavailable": 10}),
    "fail_open": (10, {}),
    "local": (3, {"RateLimitExceeded": 7}),
}
# With Redis up (a fresh bucket): the shared limiter admits exactly its burst.
HEALTHY = (3, {"RateLimitExceeded": 7})


@pytest.fixture
async def stub() -> AsyncIterator[Stub]:
    async with serve_stub() as s:
        yield s


async def timed(aw: Awaitable[T]) -> T:
    start = time.monotonic()
    try:
        return await aw
    finally:
        elapsed = time.monotonic() - start
        assert elapsed < MAX_CALL, f"a call waited {elapsed:.2f}s on Redis"


async def burst(c: Connector, stub: Stub, service: str) -> tuple[int, dict[str, int]]:
    """10 concurrent calls: (how many reached the vendor, errors raised by type)."""
    before = stub.count
    ep = (
        Endpoint.create(stub.url(), "POST")
        .with_rate_limit(LIMIT)
        .with_retry(RetryPolicy(max_attempts=1))
    )
    results = await asyncio.gather(
        *(timed(c.execute(service, ep, {"n": i})) for i in range(BURST)), return_exceptions=True
    )
    errors = Counter(_kind(r) for r in results if isinstance(r, BaseException))
    assert all(isinstance(r, ConnectorError) for r in results if isinstance(r, BaseException))
    return stub.count - before, dict(errors)


def _kind(exc: BaseException) -> str:
    # The backend's RedisUnreachable is a BackendUnavailable: count the documented type.
    return "BackendUnavailable" if isinstance(exc, BackendUnavailable) else type(exc).__name__


async def until_back(backend: RedisBackend) -> None:
    """Poll, with a deadline, until the backend talks to Redis again."""
    deadline = time.monotonic() + 10.0
    while True:
        try:
            await timed(backend.set("probe", b"1"))
            if backend.available and await timed(backend.get("probe")) == b"1":
                return
        except BackendUnavailable:
            pass
        assert time.monotonic() < deadline, "the backend did not reconnect"
        await asyncio.sleep(0.05)  # poll interval, bounded by the deadline


async def keyed(c: Connector, stub: Stub, key: str) -> Any:
    ep = Endpoint(stub.url(), "POST", idempotency_header="Idempotency-Key")
    return await timed(c.execute("keyed", ep, {"amount": 1}, idempotency_key=key))


@pytest.mark.parametrize("mode", MODES)
async def test_redis_unreachable_at_start_up(mode: OnUnavailable, stub: Stub) -> None:
    backend = RedisBackend.from_url(f"redis://127.0.0.1:{free_port()}/0", on_unavailable=mode)
    async with Connector(backend=backend) as c:
        assert await burst(c, stub, f"start-{mode}") == DURING_OUTAGE[mode]
        with pytest.raises(BackendUnavailable):  # idempotency never degrades silently
            await keyed(c, stub, "k-start")
    assert stub.count == DURING_OUTAGE[mode][0]


@pytest.mark.parametrize("mode", MODES)
async def test_redis_killed_mid_load_then_restarted_with_its_scripts_flushed(
    mode: OnUnavailable, stub: Stub, restartable_redis: RedisProcess
) -> None:
    backend = RedisBackend.from_url(restartable_redis.url, on_unavailable=mode)
    async with Connector(backend=backend) as c:
        assert await burst(c, stub, "svc") == HEALTHY
        # Three keyed payments are at the vendor when Redis dies: each still gets its answer.
        gate = asyncio.Event()
        healthy = stub.default
        stub.default = held(gate)
        in_flight = [asyncio.ensure_future(keyed(c, stub, f"k-{i}")) for i in range(3)]
        for _ in range(200):
            if stub.count >= HEALTHY[0] + 3:
                break
            await asyncio.sleep(0.01)  # until the three arrived, bounded
        restartable_redis.kill()
        gate.set()
        answers = await asyncio.gather(*in_flight)
        assert [a.status for a in answers] == [200, 200, 200]
        stub.default = healthy

        assert await burst(c, stub, "svc") == DURING_OUTAGE[mode]
        with pytest.raises(BackendUnavailable):
            await keyed(c, stub, "k-outage")

        restartable_redis.start()  # a new process: no scripts, no data
        with restartable_redis.client() as direct:
            assert direct.script_exists(backend._scripts.admit.sha) == [False]
        await until_back(backend)
        assert await burst(c, stub, "svc-after") == HEALTHY
        first = await keyed(c, stub, "k-after")
        again = await keyed(c, stub, "k-after")
        assert (first.replayed, again.replayed) == (False, True)
        with restartable_redis.client() as direct:  # the admission script came back (a
            # burst's concurrent calls use its batched form)
            admit = backend._scripts.admit
            shas = (admit.sha, backend._batched[id(admit)].sha)
            assert True in direct.script_exists(*shas)


@pytest.mark.parametrize("mode", MODES)
async def test_a_slow_redis_debug_sleep_costs_a_call_about_a_second_and_then_recovers(
    mode: OnUnavailable, stub: Stub, restartable_redis: RedisProcess
) -> None:
    """`DEBUG SLEEP 2` freezes the server (Redis 6.2 allows DEBUG) while the burst runs."""
    backend = RedisBackend.from_url(restartable_redis.url, on_unavailable=mode)
    async with Connector(backend=backend) as c:
        assert await burst(c, stub, "warm") == HEALTHY
        sleeper = redis.Redis.from_url(restartable_redis.url, socket_timeout=10)
        asleep = threading.Event()

        def freeze() -> None:
            asleep.set()
            sleeper.execute_command("DEBUG", "SLEEP", "2")

        thread = threading.Thread(target=freeze)
        thread.start()
        try:
            await asyncio.to_thread(asleep.wait, 5.0)
            await asyncio.sleep(0.1)  # let the DEBUG command reach the server
            start = time.monotonic()
            assert await burst(c, stub, "svc") == DURING_OUTAGE[mode]
            assert time.monotonic() - start < MAX_CALL
        finally:
            await asyncio.to_thread(thread.join, 10.0)
            sleeper.close()
        await until_back(backend)
        assert await burst(c, stub, "svc-after") == HEALTHY
        assert (await keyed(c, stub, "k-slow")).replayed is False
