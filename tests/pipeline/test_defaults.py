"""Defaults that fit a web request, and error messages that show what the caller acts on."""

from __future__ import annotations

import asyncio
import pickle
import re

import pytest

import nexus_connector_async
from nexus_connector_async import (
    CircuitBreakerConfig,
    CircuitOpenError,
    Connector,
    Endpoint,
    InvalidRequest,
    RateLimitConfig,
    RateLimitExceeded,
    RequestTimeout,
    Response,
    RetryPolicy,
    Timeouts,
)
from nexus_connector_async import adapters as nexus_adapters
from nexus_connector_async.adapters import PaymentDeclined
from nexus_connector_async.testing import MockTransport, RecordedRequest

from ._stub import Stub, held, status

FAST = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0)


def test_a_connector_bounds_each_call_by_30_seconds_unless_told_otherwise() -> None:
    assert Connector().default_deadline == 30.0
    assert Connector(default_deadline=None).default_deadline is None
    with pytest.raises(InvalidRequest):
        Connector(default_deadline=0)


async def test_a_vendor_that_never_answers_is_cut_off_at_the_default_deadline(stub: Stub) -> None:
    """Three attempts of 5 s would take 15 s; the connector's deadline stops the call first."""
    gate = asyncio.Event()
    stub.default = held(gate)
    ep = Endpoint.create(stub.url(), "GET").with_timeout(Timeouts(total=5.0)).with_retry(FAST)
    async with Connector(default_deadline=0.3) as c:
        with pytest.raises(RequestTimeout) as caught:
            await asyncio.wait_for(c.execute("vendor", ep), 3.0)
        gate.set()
    error = caught.value
    assert error.attempts == 1
    assert error.elapsed is not None
    assert 0.25 <= error.elapsed < 2.0
    assert str(error).endswith(f"(1 attempt in {error.elapsed:.2g}s)")
    assert stub.count == 1


async def test_the_timeout_error_names_every_attempt_made(stub: Stub) -> None:
    async def slow(_request: object) -> object:
        await asyncio.sleep(1.0)
        raise AssertionError("unreachable")

    stub.queue(slow, slow)  # type: ignore[arg-type]
    ep = (
        Endpoint.create(stub.url(), "GET")
        .with_timeout(Timeouts(total=0.1))
        .with_retry(RetryPolicy(max_attempts=2, base_delay=0.0, max_delay=0.0))
    )
    async with Connector() as c:
        with pytest.raises(RequestTimeout) as caught:
            await c.execute("vendor", ep)
    assert caught.value.attempts == 2
    assert "within 0.1s (2 attempts in 0." in str(caught.value)


async def test_an_endpoint_or_call_deadline_overrides_the_default(stub: Stub) -> None:
    gate = asyncio.Event()
    stub.default = held(gate)
    ep = Endpoint.create(stub.url(), "GET").with_timeout(Timeouts(total=5.0)).with_retry(FAST)
    async with Connector(default_deadline=60.0) as c:
        with pytest.raises(RequestTimeout):
            await asyncio.wait_for(c.execute("vendor", ep.with_deadline(0.2)), 3.0)
        with pytest.raises(RequestTimeout):
            await asyncio.wait_for(c.execute("vendor", ep, deadline=0.2), 3.0)
        gate.set()


async def test_circuit_open_and_rate_limit_errors_show_when_to_retry(stub: Stub) -> None:
    stub.queue(status(500))
    ep = (
        Endpoint.create(stub.url(), "GET")
        .with_retry(RetryPolicy(max_attempts=1))
        .with_circuit_breaker(CircuitBreakerConfig(failure_threshold=1, recovery_timeout=30.0))
    )
    limited = Endpoint.create(stub.url(), "GET").with_rate_limit(
        RateLimitConfig.per_minute(1, burst=1)
    )
    async with Connector() as c:
        await c.execute("vendor", ep, raise_for_status=False)
        with pytest.raises(CircuitOpenError) as opened:
            await c.execute("vendor", ep)
        await c.execute("other", limited)
        with pytest.raises(RateLimitExceeded) as limit:
            await c.execute("other", limited)
    assert re.fullmatch(r"circuit open for 'vendor' \(retry after \d\ds\)", str(opened.value))
    assert 29 <= opened.value.retry_after <= 30
    assert str(limit.value).startswith("rate limit exceeded for 'other' (retry after ")
    assert "0000000" not in str(limit.value)  # rounded


def test_a_declined_payment_names_status_vendor_code_and_decline_code() -> None:
    response = Response(402, {}, b"{}")
    err = PaymentDeclined(
        response, vendor="stripe", code="card_declined", decline_code="insufficient_funds"
    )
    assert str(err) == "stripe error (HTTP 402) card_declined (decline code insufficient_funds)"
    odd = PaymentDeclined(response, vendor="stripe", code="card_declined", decline_code="a b\n")
    assert "decline code" not in str(odd)


def test_public_errors_show_their_public_module_in_tracebacks() -> None:
    for name in nexus_connector_async.__all__:
        obj = getattr(nexus_connector_async, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            assert obj.__module__ == "nexus_connector_async", name
    for name in nexus_adapters.__all__:
        obj = getattr(nexus_adapters, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            assert obj.__module__ in {"nexus_connector_async.adapters", "nexus_connector_async"}, (
                name
            )
    error = nexus_connector_async.ConnectionFailed("could not connect", sent=False)
    assert type(error).__module__ + "." + type(error).__qualname__ == (
        "nexus_connector_async.ConnectionFailed"
    )
    copy = pickle.loads(pickle.dumps(error))  # the public path resolves
    assert type(copy) is nexus_connector_async.ConnectionFailed


async def test_the_default_deadline_does_not_rebuild_the_endpoints_timeout_on_every_call() -> None:
    """Default deadline 30 s = default attempt timeout 30 s: the first attempt keeps the
    endpoint's own `Timeouts` (it used to get a new one per call, each cached by the transport
    without bound: memory that grew with every call, and a new aiohttp timeout each time)."""
    seen: list[RecordedRequest] = []

    def vendor(request: RecordedRequest) -> Response:
        seen.append(request)
        return Response(200, {}, b"{}")

    endpoint = Endpoint("https://vendor.test/v1/x", "GET")
    async with Connector(http=MockTransport(vendor)) as c:
        for _ in range(20):
            await c.execute("svc", endpoint)
        short = Endpoint("https://vendor.test/v1/x", "GET", timeout=Timeouts(total=60.0))
        await c.execute("svc", short)  # a deadline shorter than the attempt still cuts it
    assert all(r.timeout is endpoint.timeout for r in seen[:20])
    assert seen[20].timeout.total <= 30.0
