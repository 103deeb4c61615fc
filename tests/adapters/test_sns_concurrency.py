"""`SnsSmsAdapter(concurrency_limit=)`: bulk publishes stay under a fleet-wide cap (moto)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from nexus_connector_async import (
    ConcurrencyLimit,
    ConcurrencyLimitExceeded,
    Connector,
    RetryPolicy,
)
from nexus_connector_async.adapters._money import Money
from nexus_connector_async.adapters.sns import SnsSmsAdapter
from tests.adapters._moto import FaultProxy, MotoServer, published, reset

aioboto3 = pytest.importorskip("aioboto3", reason="the SNS adapter needs the `sns` extra")

FAST = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0)
NUMBERS = [f"+1415555{n:04d}" for n in range(12)]


@pytest.fixture(scope="module")
def aws_session() -> Iterator[Any]:
    """Dummy credentials from the environment only (no profile, no instance metadata)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
        env.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
        env.delenv("AWS_SESSION_TOKEN", raising=False)
        env.delenv("AWS_PROFILE", raising=False)
        env.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        yield aioboto3.Session()


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture
async def proxy(moto: MotoServer) -> AsyncIterator[FaultProxy]:
    await reset(moto.url)
    async with FaultProxy(moto.url) as p:
        yield p


@pytest.fixture
def make(proxy: FaultProxy, aws_session: Any) -> Callable[..., SnsSmsAdapter]:
    def build(connector: Connector, **kw: Any) -> SnsSmsAdapter:
        return SnsSmsAdapter(
            connector,
            endpoint_url=proxy.url,
            session=aws_session,
            retry=FAST,
            monthly_limit=Money("100", "USD"),  # no GetSMSAttributes in the way
            check_opt_out=False,
            **kw,
        )

    return build


async def _until(predicate: Callable[[], bool]) -> None:
    for _ in range(400):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


async def test_send_bulk_never_has_more_publishes_in_flight_than_the_limit(
    make: Callable[..., SnsSmsAdapter], proxy: FaultProxy, moto: MotoServer
) -> None:
    """The bulk pool (10) is wider than the limit (3): the limit is what reaches SNS."""
    gate = asyncio.Event()
    proxy.hold(gate)  # moto handles each publish but its answer waits for the gate
    async with Connector() as connector:
        sns = make(connector, concurrency_limit=ConcurrencyLimit(3, max_wait=30.0))
        bulk = asyncio.ensure_future(sns.send_bulk([(n, "hello") for n in NUMBERS], concurrency=10))
        await _until(lambda: proxy.in_flight.get("Publish", 0) == 3)
        await asyncio.sleep(0.1)  # seven more senders are ready: none gets past the limit
        assert len(proxy.actions("Publish")) == 3
        gate.set()
        results = await bulk
    assert [r.error for r in results] == [None] * len(NUMBERS)
    assert proxy.peak["Publish"] == 3
    assert sorted(sms["phone_number"] for sms in await published(moto.url)) == NUMBERS


async def test_a_bulk_message_without_a_free_slot_fails_fast_unsent(
    make: Callable[..., SnsSmsAdapter], proxy: FaultProxy, moto: MotoServer
) -> None:
    gate = asyncio.Event()
    proxy.hold(gate)
    async with Connector() as connector:
        sns = make(connector, concurrency_limit=ConcurrencyLimit(2))  # max_wait=0
        bulk = asyncio.ensure_future(sns.send_bulk([(n, "hi") for n in NUMBERS[:5]]))
        await _until(lambda: proxy.in_flight.get("Publish", 0) == 2)
        await asyncio.sleep(0.1)
        gate.set()
        results = await bulk
        # The refused ones never reached the spend counter either: only two were reserved.
        assert (await sns.spend()).month_to_date == Money("0.01290", "USD")
    refused = [r for r in results if r.error is not None]
    assert len(refused) == 3
    assert all(isinstance(r.error, ConcurrencyLimitExceeded) and not r.sent for r in refused)
    assert proxy.peak["Publish"] == 2
    assert len(await published(moto.url)) == 2
