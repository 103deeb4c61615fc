"""Idempotency through the pipeline: replay, conflict, waiting duplicates, release, cancellation."""

from __future__ import annotations

import asyncio

import pytest

from nexus_connector_async import (
    CircuitBreakerConfig,
    CircuitOpenError,
    Connector,
    Endpoint,
    HttpStatusError,
    IdempotencyConflict,
    IdempotencyInProgress,
    IdempotencyKey,
    MemoryBackend,
    RetryPolicy,
)
from nexus_connector_async._encoding import fingerprint
from nexus_connector_async.testing import FakeClock

from ._stub import Stub, held, status

ONE_SHOT = RetryPolicy(max_attempts=1)


def post(stub: Stub) -> Endpoint:
    return Endpoint(stub.url(), "POST", retry=ONE_SHOT, idempotency_header="Idempotency-Key")


async def test_a_completed_key_replays_the_stored_response_without_sending(
    connector: Connector, stub: Stub
) -> None:
    stub.queue(status(201, b'{"id":"pay_1"}', **{"Request-Id": "req_9"}))
    first = await connector.execute("vendor", post(stub), {"amount": 5}, idempotency_key="k")
    again = await connector.execute("vendor", post(stub), {"amount": 5}, idempotency_key="k")
    assert (first.replayed, again.replayed) == (False, True)
    assert (again.status, again.body, again.headers["Request-Id"]) == (201, first.body, "req_9")
    assert stub.count == 1


async def test_the_same_key_with_another_payload_url_or_method_is_a_conflict(
    connector: Connector, stub: Stub
) -> None:
    await connector.execute("vendor", post(stub), {"amount": 5}, idempotency_key="k")
    with pytest.raises(IdempotencyConflict):
        await connector.execute("vendor", post(stub), {"amount": 6}, idempotency_key="k")
    other_url = Endpoint.create(stub.url("/v1/other"), "POST")
    with pytest.raises(IdempotencyConflict):
        await connector.execute("vendor", other_url, {"amount": 5}, idempotency_key="k")
    assert stub.count == 1


async def test_keys_are_scoped_by_service_and_tenant(connector: Connector, stub: Stub) -> None:
    for service, tenant in (("a", None), ("b", None), ("a", "t1")):
        r = await connector.execute(
            service, post(stub), {"x": 1}, idempotency_key="k", tenant_id=tenant
        )
        assert r.replayed is False
    assert stub.count == 3


async def test_a_duplicate_waits_for_the_in_flight_call_and_gets_its_response(
    connector: Connector, stub: Stub
) -> None:
    gate = asyncio.Event()
    stub.queue(held(gate, status(200, b'{"id":"once"}')))
    calls = [
        asyncio.create_task(connector.execute("vendor", post(stub), {"a": 1}, idempotency_key="k"))
        for _ in range(10)
    ]
    await stub.arrived.wait()
    gate.set()
    results = await asyncio.gather(*calls)
    assert stub.count == 1
    assert sorted(r.replayed for r in results) == [False] + [True] * 9
    assert {r.body for r in results} == {b'{"id":"once"}'}


async def test_a_duplicate_gives_up_after_idempotency_wait(stub: Stub) -> None:
    clock = FakeClock()
    gate = asyncio.Event()
    stub.queue(held(gate))
    async with Connector(clock=clock, idempotency_wait=3.0) as c:
        first = asyncio.create_task(c.execute("vendor", post(stub), {}, idempotency_key="k"))
        await stub.arrived.wait()
        second = asyncio.create_task(c.execute("vendor", post(stub), {}, idempotency_key="k"))
        while clock.pending_sleepers == 0:
            await asyncio.sleep(0)
        clock.advance(3.0)
        with pytest.raises(IdempotencyInProgress):
            await second
        gate.set()
        assert (await first).replayed is False


async def test_a_transient_failure_releases_the_key_so_a_retry_sends_again(
    connector: Connector, stub: Stub
) -> None:
    stub.queue(status(503), status(200, b'{"id":"second"}'))
    with pytest.raises(HttpStatusError):
        await connector.execute("vendor", post(stub), {"a": 1}, idempotency_key="k")
    retry = await connector.execute("vendor", post(stub), {"a": 1}, idempotency_key="k")
    assert (retry.replayed, retry.json(), stub.count) == (False, {"id": "second"}, 2)


async def test_a_client_error_is_final_and_stored_for_the_key(
    connector: Connector, stub: Stub
) -> None:
    stub.queue(status(402, b'{"error":{"code":"card_declined"}}'))
    for replayed in (False, True):
        with pytest.raises(HttpStatusError) as err:
            await connector.execute("vendor", post(stub), {"a": 1}, idempotency_key="k")
        assert (err.value.response.status, err.value.response.replayed) == (402, replayed)
    assert stub.count == 1


async def test_a_cancelled_call_releases_its_idempotency_lease(
    connector: Connector, stub: Stub
) -> None:
    gate = asyncio.Event()
    stub.queue(held(gate))
    task = asyncio.create_task(
        connector.execute("vendor", post(stub), {"a": 1}, idempotency_key=IdempotencyKey("k"))
    )
    await stub.arrived.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    gate.set()
    again = await connector.execute("vendor", post(stub), {"a": 1}, idempotency_key="k")
    assert again.replayed is False
    assert stub.count == 2


async def test_a_cancelled_probe_gives_its_half_open_permit_back(
    connector: Connector, stub: Stub, clock: FakeClock
) -> None:
    cfg = CircuitBreakerConfig(failure_threshold=1, recovery_timeout=5.0)
    ep = Endpoint.create(stub.url(), "GET").with_retry(ONE_SHOT).with_circuit_breaker(cfg)
    stub.queue(status(500))
    with pytest.raises(HttpStatusError):
        await connector.execute("vendor", ep)
    clock.advance(5.0)
    gate = asyncio.Event()
    stub.queue(held(gate))
    stub.arrived.clear()
    probe = asyncio.create_task(connector.execute("vendor", ep))
    await stub.arrived.wait()
    with pytest.raises(CircuitOpenError):  # the only permit is taken
        await connector.execute("vendor", ep)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    gate.set()
    assert (await connector.execute("vendor", ep)).status == 200


async def test_a_crashed_holder_frees_the_key_when_its_lease_ends(stub: Stub) -> None:
    clock = FakeClock()
    async with Connector(clock=clock, idempotency_wait=0.0) as c:
        backend = c.backend
        fp = fingerprint("POST", stub.url(), {})
        claim = await backend.claim("vendor", None, IdempotencyKey("k").digest, fp, 30.0)
        assert claim.state == "acquired"  # a worker took it, then died without releasing
        with pytest.raises(IdempotencyInProgress):
            await c.execute("vendor", post(stub), {}, idempotency_key="k")
        clock.advance(30.0)
        assert (await c.execute("vendor", post(stub), {}, idempotency_key="k")).replayed is False


async def test_a_call_slower_than_its_lease_keeps_its_key_and_the_heartbeat_stops_after(
    stub: Stub,
) -> None:
    # Real time: the memory backend's leases and the heartbeat both run on the loop's clock.
    lease = 0.3
    backend = MemoryBackend()
    gate = asyncio.Event()
    stub.queue(held(gate, status(201, b'{"id":"pay_1"}')))
    async with (
        Connector(backend=backend, idempotency_lease=lease) as holder,
        Connector(backend=backend, idempotency_wait=0.01) as other,
    ):
        slow = asyncio.create_task(
            holder.execute("vendor", post(stub), {"a": 1}, idempotency_key="k")
        )
        await stub.arrived.wait()
        loop = asyncio.get_running_loop()
        start = loop.time()
        while loop.time() - start < 4 * lease:  # four leases: each would have lapsed unrenewed
            with pytest.raises(IdempotencyInProgress):
                await other.execute("vendor", post(stub), {"a": 1}, idempotency_key="k")
            await asyncio.sleep(lease / 10)
        gate.set()
        assert (await slow).replayed is False
        again = await other.execute("vendor", post(stub), {"a": 1}, idempotency_key="k")
        assert again.replayed is True
        assert stub.count == 1
        heartbeat = holder._idempotency._heartbeat
        assert heartbeat._held == {}
        async with asyncio.timeout(5.0):  # its next beat finds nothing held and stops the timer
            while heartbeat._handle is not None:
                await asyncio.sleep(lease / 10)
