"""`SnsSmsAdapter(concurrency_limit=)`: bulk publishes stay under a fleet-wide cap (moto)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from nexus_connector_async import (
    ConcurrencyLimit,
    ConcurrencyLimitExceeded,
    Connector,
    RetryPolicy,
)
from nexus_connector_async.adapters import Money
from nexus_connector_async.adapters.sns import SnsSmsAdapter
from tests.adapters._moto import MotoServer, SnsSimulator, published

pytest.importorskip("aioboto3", reason="the SNS adapter needs the `sns` extra")

FAST = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0)
NUMBERS = [f"+1415555{n:04d}" for n in range(12)]
LIMIT = 3


@pytest.fixture
def make(proxy: SnsSimulator, aws_session: Any) -> Callable[..., SnsSmsAdapter]:
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


async def test_send_bulk_never_has_more_publishes_in_flight_than_the_limit(
    make: Callable[..., SnsSmsAdapter], proxy: SnsSimulator, moto: MotoServer
) -> None:
    """The bulk pool (10) is wider than the limit (3): the limit is what reaches SNS.

    Each round holds the publishes at the simulator: exactly three arrive and no fourth while
    they are held; releasing them lets the next three in (the new gate holds those).
    """
    gate = asyncio.Event()
    proxy.hold(gate)
    async with Connector() as connector:
        sns = make(connector, concurrency_limit=ConcurrencyLimit(LIMIT, max_wait=30.0))
        bulk = asyncio.ensure_future(sns.send_bulk([(n, "hello") for n in NUMBERS], concurrency=10))
        for round_ in range(1, len(NUMBERS) // LIMIT + 1):
            await asyncio.wait_for(proxy.until_held(LIMIT), 10.0)
            await asyncio.sleep(0.1)  # seven more senders are ready: none gets past the limit
            assert proxy.held == LIMIT
            assert len(proxy.actions("Publish")) == LIMIT * round_
            gate, released = asyncio.Event(), gate
            proxy.hold(gate)  # the next round arrives at a closed gate
            released.set()
        gate.set()
        results = await bulk
    assert [r.error for r in results] == [None] * len(NUMBERS)
    assert sorted(sms["phone_number"] for sms in await published(moto.url)) == NUMBERS


async def test_a_bulk_message_without_a_free_slot_fails_fast_unsent(
    make: Callable[..., SnsSmsAdapter], proxy: SnsSimulator, moto: MotoServer
) -> None:
    gate = asyncio.Event()
    proxy.hold(gate)
    async with Connector() as connector:
        sns = make(connector, concurrency_limit=ConcurrencyLimit(2))  # max_wait=0
        bulk = asyncio.ensure_future(sns.send_bulk([(n, "hi") for n in NUMBERS[:5]]))
        await asyncio.wait_for(proxy.until_held(2), 10.0)
        await asyncio.sleep(0.1)
        assert proxy.held == 2
        gate.set()
        results = await bulk
        # The refused ones never reached the spend counter either: only two were reserved.
        assert (await sns.spend()).month_to_date == Money("0.01290", "USD")
    refused = [r for r in results if r.error is not None]
    assert len(refused) == 3
    assert all(isinstance(r.error, ConcurrencyLimitExceeded) and not r.sent for r in refused)
    assert len(proxy.actions("Publish")) == 2
    assert len(await published(moto.url)) == 2
