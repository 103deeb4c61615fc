"""`send_bulk` never loses results (api.md rule 38), against the Twilio simulator."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from nexus_connector_async import (
    BackendUnavailable,
    Connector,
    IdempotencyKey,
    InvalidRequest,
    RedisBackend,
    RetryPolicy,
)
from nexus_connector_async.adapters import (
    BulkSendInterrupted,
    InvalidPhoneNumber,
    OptedOut,
    SmsMessage,
    SmsResult,
)
from nexus_connector_async.adapters.twilio import TwilioSmsAdapter
from nexus_connector_async.testing import capture_logs
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


def make(connector: Connector, sim: TwilioSimulator) -> TwilioSmsAdapter:
    return TwilioSmsAdapter(
        connector,
        sim.account_sid,
        DEFAULT_AUTH_TOKEN,
        "+15005550006",
        base_url=sim.url,
        lookups_base_url=sim.url,
        retry=FAST,
    )


class InputBroke(Exception):
    """The caller's own iterator failed (a database cursor dropped, a parse error...)."""


def campaign(size: int, *, stop_at: int | None = None, how: str = "raise") -> Iterator[Any]:
    """`size` messages, every 97th to a number that is not E.164; item `stop_at` breaks.

    `how` is "raise" (the iterator raises there) or "malformed" (it yields `media_urls=None`).
    """
    for i in range(size):
        if i == stop_at:
            if how == "raise":
                raise InputBroke(f"row {i} unreadable")
            yield SmsMessage(number(i), f"otp {i}", media_urls=None)  # type: ignore[arg-type]
        elif i % 97 == 3:
            yield f"00{i}", f"otp {i}"  # well-formed, refused by our E.164 check: a result
        else:
            yield number(i), f"otp {i}"


@pytest.mark.parametrize("how", ["raise", "malformed"])
async def test_ten_thousand_messages_that_break_midway_keep_every_result_and_rerun_once(
    connector: Connector, sim: TwilioSimulator, how: str
) -> None:
    size = 10_000
    stop_at = random.Random(19).randrange(2_000, 9_000)  # seeded: the same point every run
    opted_out = {number(i) for i in range(0, size, 13)}
    for to in opted_out:
        sim.reject(to, 21610)
    sim.throttle(25)  # not processed: retried and sent
    twilio = make(connector, sim)
    key = IdempotencyKey("otp-campaign-2026-12")

    with pytest.raises(BulkSendInterrupted) as caught:
        await twilio.send_bulk(
            campaign(size, stop_at=stop_at, how=how), concurrency=50, idempotency_key=key
        )
    interrupted = caught.value
    cause = InputBroke if how == "raise" else InvalidRequest
    assert isinstance(interrupted.__cause__, cause)
    assert interrupted.position == stop_at
    results = interrupted.results
    # Every item before the failure has exactly one result, in order; none after it.
    assert len(results) == stop_at
    for i, result in enumerate(results):
        if i % 97 == 3:
            assert result.to == f"00{i}"
            assert isinstance(result.error, InvalidPhoneNumber), i
            assert (result.status, result.sent) == ("error", False)
        elif number(i) in opted_out:
            assert result.to == number(i)
            assert isinstance(result.error, OptedOut), i
            assert result.sent is False
        else:
            assert result.to == number(i)
            assert result.ok, (i, result.error)
            assert result.sent is True
    first = Counter(m.to for m in sim.messages)
    assert set(first) == {r.to for r in results if r.ok}  # nothing after the bad item was sent
    assert max(first.values()) == 1

    # The same campaign again, this time readable to the end: what was sent is replayed.
    again = await twilio.send_bulk(campaign(size), concurrency=50, idempotency_key=key)
    assert len(again) == size
    copies = Counter(m.to for m in sim.messages)
    assert max(copies.values()) == 1  # no handset got a second copy
    expected = {number(i) for i in range(size) if i % 97 != 3} - opted_out
    assert set(copies) == expected
    assert all(again[i].replayed for i in range(stop_at) if results[i].ok)


async def test_sends_in_flight_finish_when_the_input_raises(
    connector: Connector, sim: TwilioSimulator
) -> None:
    gate = asyncio.Event()
    sim.hold(gate)

    def messages() -> Iterator[tuple[str, str]]:
        for i in range(5):
            yield number(i), "hi"
        gate.set()  # the first five are at Twilio, unanswered, when the input fails
        raise InputBroke("cursor closed")

    with pytest.raises(BulkSendInterrupted) as caught:
        await make(connector, sim).send_bulk(messages(), concurrency=10)
    results = caught.value.results
    assert [r.to for r in results] == [number(i) for i in range(5)]
    assert all(r.ok for r in results)
    assert len(sim.messages) == 5


@pytest.mark.parametrize(
    "bad",
    [
        SmsMessage(number(9), "hi", media_urls=None),  # type: ignore[arg-type]
        SmsMessage(number(9), "hi", media_urls="https://e.com/a.png"),  # type: ignore[arg-type]
        SmsMessage(number(9), None),  # type: ignore[arg-type]
        (number(9), "hi", "extra"),
        "+14150000009",
        None,
    ],
    ids=["media_urls None", "media_urls str", "body None", "triple", "str", "None"],
)
async def test_a_malformed_item_stops_intake_and_lets_the_sends_in_flight_finish(
    connector: Connector, sim: TwilioSimulator, bad: Any
) -> None:
    gate = asyncio.Event()
    sim.hold(gate)
    pulled: list[int] = []

    def messages() -> Iterator[Any]:
        for i in range(5):
            pulled.append(i)
            yield number(i), "hi"
        gate.set()  # the first five are at Twilio, unanswered, when the bad item comes
        pulled.append(5)
        yield bad
        for i in range(6, 20):
            pulled.append(i)
            yield number(i), "hi"

    with capture_logs() as logs:
        with pytest.raises(BulkSendInterrupted, match="input item 5") as caught:
            await make(connector, sim).send_bulk(messages(), concurrency=10)
    interrupted = caught.value
    assert isinstance(interrupted.__cause__, InvalidRequest)
    assert interrupted.position == 5
    assert [r.to for r in interrupted.results] == [number(i) for i in range(5)]
    assert all(r.ok for r in interrupted.results)
    assert pulled == [0, 1, 2, 3, 4, 5]  # nothing after the bad item was taken, or sent
    assert sorted(m.to for m in sim.messages) == [number(i) for i in range(5)]
    [event] = [e for e in logs if e["event"] == "nexus.sms.bulk_interrupted"]
    assert (event["position"], event["error"]) == (5, "InvalidRequest")


async def test_a_bug_in_one_send_does_not_cancel_the_others(
    connector: Connector, sim: TwilioSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    twilio = make(connector, sim)
    real = twilio.send

    async def send(to: str, body: str, **kw: Any) -> SmsResult:
        if to == number(3):
            raise RuntimeError("bug")
        return await real(to, body, **kw)

    monkeypatch.setattr(twilio, "send", send)
    with pytest.raises(BulkSendInterrupted) as caught:
        await twilio.send_bulk([(number(i), "hi") for i in range(4)], concurrency=4)
    results = caught.value.results
    assert [r.ok for r in results] == [True, True, True, False]
    assert (results[3].status, results[3].sent) == ("unknown", True)
    assert isinstance(caught.value.__cause__, RuntimeError)


async def test_messages_refused_by_admission_are_not_sent(sim: TwilioSimulator) -> None:
    backend = RedisBackend.from_url("redis://127.0.0.1:9", on_unavailable="fail_closed")
    async with Connector(backend=backend) as connector:
        results = await make(connector, sim).send_bulk(
            [(number(i), "hi") for i in range(3)], idempotency_key=IdempotencyKey("down")
        )
    assert sim.requests == []
    for result in results:
        assert isinstance(result.error, BackendUnavailable)
        assert (result.status, result.sent) == ("error", False)


@pytest.mark.parametrize("length", [250, 254, 255])
async def test_a_long_batch_key_still_gives_every_message_a_valid_key(
    connector: Connector, sim: TwilioSimulator, length: int
) -> None:
    twilio = make(connector, sim)
    key = IdempotencyKey("k" * length)
    batch = [(number(i), "hi") for i in range(12)]
    first = await twilio.send_bulk(batch, idempotency_key=key)
    assert all(r.ok for r in first), [r.error for r in first]
    again = await twilio.send_bulk(batch, idempotency_key=key)
    assert all(r.replayed for r in again)
    assert len(sim.messages) == 12


@pytest.mark.parametrize("messages", [None, 42, "+14155550100"])
async def test_send_bulk_of_something_that_is_not_messages_is_an_invalid_request(
    connector: Connector, sim: TwilioSimulator, messages: Any
) -> None:
    with pytest.raises(InvalidRequest, match="iterable"):
        await make(connector, sim).send_bulk(messages)
