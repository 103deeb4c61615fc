"""Circuit breaker and rate limiter as the pipeline applies them (memory backend, fake clock)."""

from __future__ import annotations

import asyncio

import pytest

from nexus_connector_async import (
    CircuitBreakerConfig,
    CircuitOpenError,
    Connector,
    Endpoint,
    HttpStatusError,
    InvalidRequest,
    MemoryBackend,
    RateLimitConfig,
    RateLimitExceeded,
    RequestTimeout,
    RetryPolicy,
    Timeouts,
)
from nexus_connector_async.testing import FakeClock, capture_logs

from ._stub import Stub, held, status

ONE_SHOT = RetryPolicy(max_attempts=1)


def endpoint(stub: Stub, **breaker: float) -> Endpoint:
    cfg = CircuitBreakerConfig(**{"failure_threshold": 3, "recovery_timeout": 10.0, **breaker})  # type: ignore[arg-type]
    return Endpoint.create(stub.url(), "GET").with_retry(ONE_SHOT).with_circuit_breaker(cfg)


async def fail(connector: Connector, ep: Endpoint, times: int) -> None:
    for _ in range(times):
        with pytest.raises(HttpStatusError):
            await connector.execute("vendor", ep)


async def test_client_errors_do_not_count_as_vendor_failures(
    connector: Connector, stub: Stub
) -> None:
    ep = endpoint(stub)
    stub.queue(*[status(400)] * 5, status(429))
    await fail(connector, ep, 6)
    assert connector.backend.breaker_state("vendor") == "closed"  # type: ignore[attr-defined]
    assert (await connector.execute("vendor", ep)).status == 200


async def test_the_breaker_opens_after_consecutive_failures_and_rejects_without_sending(
    connector: Connector, stub: Stub, clock: FakeClock
) -> None:
    ep = endpoint(stub)
    stub.queue(status(500), status(503), status(200), *[status(502)] * 3)
    await fail(connector, ep, 2)
    await connector.execute("vendor", ep)  # a success resets the consecutive count
    await fail(connector, ep, 3)
    clock.advance(4.0)
    with pytest.raises(CircuitOpenError) as err:
        await connector.execute("vendor", ep)
    assert isinstance(err.value.retry_after, float)
    assert err.value.retry_after == pytest.approx(6.0)
    assert stub.count == 6


async def test_timeouts_count_as_failures(connector: Connector, stub: Stub) -> None:
    gate = asyncio.Event()
    ep = endpoint(stub, failure_threshold=2).with_timeout(Timeouts(total=0.05))
    stub.queue(held(gate), held(gate))
    for _ in range(2):
        with pytest.raises(RequestTimeout):
            await connector.execute("vendor", ep)
    gate.set()
    with pytest.raises(CircuitOpenError):
        await connector.execute("vendor", ep)


async def test_half_open_lets_exactly_the_allowed_probes_through_then_closes(
    connector: Connector, stub: Stub, clock: FakeClock
) -> None:
    ep = endpoint(stub, half_open_max_calls=2, success_threshold=2)
    stub.queue(*[status(500)] * 3)
    await fail(connector, ep, 3)
    clock.advance(10.0)
    gate = asyncio.Event()
    stub.queue(held(gate), held(gate))
    calls = [asyncio.create_task(connector.execute("vendor", ep)) for _ in range(5)]
    done, pending = await asyncio.wait(calls, timeout=2.0, return_when=asyncio.FIRST_COMPLETED)
    while len(done) < 3:  # the three without a permit are refused at once
        more, pending = await asyncio.wait(pending, timeout=2.0, return_when="FIRST_COMPLETED")
        done |= more
    assert all(isinstance(t.exception(), CircuitOpenError) for t in done)
    gate.set()
    results = await asyncio.gather(*pending)
    assert [r.status for r in results] == [200, 200]
    assert stub.count == 5
    assert connector.backend.breaker_state("vendor") == "closed"  # type: ignore[attr-defined]


async def test_a_failed_probe_reopens_the_circuit_for_a_full_recovery_timeout(
    connector: Connector, stub: Stub, clock: FakeClock
) -> None:
    ep = endpoint(stub)
    stub.queue(*[status(500)] * 4)
    await fail(connector, ep, 3)
    clock.advance(10.0)
    await fail(connector, ep, 1)  # the probe fails
    clock.advance(9.9)
    with pytest.raises(CircuitOpenError) as err:
        await connector.execute("vendor", ep)
    assert err.value.retry_after == pytest.approx(0.1)
    clock.advance(0.1)
    assert (await connector.execute("vendor", ep)).status == 200


async def test_breakers_of_two_services_are_independent(connector: Connector, stub: Stub) -> None:
    ep = endpoint(stub)
    stub.queue(*[status(500)] * 3)
    await fail(connector, ep, 3)
    with pytest.raises(CircuitOpenError):
        await connector.execute("vendor", ep)
    assert (await connector.execute("other", ep)).status == 200


async def test_fail_fast_limiter_admits_exactly_the_burst_then_refills(
    connector: Connector, stub: Stub, clock: FakeClock
) -> None:
    ep = Endpoint.create(stub.url(), "GET").with_rate_limit(RateLimitConfig.per_second(5))
    for _ in range(5):
        await connector.execute("vendor", ep)
    with pytest.raises(RateLimitExceeded) as err:
        await connector.execute("vendor", ep)
    assert err.value.retry_after == pytest.approx(0.2)
    clock.advance(0.4)
    await connector.execute("vendor", ep)
    await connector.execute("vendor", ep)
    with pytest.raises(RateLimitExceeded):
        await connector.execute("vendor", ep)
    assert stub.count == 7


async def test_waiting_limiter_spaces_calls_at_the_configured_rate(stub: Stub) -> None:
    clock = FakeClock(autojump=True)
    limit = RateLimitConfig.per_second(5, burst=5, max_wait=2.0)
    ep = Endpoint.create(stub.url(), "GET").with_rate_limit(limit)
    async with Connector(clock=clock) as c:
        await asyncio.gather(*(c.execute("vendor", ep) for _ in range(15)))
        assert stub.count == 15
        assert clock.monotonic() == pytest.approx(2.0)  # 5 at once, then 10 at 5/s
        with pytest.raises(RateLimitExceeded):  # the bucket is 11 tokens in debt now
            await asyncio.gather(*(c.execute("vendor", ep) for _ in range(11)))


async def test_a_tenant_scoped_bucket_is_separate_per_tenant(
    connector: Connector, stub: Stub
) -> None:
    limit = RateLimitConfig.per_minute(2, scope="tenant")
    ep = Endpoint.create(stub.url(), "GET").with_rate_limit(limit)
    for tenant in ("a", "b"):
        for _ in range(2):
            await connector.execute("vendor", ep, tenant_id=tenant)
    with pytest.raises(RateLimitExceeded) as err:
        await connector.execute("vendor", ep, tenant_id="a")
    assert err.value.retry_after == pytest.approx(30.0)


async def test_an_endpoint_without_rate_limit_takes_no_token(
    connector: Connector, stub: Stub
) -> None:
    limited = Endpoint.create(stub.url(), "GET").with_rate_limit(RateLimitConfig.per_hour(1))
    free = Endpoint.create(stub.url(), "GET")
    for _ in range(10):
        await connector.execute("vendor", free)
    await connector.execute("vendor", limited)  # the one token is still there
    with pytest.raises(RateLimitExceeded):
        await connector.execute("vendor", limited)


async def test_a_429_with_retry_after_pauses_the_whole_service(
    connector: Connector, stub: Stub, clock: FakeClock
) -> None:
    ep = Endpoint.create(stub.url(), "GET").with_retry(ONE_SHOT)
    stub.queue(status(429, **{"Retry-After": "2"}))
    with pytest.raises(HttpStatusError):
        await connector.execute("vendor", ep)
    with pytest.raises(RateLimitExceeded) as err:
        await connector.execute("vendor", ep)
    assert err.value.retry_after == pytest.approx(2.0)
    clock.advance(2.0)
    assert (await connector.execute("vendor", ep)).status == 200
    assert stub.count == 2


async def test_shadow_mode_blocks_nothing_and_reports_every_would_be_block(stub: Stub) -> None:
    clock = FakeClock()
    ep = Endpoint.create(stub.url(), "GET").with_rate_limit(RateLimitConfig.per_second(2))
    async with Connector(clock=clock, shadow_services={"vendor"}) as c:
        with capture_logs() as logs:
            for _ in range(5):
                await c.execute("vendor", ep)
    assert stub.count == 5
    assert [e["reason"] for e in logs if e["event"] == "nexus.shadow.would_block"] == [
        "rate_limited"
    ] * 3


async def test_retry_budget_caps_retries_to_its_floor_under_a_5xx_storm(stub: Stub) -> None:
    clock = FakeClock()
    policy = RetryPolicy(
        max_attempts=3, base_delay=0.0, max_delay=0.0, budget_ratio=0.0, budget_min_per_second=2.0
    )
    cfg = CircuitBreakerConfig(failure_threshold=1000)
    ep = Endpoint.create(stub.url(), "GET").with_retry(policy).with_circuit_breaker(cfg)
    stub.default = status(503)
    async with Connector(clock=clock, backend=MemoryBackend(clock=clock)) as c:
        for _ in range(10):
            with pytest.raises(HttpStatusError):
                await c.execute("vendor", ep)
    assert stub.count == 10 + 2  # ten first attempts, two retries from the floor


async def test_a_hostile_retry_after_pauses_the_service_only_up_to_the_cap(stub: Stub) -> None:
    clock = FakeClock()
    ep = Endpoint.create(stub.url(), "GET").with_retry(ONE_SHOT)
    stub.queue(status(429, **{"Retry-After": "1000000000"}))
    async with Connector(clock=clock, max_shared_pause=60.0) as c:
        with pytest.raises(HttpStatusError):
            await c.execute("vendor", ep)
        with pytest.raises(RateLimitExceeded) as err:
            await c.execute("vendor", ep)
        assert err.value.retry_after == pytest.approx(60.0)
        clock.advance(60.0)
        assert (await c.execute("vendor", ep)).status == 200


async def test_each_endpoint_limit_of_a_service_holds_beside_a_faster_one(
    connector: Connector, stub: Stub
) -> None:
    # api.md rule 21: a per_minute(2) endpoint beside a per_second(50) one of the same service.
    slow = Endpoint.create(stub.url("/v1/slow"), "GET").with_rate_limit(
        RateLimitConfig.per_minute(2)
    )
    fast = Endpoint.create(stub.url("/v1/fast"), "GET").with_rate_limit(
        RateLimitConfig.per_second(50)
    )
    outcomes = []
    for _ in range(20):
        try:
            outcomes.append((await connector.execute("vendor", slow)).status)
        except RateLimitExceeded:
            outcomes.append(429)
        assert (await connector.execute("vendor", fast)).status == 200
    assert outcomes.count(200) == 2


def test_a_bucket_name_is_validated() -> None:
    assert RateLimitConfig.per_minute(2, name="search-v2.x_1").name == "search-v2.x_1"
    for bad in ("", "a b", "a:b", "a/b", "{x}", "x" * 65, 7):
        with pytest.raises(InvalidRequest, match=r"RateLimitConfig\.name"):
            RateLimitConfig.per_minute(2, name=bad)  # type: ignore[arg-type]


async def test_keyed_calls_feed_the_breaker_from_their_last_attempt(stub: Stub) -> None:
    """A keyed call's last attempt is recorded with the key's settle (issue 16): its failures
    still open the breaker, and a half-open probe's success still closes it."""
    clock = FakeClock()
    ep = Endpoint.create(stub.url(), "POST", idempotency_header="Idempotency-Key")
    ep = ep.with_retry(ONE_SHOT).with_circuit_breaker(
        CircuitBreakerConfig(failure_threshold=3, recovery_timeout=10.0)
    )
    async with Connector(clock=clock, backend=MemoryBackend(clock=clock)) as c:
        for i in range(3):
            stub.queue(status(500))
            with pytest.raises(HttpStatusError):
                await c.execute("vendor", ep, {"n": i}, idempotency_key=f"order-{i}")
        with pytest.raises(CircuitOpenError):
            await c.execute("vendor", ep, {"n": 3}, idempotency_key="order-3")
        clock.advance(10.0)
        for i in range(4, 6):  # the probe's success closes it (success_threshold 1): no refusal
            response = await c.execute("vendor", ep, {"n": i}, idempotency_key=f"order-{i}")
            assert response.status == 200
        assert c.backend.breaker_state("vendor") == "closed"  # type: ignore[attr-defined]
    assert stub.count == 5
