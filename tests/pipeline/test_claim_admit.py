"""A keyed call on Redis claims its key and admits its first attempt in one script call, so an
idempotent call costs two (claim + admission, then the stored result) instead of three; what
the two calls in a row decided stays exactly what the one script decides."""

from __future__ import annotations

import pytest

from nexus_connector_async import (
    CircuitBreakerConfig,
    CircuitOpenError,
    ConcurrencyLimit,
    Connector,
    Endpoint,
    HttpStatusError,
    IdempotencyKey,
    RateLimitConfig,
    RedisBackend,
    RetryPolicy,
)
from nexus_connector_async.typing import AdmissionReason, AdmitAsk
from tests._redis_servers import RedisServer

from ._stub import Stub, status

pytestmark = pytest.mark.redis
BREAKER = CircuitBreakerConfig(failure_threshold=1, recovery_timeout=60.0)


def _endpoint(stub: Stub) -> Endpoint:
    return Endpoint.create(stub.url(), "POST", idempotency_header="Idempotency-Key")


async def _pay(c: Connector, endpoint: Endpoint, key: str) -> int:
    response = await c.execute(
        "vendor", endpoint, {"amount": 5}, idempotency_key=IdempotencyKey(key)
    )
    return response.status


async def test_an_idempotent_call_costs_two_script_calls_and_a_replay_one(
    redis_server: RedisServer, redis_flush: None, stub: Stub
) -> None:
    backend = RedisBackend.from_url(redis_server.url)
    async with Connector(backend=backend) as c:
        endpoint = _endpoint(stub)
        await _pay(c, endpoint, "warm")  # connection and scripts in place
        before = backend.commands
        for i in range(5):
            assert await _pay(c, endpoint, f"order-{i}") == 200
        assert backend.commands - before == 10  # claim + admission, then the result
        before = backend.commands
        assert await _pay(c, endpoint, "order-0") == 200  # replayed: no admission taken
        assert backend.commands - before == 1
    assert stub.count == 6


async def test_an_open_circuit_refuses_the_claimed_call_and_frees_its_key(
    redis_server: RedisServer, redis_flush: None, stub: Stub
) -> None:
    backend = RedisBackend.from_url(redis_server.url)
    async with Connector(backend=backend) as c:
        endpoint = _endpoint(stub).with_circuit_breaker(BREAKER)
        await backend.record("vendor", BREAKER, success=False)  # open, for a minute
        with pytest.raises(CircuitOpenError):
            await _pay(c, endpoint, "order-1")
        claim = await backend.claim("vendor", None, IdempotencyKey("order-1").digest, "x", 5.0)
        assert claim.state == "acquired"  # released: nothing was sent, a later call may go
    assert stub.count == 0


async def test_a_retry_is_admitted_on_its_own(
    redis_server: RedisServer, redis_flush: None, stub: Stub
) -> None:
    backend = RedisBackend.from_url(redis_server.url)
    stub.queue(status(503))
    async with Connector(backend=backend) as c:
        endpoint = _endpoint(stub).with_retry(RetryPolicy(max_attempts=2, base_delay=0.001))
        assert await _pay(c, endpoint, "order-1") == 200
    assert stub.count == 2


async def test_the_slot_and_token_taken_with_the_claim_are_the_attempts(
    redis_server: RedisServer, redis_flush: None, stub: Stub
) -> None:
    backend = RedisBackend.from_url(redis_server.url)
    limit = RateLimitConfig(rate=1, period=3600, burst=3)
    async with Connector(backend=backend) as c:
        endpoint = (
            _endpoint(stub)
            .with_rate_limit(limit)
            .with_concurrency_limit(ConcurrencyLimit(2, max_wait=1.0))
        )
        for i in range(3):
            assert await _pay(c, endpoint, f"order-{i}") == 200
        # Three tokens, one per call (none taken twice); every slot back once the call ended.
        adm = await backend.admit("vendor", None, BREAKER, limit, probe_lease=5.0)
        assert adm.reason == AdmissionReason.RATE_LIMITED
        assert (await backend.slot_usage("vendor", None, 2))[0] == 0
    assert stub.count == 3


async def test_claim_admit_decides_what_claim_then_admit_would(
    redis_server: RedisServer, redis_flush: None
) -> None:
    backend = RedisBackend.from_url(redis_server.url)
    limit = RateLimitConfig(rate=1, period=3600, burst=1)
    ask = AdmitAsk(BREAKER, limit, 5.0)
    try:
        claim, adm = await backend.claim_admit("svc", None, "k1", "fp", 30.0, ask)
        assert claim.state == "acquired"
        assert adm is not None
        assert adm.reason == AdmissionReason.ADMITTED
        claim, adm = await backend.claim_admit("svc", None, "k2", "fp", 30.0, ask)
        assert claim.state == "acquired"
        assert adm is not None
        assert adm.reason == AdmissionReason.RATE_LIMITED  # the one token went to k1
        claim, adm = await backend.claim_admit("svc", None, "k1", "fp", 30.0, ask)
        assert (claim.state, adm) == ("in_progress", None)  # not taken: nothing admitted
    finally:
        await backend.aclose()


async def test_a_failing_keyed_call_records_its_last_attempt_with_the_keys_settle(
    redis_server: RedisServer, redis_flush: None, stub: Stub
) -> None:
    """Issue 16, item 2: the last attempt's breaker record leaves with the key's settle, so a
    keyed call that fails costs two round trips (claim + admission; record + settle), not
    three; the breaker still counts every failure (threshold 3: the fourth call is refused)."""
    backend = RedisBackend.from_url(redis_server.url)
    breaker = CircuitBreakerConfig(failure_threshold=3, recovery_timeout=60.0)
    async with Connector(backend=backend) as c:
        endpoint = (
            _endpoint(stub).with_circuit_breaker(breaker).with_retry(RetryPolicy(max_attempts=1))
        )
        await _pay(c, endpoint, "warm")  # connection and scripts in place
        trips, commands = backend.round_trips, backend.commands
        for i in range(3):
            stub.queue(status(500))
            with pytest.raises(HttpStatusError):
                await _pay(c, endpoint, f"order-{i}")
        assert backend.round_trips - trips == 6
        assert backend.commands - commands == 9  # each write is still its own script call
        with pytest.raises(CircuitOpenError):
            await _pay(c, endpoint, "order-4")
    assert stub.count == 4
