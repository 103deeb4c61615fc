"""A misbehaving vendor, injected for real on a loopback server: exact counts for each fault.

Each test counts what the vendor actually received, what the caller got (a typed
`ConnectorError` every time, never a library exception), and that no call outlived its timeout.
"""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import Awaitable
from typing import TypeVar

import pytest
from aiohttp import web

from nexus_connector_async import (
    CircuitBreakerConfig,
    CircuitOpenError,
    ConnectionFailed,
    Connector,
    Endpoint,
    HttpStatusError,
    InvalidRequest,
    InvalidResponse,
    MemoryBackend,
    RateLimitExceeded,
    RequestTimeout,
    ResponseTooLarge,
    RetryPolicy,
    Timeouts,
)
from nexus_connector_async.testing import FakeClock
from tests.pipeline._stub import Stub, held, status

T = TypeVar("T")

FAST = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0)
BREAKER = CircuitBreakerConfig(failure_threshold=5, recovery_timeout=30.0)
MiB = 1024 * 1024


async def within(seconds: float, aw: Awaitable[T]) -> T:
    """Await `aw`, failing the test if it took longer than `seconds` of real time."""
    start = time.monotonic()
    try:
        return await aw
    finally:
        elapsed = time.monotonic() - start
        assert elapsed < seconds, f"took {elapsed:.2f}s, allowed {seconds}s"


def breaker_state(c: Connector, service: str) -> str:
    assert isinstance(c.backend, MemoryBackend)
    return c.backend.breaker_state(service)


# -- 5xx storm -----------------------------------------------------------------------------------


async def test_a_5xx_storm_opens_the_breaker_after_5_requests_and_one_probe_closes_it(
    stub: Stub, clock: FakeClock
) -> None:
    """503 to everything: 3 + 2 requests reach the vendor, then nothing until the probe."""
    stub.default = status(503, b'{"error":"overloaded"}')
    ep = Endpoint.create(stub.url(), "GET").with_retry(FAST).with_circuit_breaker(BREAKER)
    async with Connector(clock=clock) as c:
        with pytest.raises(HttpStatusError) as first:
            await within(2.0, c.execute("vendor", ep))
        assert (first.value.status, first.value.response.attempts) == (503, 3)
        # Failures 4 and 5 open the breaker; the third attempt is refused, the 503 stands.
        with pytest.raises(HttpStatusError) as second:
            await within(2.0, c.execute("vendor", ep))
        assert (second.value.status, second.value.response.attempts) == (503, 2)
        assert breaker_state(c, "vendor") == "open"
        refused = 0
        for _ in range(20):
            with pytest.raises(CircuitOpenError) as err:
                await c.execute("vendor", ep)
            assert err.value.retry_after == pytest.approx(30.0)
            refused += 1
        assert (stub.count, refused) == (5, 20)

        clock.advance(30.0)  # recovery timeout: one probe goes; the vendor is back
        stub.default = status(200, b'{"ok":true}')
        assert (await c.execute("vendor", ep)).status == 200
        assert breaker_state(c, "vendor") == "closed"
    assert stub.count == 6


async def test_a_5xx_storm_never_resends_an_unkeyed_post(stub: Stub, clock: FakeClock) -> None:
    """A POST without an idempotency key may have been processed: one request per call."""
    stub.default = status(500)
    ep = Endpoint.create(stub.url(), "POST").with_retry(FAST).with_circuit_breaker(BREAKER)
    async with Connector(clock=clock) as c:
        errors = []
        for _ in range(7):
            try:
                await c.execute("vendor", ep, {"amount": 1})
            except (HttpStatusError, CircuitOpenError) as exc:
                errors.append(type(exc).__name__)
    assert errors == ["HttpStatusError"] * 5 + ["CircuitOpenError"] * 2
    assert stub.count == 5


# -- 429 with Retry-After ------------------------------------------------------------------------


async def test_a_429_with_retry_after_is_waited_out_then_retried_once(stub: Stub) -> None:
    clock = FakeClock(instant=True)
    stub.queue(status(429, **{"Retry-After": "2"}), status(200, b'{"id":"ch_1"}'))
    ep = Endpoint(
        stub.url(),
        "POST",
        retry=RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=10.0),
        idempotency_header="Idempotency-Key",
    )
    async with Connector(clock=clock) as c:
        response = await within(2.0, c.execute("vendor", ep, {"a": 1}, idempotency_key="k-429"))
        assert (response.status, response.attempts) == (200, 2)
        assert breaker_state(c, "vendor") == "closed"  # a 429 is not a vendor failure
    assert stub.count == 2
    assert clock.slept == [pytest.approx(2.0)]
    assert {r["headers"]["Idempotency-Key"] for r in stub.requests} == {"k-429"}


async def test_a_429_pauses_the_whole_service_until_its_retry_after(
    stub: Stub, clock: FakeClock
) -> None:
    """Shared backpressure: after a 429 saying 30 s, no call to the service goes out for 30 s."""
    stub.queue(status(429, **{"Retry-After": "30"}))
    ep = Endpoint.create(stub.url(), "GET").with_retry(RetryPolicy(max_attempts=1))
    async with Connector(clock=clock) as c:
        with pytest.raises(HttpStatusError) as err:
            await c.execute("vendor", ep)
        assert err.value.status == 429
        for _ in range(10):
            with pytest.raises(RateLimitExceeded) as limited:
                await c.execute("vendor", ep)
            assert limited.value.retry_after == pytest.approx(30.0)
        assert stub.count == 1
        assert (await c.execute("other", ep)).status == 200  # other services are not paused
        clock.advance(30.0)
        assert (await c.execute("vendor", ep)).status == 200
        assert breaker_state(c, "vendor") == "closed"
    assert stub.count == 3


# -- slower than the timeout ---------------------------------------------------------------------


async def test_a_vendor_slower_than_the_timeout_raises_request_timeout_per_attempt(
    stub: Stub, clock: FakeClock
) -> None:
    gate = asyncio.Event()
    stub.default = held(gate)
    ep = Endpoint.create(stub.url(), "GET").with_timeout(Timeouts(total=0.2)).with_retry(FAST)
    async with Connector(clock=clock) as c:
        with pytest.raises(RequestTimeout) as err:
            await within(1.5, c.execute("vendor", ep))
        assert err.value.sent is True
        # An unkeyed POST that timed out may have been processed: not resent.
        post = Endpoint.create(stub.url(), "POST").with_timeout(Timeouts(total=0.2))
        with pytest.raises(RequestTimeout):
            await within(1.0, c.execute("vendor", post, {"a": 1}))
        gate.set()
    assert stub.count == 3 + 1


async def test_a_deadline_bounds_all_attempts_of_a_slow_vendor_together(stub: Stub) -> None:
    """The deadline is measured on the connector's clock: the real one here."""
    gate = asyncio.Event()
    stub.default = held(gate)
    ep = Endpoint.create(stub.url(), "GET").with_timeout(Timeouts(total=5.0)).with_retry(FAST)
    async with Connector() as c:
        with pytest.raises(RequestTimeout):
            await within(0.8, c.execute("vendor", ep, deadline=0.3))
        gate.set()
    assert stub.count == 1


# -- connection reset mid-body -------------------------------------------------------------------


def reset_after(prefix: bytes, *, chunked: bool) -> object:
    """A handler that starts a 1000-byte (or chunked) answer, sends `prefix`, then resets."""

    async def run(request: web.Request) -> web.StreamResponse:
        headers = {"Content-Type": "application/json"}
        if not chunked:
            headers["Content-Length"] = "1000"
        resp = web.StreamResponse(status=200, headers=headers)
        if chunked:
            resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(prefix)
        assert request.transport is not None
        request.transport.abort()
        return resp

    return run


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_connection_reset_mid_body_is_connection_failed_and_resent_only_when_keyed(
    stub: Stub, clock: FakeClock, chunked: bool
) -> None:
    stub.default = reset_after(b'{"id":"ch_1","amount":', chunked=chunked)  # type: ignore[assignment]
    post = Endpoint(stub.url(), "POST", retry=FAST, idempotency_header="Idempotency-Key")
    async with Connector(clock=clock) as c:
        with pytest.raises(ConnectionFailed) as unkeyed:
            await within(2.0, c.execute("vendor", post, {"a": 1}))
        assert unkeyed.value.sent is True
        assert stub.count == 1
        with pytest.raises(ConnectionFailed):
            await within(2.0, c.execute("vendor", post, {"a": 1}, idempotency_key="k-reset"))
        assert stub.count == 1 + 3
        assert breaker_state(c, "vendor") == "closed"  # 4 failures < threshold 5
        # The key was released (transient failure): once the vendor behaves, it goes through.
        stub.default = status(200, b'{"id":"ch_1"}')
        ok = await c.execute("vendor", post, {"a": 1}, idempotency_key="k-reset")
        assert (ok.status, ok.replayed) == (200, False)
    assert stub.count == 5


# -- bodies that are not what they claim ---------------------------------------------------------


async def test_malformed_json_is_returned_as_bytes_and_json_raises_invalid_response(
    stub: Stub, clock: FakeClock
) -> None:
    stub.default = status(200, b'{"id": "ch_1", "amount": ')
    ep = Endpoint.create(stub.url(), "POST").with_retry(FAST)
    async with Connector(clock=clock) as c:
        response = await c.execute("vendor", ep, {"a": 1}, idempotency_key="k-json")
        with pytest.raises(InvalidResponse, match="not valid JSON") as err:
            response.json()
        assert "truncated" in str(err.value)
        replay = await c.execute("vendor", ep, {"a": 1}, idempotency_key="k-json")
    assert (replay.replayed, replay.body) == (True, response.body)
    assert stub.count == 1  # a 200 is final, even with a broken body: stored, not resent


async def test_an_html_error_page_with_status_200_raises_invalid_response_without_echoing_it(
    stub: Stub, clock: FakeClock
) -> None:
    page = b"<html><body><h1>502 Bad Gateway</h1><p>upstream nginx SECRET-ECHO</p></body></html>"
    stub.default = (200, {"Content-Type": "text/html; charset=utf-8"}, page)
    ep = Endpoint.create(stub.url(), "GET").with_retry(FAST)
    async with Connector(clock=clock) as c:
        response = await c.execute("vendor", ep)
    with pytest.raises(InvalidResponse) as err:
        response.json()
    message = str(err.value)
    assert "not valid JSON" in message
    assert "text/html" in message
    assert f"{len(page)} bytes" in message
    assert "SECRET-ECHO" not in message
    assert "Bad Gateway" not in message
    assert stub.count == 1


async def test_invalid_utf8_is_replaced_by_text_and_refused_by_json(
    stub: Stub, clock: FakeClock
) -> None:
    stub.default = status(200, b'{"name": "caf\xc3\xa9 \xff\xfe"}')
    ep = Endpoint.create(stub.url(), "GET")
    async with Connector(clock=clock) as c:
        response = await c.execute("vendor", ep)
    assert response.text() == '{"name": "caf\u00e9 \ufffd\ufffd"}'
    with pytest.raises(InvalidResponse, match="not valid UTF-8"):
        response.json()


# -- a 10 MB body --------------------------------------------------------------------------------


def huge(size: int, *, chunked: bool, sent: list[int]) -> object:
    """A handler answering `size` bytes, declared up front or streamed in 64 KiB chunks."""

    async def run(request: web.Request) -> web.StreamResponse:
        if not chunked:
            return web.Response(body=b"x" * size, content_type="application/json")
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        chunk = b"x" * 65536
        try:
            for _ in range(size // len(chunk)):
                await resp.write(chunk)
                sent[0] += len(chunk)
        except (ConnectionResetError, ConnectionError):
            pass  # the client hung up at its cap: that is the point
        return resp

    return run


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_10_mb_body_is_cut_at_max_response_bytes_with_a_clear_error(
    stub: Stub, clock: FakeClock, chunked: bool
) -> None:
    sent = [0]
    stub.default = huge(10 * MiB, chunked=chunked, sent=sent)  # type: ignore[assignment]
    ep = Endpoint.create(stub.url(), "POST").with_retry(FAST)
    async with Connector(clock=clock, max_response_bytes=1 * MiB) as c:
        with pytest.raises(ResponseTooLarge, match="max_response_bytes=1048576") as err:
            await within(3.0, c.execute("vendor", ep, {"a": 1}))
        if not chunked:
            assert "10485760 bytes" in str(err.value)  # the declared size, refused unread
        # The connector still works afterwards (the oversized connection was dropped).
        stub.default = status(200)
        assert (await c.execute("vendor", ep, {"a": 1})).status == 200
    assert stub.count == 2  # an unkeyed POST: the oversized answer was not asked for again
    assert sent[0] < 10 * MiB


async def test_the_default_cap_of_8_mib_refuses_a_10_mb_body(stub: Stub, clock: FakeClock) -> None:
    stub.default = huge(10 * MiB, chunked=False, sent=[0])  # type: ignore[assignment]
    ep = Endpoint.create(stub.url(), "GET").with_retry(RetryPolicy(max_attempts=1))
    async with Connector(clock=clock) as c:
        with pytest.raises(ResponseTooLarge, match="max_response_bytes=8388608"):
            await within(3.0, c.execute("vendor", ep))
    assert stub.count == 1


def test_max_response_bytes_must_be_positive() -> None:
    with pytest.raises(InvalidRequest, match="max_response_bytes"):
        Connector(max_response_bytes=0)


async def test_a_gzip_bomb_is_cut_at_max_response_bytes_after_decompression(
    stub: Stub, clock: FakeClock
) -> None:
    """10 MB of zeros gzip to about 10 KB: the declared length passes, the inflated body not."""
    bomb = gzip.compress(b"\0" * (10 * MiB), compresslevel=9)
    assert len(bomb) < 64 * 1024
    stub.default = (200, {"Content-Type": "application/json", "Content-Encoding": "gzip"}, bomb)
    ep = Endpoint.create(stub.url(), "GET").with_retry(RetryPolicy(max_attempts=1))
    async with Connector(clock=clock, max_response_bytes=1 * MiB) as c:
        with pytest.raises(ResponseTooLarge, match="max_response_bytes=1048576"):
            await within(3.0, c.execute("vendor", ep))
        small = gzip.compress(b'{"ok":true}')
        stub.default = (200, {"Content-Encoding": "gzip"}, small)
        assert (await c.execute("vendor", ep)).json() == {"ok": True}
    assert stub.count == 2
