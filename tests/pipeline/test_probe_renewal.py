"""A half-open probe permit covers the whole attempt (api.md rule 25).

The permit is taken at admission with a lease of the attempt's timeout plus a margin; a slow
credential fetch (or a token wait) can outlast it. The pipeline renews it just before sending,
so `half_open_max_calls=1` means one probe at the vendor at most; a permit that lapsed (its slot
may now be another probe's) is not used to send. Memory and Redis, on a fake clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from nexus_connector_async import (
    Backend,
    CircuitBreakerConfig,
    CircuitOpenError,
    ConnectionFailed,
    Connector,
    Credentials,
    Endpoint,
    HttpStatusError,
    MemoryBackend,
    RateLimitConfig,
    RedisBackend,
    RetryPolicy,
    Timeouts,
)
from nexus_connector_async.testing import FakeClock
from tests._redis_servers import RedisServer

from ._stub import Stub, held, status

CB = CircuitBreakerConfig(failure_threshold=1, recovery_timeout=10.0, half_open_max_calls=1)
LEASE = 1.0 + 5.0  # Timeouts(total=1.0) plus the pipeline's margin


class SlowCredentials:
    """The first fetch after `arm()` waits for `gate`: a token endpoint that is slow today."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.fetching = asyncio.Event()
        self.armed = False

    async def get_credentials(self, service: str, tenant_id: str | None = None) -> Credentials:
        if self.armed:
            self.armed = False
            self.fetching.set()
            await self.gate.wait()
        return Credentials("tok")

    async def refresh_credentials(self, service: str, tenant_id: str | None = None) -> Credentials:
        return Credentials("tok")


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[Backend]:
    if request.param == "memory":
        yield MemoryBackend(clock=clock)
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    server.flush()
    b = RedisBackend.from_url(server.url, clock=clock)
    yield b
    await b.aclose()


async def _half_open(connector: Connector, ep: Endpoint, stub: Stub, clock: FakeClock) -> None:
    stub.queue(status(500))
    with pytest.raises(HttpStatusError):
        await connector.execute("vendor", ep)  # one failure opens the breaker
    clock.advance(CB.recovery_timeout + 0.1)  # the next admission is a probe


async def _until(predicate: object, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.001)


async def test_a_slow_credential_fetch_does_not_let_a_second_probe_in(
    backend: Backend, clock: FakeClock, stub: Stub
) -> None:
    creds = SlowCredentials()
    ep = (
        Endpoint.create(stub.url(), "GET")
        .with_circuit_breaker(CB)
        .with_retry(RetryPolicy(max_attempts=1))
        .with_timeout(Timeouts(total=1.0))
    )
    async with Connector(backend=backend, credentials=creds, clock=clock) as connector:
        await _half_open(connector, ep, stub, clock)
        vendor = asyncio.Event()
        stub.queue(held(vendor))
        creds.armed = True
        probe = asyncio.ensure_future(connector.execute("vendor", ep))
        await asyncio.wait_for(creds.fetching.wait(), 5.0)
        clock.advance(LEASE - 1.0)  # the fetch takes most of the lease
        creds.gate.set()
        await _until(lambda: stub.count == 2)  # the probe is at the vendor now
        clock.advance(3.0)  # past the lease it was admitted with, within the renewed one
        with pytest.raises(CircuitOpenError):
            await connector.execute("vendor", ep)  # a second probe would be let in here
        vendor.set()
        assert (await probe).status == 200
    assert stub.count == 2  # the failure and the one probe


async def test_a_probe_whose_permit_lapsed_is_not_sent(
    backend: Backend, clock: FakeClock, stub: Stub
) -> None:
    creds = SlowCredentials()
    ep = (
        Endpoint.create(stub.url(), "GET")
        .with_circuit_breaker(CB)
        .with_retry(RetryPolicy(max_attempts=1))
        .with_timeout(Timeouts(total=1.0))
    )
    async with Connector(backend=backend, credentials=creds, clock=clock) as connector:
        await _half_open(connector, ep, stub, clock)
        vendor = asyncio.Event()
        stub.queue(held(vendor))
        creds.armed = True
        slow = asyncio.ensure_future(connector.execute("vendor", ep))
        await asyncio.wait_for(creds.fetching.wait(), 5.0)
        clock.advance(LEASE + 1.0)  # the permit lapses; the next admission takes the slot
        other = asyncio.ensure_future(connector.execute("vendor", ep))
        await _until(lambda: stub.count == 2)  # that probe is at the vendor
        creds.gate.set()
        with pytest.raises(CircuitOpenError):
            await slow  # its permit is gone: sending now would make two probes at the vendor
        vendor.set()
        assert (await other).status == 200
    assert stub.count == 2


async def test_a_token_wait_longer_than_the_lease_does_not_make_a_second_probe(
    clock: FakeClock,
) -> None:
    # Connector.call() (aioboto3, SNS) takes the same path; here the token wait outlasts the lease.
    backend = MemoryBackend(clock=clock)
    limit = RateLimitConfig(0.1, burst=1.0, max_wait=20.0)  # an empty bucket: a 10 s wait
    ran: list[str] = []

    async def down() -> None:
        ran.append("down")
        raise ConnectionFailed("vendor down")

    async def publish() -> str:
        ran.append("publish")
        return "ok"

    policy = {"circuit_breaker": CB, "retry": RetryPolicy(max_attempts=1), "timeout": 1.0}
    async with Connector(backend=backend, clock=clock) as connector:
        with pytest.raises(ConnectionFailed):
            await connector.call("sns", "publish", down, **policy)  # type: ignore[arg-type]
        clock.advance(CB.recovery_timeout + 0.1)
        drained = await backend.admit("sns", None, CB, limit, probe_lease=LEASE)
        await backend.release_probe("sns", drained.probe)  # the token stays taken
        slow = asyncio.ensure_future(
            connector.call("sns", "publish", publish, rate_limit=limit, **policy)  # type: ignore[arg-type]
        )
        await _until(lambda: clock.pending_sleepers == 1)  # admitted, waiting for its token
        clock.advance(10.0)  # the wait ends after the permit's lease did...
        other = await backend.admit("sns", None, CB, None, probe_lease=LEASE)
        assert other.probe  # ...so another probe took the slot before the call went on
        with pytest.raises(CircuitOpenError):
            await slow
    assert ran == ["down"]  # the lapsed probe never ran: one probe at a time
