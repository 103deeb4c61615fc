"""`send_bulk` against the Twilio simulator: order, per-message errors, limits, laziness."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from nexus_connector_async import (
    ConcurrencyLimit,
    ConcurrencyLimitExceeded,
    Connector,
    IdempotencyKey,
    InvalidRequest,
    RateLimitConfig,
    RateLimitExceeded,
    RetryPolicy,
)
from nexus_connector_async.adapters import (
    BulkSendInterrupted,
    InvalidPhoneNumber,
    OptedOut,
    SmsMessage,
)
from nexus_connector_async.adapters.twilio import TwilioSmsAdapter
from nexus_connector_async.testing import SimulatedRequest, capture_logs
from nexus_connector_async.testing._twilio import DEFAULT_AUTH_TOKEN, TwilioSimulator

FAST = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0)


def number(i: int) -> str:
    return f"+1415{i:07d}"


@pytest.fixture
async def sim() -> AsyncIterator[TwilioSimulator]:
    async with TwilioSimulator() as s:
        yield s


@pytest.fixture
async def connector() -> AsyncIterator[Connector]:
    async with Connector() as c:
        yield c


def make(connector: Connector, sim: TwilioSimulator, **kw: Any) -> TwilioSmsAdapter:
    return TwilioSmsAdapter(
        connector,
        sim.account_sid,
        DEFAULT_AUTH_TOKEN,
        "+15005550006",
        base_url=sim.url,
        lookups_base_url=sim.url,
        retry=FAST,
        **kw,
    )


async def test_a_thousand_messages_come_back_in_order_with_each_failure_in_place(
    connector: Connector, sim: TwilioSimulator
) -> None:
    sim.latency = 0.002
    numbers = [number(i) for i in range(1000)]
    for i in range(0, 1000, 7):
        sim.reject(numbers[i], 21610)

    results = await make(connector, sim).send_bulk(
        [(n, f"message {i}") for i, n in enumerate(numbers)], concurrency=20
    )

    assert [r.to for r in results] == numbers
    for i, result in enumerate(results):
        if i % 7 == 0:
            assert isinstance(result.error, OptedOut), i
            assert (result.status, result.message_id) == ("error", None)
        else:
            assert result.ok, (i, result.error)
            assert result.status == "queued"
    sent = {m.to: m.body for m in sim.messages}
    assert len(sent) == 1000 - len(range(0, 1000, 7))
    assert all(sent[numbers[i]] == f"message {i}" for i in range(1000) if i % 7)
    # Each message made exactly one request, never more than 20 at a time.
    assert len(sim.requests) == 1000
    assert 1 < sim.max_in_flight <= 20


async def test_the_accounts_concurrency_limit_caps_requests_in_flight_below_the_bulk_pool(
    connector: Connector, sim: TwilioSimulator
) -> None:
    """`send_bulk(concurrency=)` is one process's pool; `concurrency_limit` is the account's."""
    sim.latency = 0.01
    twilio = make(connector, sim, concurrency_limit=ConcurrencyLimit(5, max_wait=10.0))
    results = await twilio.send_bulk(((number(i), "hi") for i in range(60)), concurrency=20)
    assert all(r.ok for r in results)
    assert sim.max_in_flight == 5
    # Fail fast (max_wait=0): what finds no slot is refused, nothing beyond the limit is sent.
    sim.max_in_flight = 0
    twilio = make(connector, sim, concurrency_limit=ConcurrencyLimit(2))
    results = await twilio.send_bulk(((number(i), "hi") for i in range(20)), concurrency=10)
    refused = [r for r in results if not r.ok]
    assert refused
    assert all(isinstance(r.error, ConcurrencyLimitExceeded) and not r.sent for r in refused)
    assert sim.max_in_flight <= 2


async def test_the_rate_limit_admits_exactly_the_burst(
    connector: Connector, sim: TwilioSimulator
) -> None:
    # 100 tokens, refilled at one an hour: the run admits exactly 100, whatever its speed.
    twilio = make(connector, sim, rate_limit=RateLimitConfig.per_hour(1, burst=100))
    results = await twilio.send_bulk(((number(i), "hi") for i in range(300)), concurrency=20)
    assert sum(r.ok for r in results) == 100
    refused = [r for r in results if not r.ok]
    assert len(refused) == 200
    assert all(isinstance(r.error, RateLimitExceeded) and r.status == "error" for r in refused)
    assert len(sim.requests) == 100


async def test_the_input_is_consumed_lazily(connector: Connector, sim: TwilioSimulator) -> None:
    pulled = 0
    ahead: list[int] = []

    def messages() -> Iterator[tuple[str, str]]:
        nonlocal pulled
        for i in range(2000):
            pulled += 1
            yield number(i), "hi"

    def on_request(request: SimulatedRequest) -> None:
        ahead.append(pulled - len(sim.requests))

    sim.on_request = on_request
    results = await make(connector, sim).send_bulk(messages(), concurrency=8)
    assert len(results) == 2000
    assert all(r.ok for r in results)
    # Never more than one message per worker taken from the input beyond what reached Twilio.
    assert max(ahead) <= 8


async def test_mixed_items_and_refused_values_become_results_in_place(
    connector: Connector, sim: TwilioSimulator
) -> None:
    items: list[Any] = [
        (number(1), "pair"),
        SmsMessage(number(2), "mms", media_urls=("https://e.com/a.png",)),
        ("0044123", "national format"),
        (number(3), ""),
        SmsMessage(number(4), "too many", media_urls=("https://e.com/a.png",) * 11),
    ]
    results = await make(connector, sim).send_bulk(items, concurrency=3)
    assert [r.ok for r in results] == [True, True, False, False, False]
    assert results[1].message_id is not None
    assert results[1].message_id.startswith("MM")
    assert isinstance(results[2].error, InvalidPhoneNumber)
    assert isinstance(results[3].error, InvalidRequest)
    assert results[3].to == number(3)
    assert isinstance(results[4].error, InvalidRequest)
    assert all(r.sent is False for r in results[2:])
    assert len(sim.requests) == 2


async def test_an_item_that_is_not_a_message_stops_the_batch_before_anything_after_it(
    connector: Connector, sim: TwilioSimulator
) -> None:
    items: list[Any] = [(number(1), "pair"), "not a message", (number(2), "after")]
    with pytest.raises(BulkSendInterrupted) as caught:
        await make(connector, sim).send_bulk(items, concurrency=1)
    assert caught.value.position == 1
    assert [r.to for r in caught.value.results] == [number(1)]
    assert isinstance(caught.value.__cause__, InvalidRequest)
    assert [m.to for m in sim.messages] == [number(1)]


async def test_a_batch_key_makes_a_rerun_replay_instead_of_resend(
    connector: Connector, sim: TwilioSimulator
) -> None:
    twilio = make(connector, sim)
    batch = [(number(i), f"m{i}") for i in range(30)]
    key = IdempotencyKey("campaign-7")
    first = await twilio.send_bulk(batch, concurrency=5, idempotency_key=key)
    with capture_logs() as logs:
        again = await twilio.send_bulk(batch, concurrency=5, idempotency_key=key)
    assert len(sim.messages) == 30
    assert [r.message_id for r in again] == [r.message_id for r in first]
    assert all(r.replayed for r in again)
    assert {
        "event": "nexus.sms.bulk_completed",
        "service": "twilio",
        "messages": 30,
        "failed": 0,
        "log_level": "info",
    } in logs


@pytest.mark.parametrize("concurrency", [0, -1, 1.5, True])
async def test_concurrency_must_be_a_positive_integer(
    connector: Connector, sim: TwilioSimulator, concurrency: Any
) -> None:
    with pytest.raises(InvalidRequest, match="concurrency"):
        await make(connector, sim).send_bulk([(number(1), "hi")], concurrency=concurrency)


async def test_an_empty_batch_gives_no_results(connector: Connector, sim: TwilioSimulator) -> None:
    assert await make(connector, sim).send_bulk([]) == []
    assert sim.requests == []
