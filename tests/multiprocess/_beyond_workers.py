"""Worker bodies for test_beyond.py (run by `run_in_processes`, so module level).

Workers meet at Redis barriers (`barrier`), never at sleeps. Each one returns plain tuples and
lists, which pickle back to the test process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
import redis.asyncio as aioredis
import structlog

from nexus_connector_async import (
    AdmissionRejected,
    CircuitBreakerConfig,
    CircuitOpenError,
    CircuitStateChanged,
    Connector,
    Endpoint,
    Event,
    HttpStatusError,
    RateLimitConfig,
    RateLimitExceeded,
    RedisBackend,
    RetryPolicy,
)
from nexus_connector_async.testing import FakeClock

PAUSE = 2.0  # the stub's Retry-After, in seconds
_BARRIER_TIMEOUT = 20  # seconds; a lost worker fails the test instead of hanging it


def _quiet() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))


def _client(url: str, cluster: bool) -> aioredis.Redis | aioredis.RedisCluster:
    if cluster:
        return aioredis.RedisCluster.from_url(url)
    return aioredis.Redis.from_url(url)


async def barrier(
    client: aioredis.Redis | aioredis.RedisCluster,
    name: str,
    parties: int,
    on_last: Callable[[], Awaitable[object]] | None = None,
) -> None:
    """Return once `parties` workers have arrived; the last one runs `on_last` first."""
    if await client.incr(f"{name}:arrived") == parties:
        if on_last is not None:
            await on_last()
        await client.rpush(f"{name}:go", *(["1"] * parties))
    assert await client.blpop([f"{name}:go"], timeout=_BARRIER_TIMEOUT) is not None


# -- 1. shared backpressure ---------------------------------------------------------------------


async def shared_backpressure(
    index: int, redis_url: str, vendor_url: str, calls: int
) -> tuple[int | None, list[float], list[int], list[int]]:
    """Worker 0 draws the 429; then every worker calls the paused service and another one.

    Returns (worker 0's 429 status or None, retry_after of each fail-fast rejection, statuses
    from the other service during the pause, statuses of the calls that waited the pause out).
    """
    _quiet()
    fast = RateLimitConfig.per_second(1000.0)  # max_wait=0: a paused call fails fast
    patient = RateLimitConfig.per_second(1000.0, max_wait=PAUSE + 3.0)  # waits it out
    pay = Endpoint.create(f"{vendor_url}/pay").with_rate_limit(fast)
    pay_patiently = pay.with_rate_limit(patient)
    sms = Endpoint.create(f"{vendor_url}/sms").with_rate_limit(fast)
    first: int | None = None
    async with (
        Connector(backend=RedisBackend.from_url(redis_url)) as connector,
        aioredis.Redis.from_url(redis_url) as client,
    ):
        if index == 0:
            try:
                await connector.execute("pay", pay, {"n": 0})
            except HttpStatusError as exc:  # an unkeyed POST: never resent
                first = exc.response.status
            # The pause is in Redis before execute() returns: release the others now.
            await client.rpush("paused", *(["1"] * 3))
        else:
            assert await client.blpop(["paused"], timeout=_BARRIER_TIMEOUT) is not None

        async def fail_fast() -> float:
            try:
                await connector.execute("pay", pay, {"n": 1})
            except RateLimitExceeded as exc:
                return exc.retry_after
            raise AssertionError("a call to the paused service was admitted")

        async def other() -> int:
            return (await connector.execute("sms", sms, {"n": 2})).status

        rejected = await asyncio.gather(*(fail_fast() for _ in range(calls)))
        others = await asyncio.gather(*(other() for _ in range(calls)))
        waited = await asyncio.gather(
            *(connector.execute("pay", pay_patiently, {"n": 3}) for _ in range(calls))
        )
    return first, list(rejected), list(others), [r.status for r in waited]


# -- 2. retry budget under a 5xx storm -----------------------------------------------------------


async def budget_storm(
    index: int, redis_url: str, vendor_url: str, calls: int, floor: float
) -> tuple[list[tuple[int, int]], int]:
    """`calls` concurrent GETs against a vendor answering 503, with a shared retry budget.

    The backend's clock is a `FakeClock` that never moves, so every process sits at the same
    fake instant: the budget holds only its initial second of floor and never refills.
    Returns ((status, attempts) of each call, retries refused by the budget).
    """
    _quiet()
    retry = RetryPolicy(
        max_attempts=3,
        base_delay=0.0,
        max_delay=0.0,
        budget_ratio=0.0,
        budget_min_per_second=floor,
    )
    endpoint = (
        Endpoint.create(f"{vendor_url}/storm", "GET")
        .with_retry(retry)
        .with_circuit_breaker(CircuitBreakerConfig(failure_threshold=10_000))
    )
    events: list[Event] = []
    backend = RedisBackend.from_url(redis_url, clock=FakeClock())
    async with Connector(backend=backend, events=[events.append]) as connector:

        async def one() -> tuple[int, int]:
            try:
                await connector.execute("storm", endpoint)
            except HttpStatusError as exc:
                return exc.response.status, exc.response.attempts
            raise AssertionError("the stub answers 503 to everything")

        attempts = await asyncio.gather(*(one() for _ in range(calls)))
    refused = sum(
        isinstance(e, AdmissionRejected) and e.reason == "retry_budget" and e.retry for e in events
    )
    return list(attempts), refused


# -- 3. breaker transitions reported once fleet-wide --------------------------------------------

# The same breaker, read with two recovery timeouts (the timeout is the caller's setting, applied
# at admission). Storm calls use a long one, so a storm call that a busy machine schedules late
# can never become a half-open probe and re-open the breaker against the still failing stub;
# the recovery phase then sees the breaker half-open 0.5 s after it opened.
STORM_BREAKER = CircuitBreakerConfig(failure_threshold=5, recovery_timeout=30.0)
RECOVERY_BREAKER = CircuitBreakerConfig(failure_threshold=5, recovery_timeout=0.5)
NO_RETRY = RetryPolicy(max_attempts=1)


async def breaker_fleet(
    index: int, redis_url: str, vendor_url: str, calls: int, cluster: bool, parties: int
) -> tuple[list[int | str], list[str], int]:
    """Storm the service with failing calls, heal the stub, then poll until one call succeeds.

    Returns (storm outcomes: a status or the error's type name, this process's breaker
    transitions in order, CircuitOpenError rejections while waiting for recovery).
    """
    _quiet()
    storm = (
        Endpoint.create(f"{vendor_url}/flaky", "GET")
        .with_retry(NO_RETRY)
        .with_circuit_breaker(STORM_BREAKER)
    )
    recovery = storm.with_circuit_breaker(RECOVERY_BREAKER)
    events: list[Event] = []
    backend = RedisBackend.from_url(redis_url, cluster=cluster)
    async with (
        Connector(backend=backend, events=[events.append]) as connector,
        _client(redis_url, cluster) as client,
        aiohttp.ClientSession() as http,
    ):

        async def failing() -> int | str:
            try:
                await connector.execute("flaky", storm)
            except HttpStatusError as exc:
                return exc.response.status
            except CircuitOpenError as exc:
                return type(exc).__name__
            raise AssertionError("the stub fails every storm call")

        outcomes = await asyncio.gather(*(failing() for _ in range(calls)))

        async def heal() -> None:
            async with http.post(f"{vendor_url}/_flag/healed") as resp:
                assert resp.status == 200

        # Every storm call has finished everywhere before the stub heals.
        await barrier(client, "stormed", parties, on_last=heal)
        rejections = 0
        async with asyncio.timeout(5.0):
            while True:  # polling with a deadline: the recovery time is real time
                try:
                    response = await connector.execute("flaky", recovery)
                except CircuitOpenError as exc:
                    rejections += 1
                    # Half-open with the probe taken: retry_after is the probe's lease end.
                    await asyncio.sleep(min(exc.retry_after, 0.02))
                    continue
                assert response.status == 200
                break
    transitions = [e.state for e in events if isinstance(e, CircuitStateChanged)]
    return list(outcomes), transitions, rejections
