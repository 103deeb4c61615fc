"""Idempotency on the memory backend: at most once per key, replays, the stored codec."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from nexus_connector_async import IdempotencyKey, Response, StoredRecordInvalid
from nexus_connector_async.pipeline._call import Call
from nexus_connector_async.pipeline._idempotency import (
    Idempotency,
    replay_response,
    store_response,
)
from nexus_connector_async.testing import FakeClock

from ._wiring import Parts, Settings, response

UNSTORED = frozenset({409, 425, 429})


def store(value: Any) -> bytes | None:
    return store_response(UNSTORED, value)


def test_the_stored_codec_round_trips_a_response_as_replayed() -> None:
    data = store(Response(201, [("X-Id", "7")], b'{"id":7}', attempts=2))
    assert data is not None
    replayed = replay_response(data)
    assert (replayed.status, replayed.body, replayed.attempts) == (201, b'{"id":7}', 2)
    assert replayed.headers["X-Id"] == "7"
    assert replayed.replayed


def test_not_processed_answers_are_not_stored() -> None:
    assert store(response(503)) is None
    assert store(response(429)) is None


async def test_a_repeat_replays_the_stored_answer_without_running_again() -> None:
    parts = Parts()
    layer = Idempotency(parts.wiring, Settings())
    runs: list[Call] = []

    async def attempts(call: Call) -> Response:
        runs.append(call)
        return response(200)

    key = IdempotencyKey("order-1")
    first = await layer.run(parts.call(), key, "fp", attempts, store, replay_response)
    again = await layer.run(parts.call(), key, "fp", attempts, store, replay_response)
    assert len(runs) == 1
    assert runs[0].progress is not None  # a keyed call tracks its progress
    assert (first.replayed, again.replayed) == (False, True)
    assert "IdempotentReplay" in parts.kinds()


async def test_concurrent_calls_with_one_key_in_one_process_run_once() -> None:
    parts = Parts(FakeClock())  # time stands still: the waiters wait for the holder
    layer = Idempotency(parts.wiring, Settings())
    gate = asyncio.Event()
    runs = 0

    async def attempts(call: Call) -> Response:
        nonlocal runs
        runs += 1
        await gate.wait()
        return response(200)

    key = IdempotencyKey("order-2")
    tasks = [
        asyncio.create_task(layer.run(parts.call(), key, "fp", attempts, store, replay_response))
        for _ in range(5)
    ]
    await asyncio.sleep(0.01)
    gate.set()
    results = await asyncio.gather(*tasks)
    assert runs == 1
    assert sum(r.replayed for r in results) == 4


async def test_a_stored_record_that_does_not_decode_is_never_replayed() -> None:
    parts = Parts()
    layer = Idempotency(parts.wiring, Settings())

    async def attempts(call: Call) -> Response:
        return response(200)

    key = IdempotencyKey("order-3")
    await layer.run(parts.call(), key, "fp", attempts, lambda value: b"garbage", replay_response)
    with pytest.raises(StoredRecordInvalid):
        await layer.run(parts.call(), key, "fp", attempts, store, replay_response)
