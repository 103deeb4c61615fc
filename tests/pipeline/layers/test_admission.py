"""Admission per attempt: refused first attempts raise, refused retries give None."""

from __future__ import annotations

import pytest

from nexus_connector_async import (
    CircuitBreakerConfig,
    CircuitOpenError,
    RateLimitConfig,
    RateLimitExceeded,
    RequestTimeout,
)
from nexus_connector_async.pipeline._admission import Gate
from nexus_connector_async.pipeline._call import Call
from nexus_connector_async.pipeline._concurrency import Slots
from nexus_connector_async.pipeline._outcome import UNKNOWN, Outcome

from ._wiring import Parts, response


def gate(parts: Parts) -> Gate:
    return Gate(parts.wiring, Slots(parts.wiring), ())


async def ok(call: Call) -> Outcome:
    return Outcome.success(response(200), 200)


async def timed_out(call: Call) -> Outcome:
    return Outcome.retryable_failure(RequestTimeout("slow"), vendor=UNKNOWN)


async def test_an_admitted_attempt_runs_and_reports_one_attempt_event() -> None:
    parts = Parts()
    outcome = await gate(parts).attempt(ok, parts.call(), 1, False)
    assert outcome is not None
    assert outcome.status == 200
    assert parts.kinds() == ["AttemptFinished"]


async def test_failures_open_the_breaker_and_then_a_first_attempt_is_refused() -> None:
    parts = Parts()
    call = parts.call(breaker=CircuitBreakerConfig(failure_threshold=2))
    layer = gate(parts)
    for _ in range(2):
        await layer.attempt(timed_out, call, 1, False)
    with pytest.raises(CircuitOpenError):
        await layer.attempt(ok, call, 1, False)
    assert await layer.attempt(ok, call, 2, True) is None  # a retry: the last outcome stands
    assert "CircuitStateChanged" in parts.kinds()


async def test_a_reserved_token_is_waited_for_on_the_clock() -> None:
    parts = Parts()
    call = parts.call(limit=RateLimitConfig(rate=1, period=1.0, burst=1, max_wait=5.0))
    layer = gate(parts)
    await layer.attempt(ok, call, 1, False)
    await layer.attempt(ok, call, 1, False)
    assert parts.clock.slept == [pytest.approx(1.0)]


async def test_a_token_due_after_the_deadline_is_refused_at_once() -> None:
    parts = Parts()
    limit = RateLimitConfig(rate=1, period=10.0, burst=1, max_wait=60.0)
    call = parts.call(limit=limit, deadline=2.0)
    layer = gate(parts)
    await layer.attempt(ok, call, 1, False)
    with pytest.raises(RateLimitExceeded):
        await layer.attempt(ok, call, 1, False)
    assert parts.clock.slept == []
