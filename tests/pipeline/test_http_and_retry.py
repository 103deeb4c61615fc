"""HTTP attempts, timeouts and retries through the real pipeline against a loopback stub."""

from __future__ import annotations

import asyncio
import email.utils
import random
import time

import pytest
from aiohttp import web

from nexus_connector_async import (
    ConnectionFailed,
    Connector,
    Endpoint,
    HttpStatusError,
    IdempotencyKey,
    RequestTimeout,
    RetryPolicy,
    Timeouts,
)
from nexus_connector_async._retry import backoff, parse_retry_after
from nexus_connector_async.adapters.stripe._adapter import should_retry
from nexus_connector_async.testing import FakeClock, capture_logs, set_testing

from ._stub import Stub, held, status

FAST = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0)


async def test_a_slow_vendor_raises_request_timeout_and_is_not_resent(
    connector: Connector, stub: Stub
) -> None:
    gate = asyncio.Event()
    stub.queue(held(gate))
    ep = Endpoint.create(stub.url(), "POST").with_timeout(Timeouts(total=0.2))
    with pytest.raises(RequestTimeout):
        await connector.execute("vendor", ep, {"a": 1})
    gate.set()
    assert stub.count == 1  # a POST without a key is never resent after it went out


async def test_a_get_is_retried_until_success_and_attempts_are_counted(
    connector: Connector, stub: Stub
) -> None:
    stub.queue(status(503), status(502), status(200, b'{"n":3}'))
    ep = Endpoint.create(stub.url(), "GET").with_retry(FAST)
    response = await connector.execute("vendor", ep, {"q": "x"})
    assert response.json() == {"n": 3}
    assert response.attempts == 3
    assert stub.count == 3
    assert stub.requests[0]["path"] == "/v1/things?q=x"


async def test_retries_stop_at_max_attempts_and_the_last_response_is_raised(
    connector: Connector, stub: Stub
) -> None:
    stub.queue(*[status(503)] * 5)
    ep = Endpoint.create(stub.url(), "PUT").with_retry(FAST)
    with pytest.raises(HttpStatusError) as err:
        await connector.execute("vendor", ep, {"a": 1})
    assert err.value.response.status == 503
    assert err.value.response.attempts == 3
    assert stub.count == 3


async def test_a_post_without_key_is_not_retried_after_the_request_was_sent(
    connector: Connector, stub: Stub
) -> None:
    stub.queue(status(503), status(200))
    ep = Endpoint.create(stub.url(), "POST").with_retry(FAST)
    with pytest.raises(HttpStatusError):
        await connector.execute("vendor", ep, {"amount": 100})
    assert stub.count == 1


async def test_a_post_with_an_idempotency_key_is_retried_with_the_same_vendor_header(
    connector: Connector, stub: Stub
) -> None:
    stub.queue(status(500), status(200, b'{"id":"ch_1"}'))
    ep = Endpoint(stub.url(), "POST", body="form", retry=FAST, idempotency_header="Idempotency-Key")
    response = await connector.execute("vendor", ep, {"amount": 100}, idempotency_key="order-1")
    assert response.json() == {"id": "ch_1"}
    assert stub.count == 2
    assert {r["headers"]["Idempotency-Key"] for r in stub.requests} == {"order-1"}
    assert stub.requests[0]["body"] == b"amount=100"


async def test_a_connection_reset_after_sending_is_not_retried_for_an_unkeyed_post(
    connector: Connector, stub: Stub
) -> None:
    async def reset(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.abort()
        return web.Response()

    stub.queue(reset, status(200))
    ep = Endpoint.create(stub.url(), "POST").with_retry(FAST)
    with pytest.raises(ConnectionFailed) as err:
        await connector.execute("vendor", ep, {"a": 1})
    assert err.value.sent is True
    assert stub.count == 1


async def test_a_refused_connection_is_retried_even_for_a_post_because_nothing_was_sent(
    connector: Connector, unused_tcp_port: int
) -> None:
    ep = Endpoint.create(f"http://127.0.0.1:{unused_tcp_port}/x", "POST").with_retry(FAST)
    c = Connector(clock=FakeClock())
    try:
        with capture_logs() as logs, pytest.raises(ConnectionFailed) as err:
            await c.execute("vendor", ep, {"a": 1})
    finally:
        await c.close()
    assert err.value.sent is False
    assert [e["attempt"] for e in logs if e["event"] == "nexus.http.attempt"] == [1, 2, 3]


async def test_retry_after_seconds_is_honoured_and_capped_by_max_delay(stub: Stub) -> None:
    clock = FakeClock(instant=True)
    stub.queue(
        status(429, **{"Retry-After": "2"}), status(503, **{"Retry-After": "120"}), status(200)
    )
    policy = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=5.0)
    ep = Endpoint.create(stub.url(), "GET").with_retry(policy)
    async with Connector(clock=clock) as c:
        response = await c.execute("vendor", ep)
    assert response.status == 200
    backoffs = [s for s in clock.slept if s >= 1.0]
    assert backoffs[0] == pytest.approx(2.0)
    assert backoffs[1] == pytest.approx(5.0)  # 120 s capped at max_delay


def test_retry_after_accepts_an_http_date() -> None:
    now = time.time()
    header = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(header, now) == pytest.approx(30, abs=1.0)
    assert parse_retry_after("garbage", now) is None
    assert parse_retry_after("-5", now) == 0.0


def test_backoff_is_full_jitter_within_the_exponential_ceiling() -> None:
    random.seed(7)
    policy = RetryPolicy(base_delay=0.1, max_delay=1.0)
    for retry in range(1, 8):
        ceiling = min(1.0, 0.1 * 2 ** (retry - 1))
        delays = [backoff(policy, retry) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # jitter spreads over the whole range
        assert min(delays) < ceiling * 0.2
    assert backoff(RetryPolicy(base_delay=0.1, max_delay=1.0, jitter=False), 3) == 0.4


def test_set_testing_turns_backoff_off() -> None:
    set_testing(True)
    try:
        assert backoff(RetryPolicy(base_delay=1.0, max_delay=9.0), 3) == 0.0
    finally:
        set_testing(False)


async def test_stripe_should_retry_false_stops_a_retry_and_true_forces_one(
    connector: Connector, stub: Stub
) -> None:
    """api.md: `RetryPolicy` honours `Stripe-Should-Retry` over the status (its default hint)."""
    assert FAST.retry_hint is should_retry
    stub.queue(status(503, **{"Stripe-Should-Retry": "false"}))
    ep = Endpoint.create(stub.url(), "GET").with_retry(FAST)
    with pytest.raises(HttpStatusError):
        await connector.execute("vendor", ep)
    assert stub.count == 1
    stub.queue(status(409, **{"Stripe-Should-Retry": "true"}), status(200))
    assert (await connector.execute("vendor", ep)).status == 200
    assert stub.count == 3


async def test_a_deadline_stops_retries_that_could_not_finish_in_time(stub: Stub) -> None:
    clock = FakeClock(instant=True)
    stub.queue(status(503, **{"Retry-After": "3"}), status(200))
    ep = Endpoint.create(stub.url(), "GET").with_retry(RetryPolicy(max_attempts=3, max_delay=10))
    async with Connector(clock=clock) as c:
        with pytest.raises(HttpStatusError):
            await c.execute("vendor", ep, deadline=2.0)
    assert stub.count == 1


async def test_raise_for_status_false_returns_the_error_response(
    connector: Connector, stub: Stub
) -> None:
    stub.queue(status(404, b'{"error":"nope"}'))
    ep = Endpoint.create(stub.url(), "GET")
    response = await connector.execute("vendor", ep, raise_for_status=False)
    assert (response.status, response.json(), response.replayed) == (404, {"error": "nope"}, False)


async def test_idempotency_key_objects_and_strings_are_interchangeable(
    connector: Connector, stub: Stub
) -> None:
    ep = Endpoint.create(stub.url(), "POST")
    first = await connector.execute("vendor", ep, {"a": 1}, idempotency_key=IdempotencyKey("k-1"))
    second = await connector.execute("vendor", ep, {"a": 1}, idempotency_key="k-1")
    assert (first.replayed, second.replayed, stub.count) == (False, True, 1)
