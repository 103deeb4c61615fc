"""The retry loop on a fake clock: goes again only while retryable, allowed and in time."""

from __future__ import annotations

import pytest

from nexus_connector_async import RequestTimeout, Response, RetryPolicy
from nexus_connector_async.pipeline._call import Call
from nexus_connector_async.pipeline._outcome import UNKNOWN, Outcome
from nexus_connector_async.pipeline._retry import Retry

from ._wiring import Parts, Settings, response


def scripted(*outcomes: Outcome | None) -> tuple[list[tuple[int, bool]], object]:
    sends: list[tuple[int, bool]] = []
    queue = list(outcomes)

    async def send(call: Call, number: int, is_retry: bool) -> Outcome | None:
        sends.append((number, is_retry))
        return queue.pop(0)

    return sends, send


def failed(status: int) -> Outcome:
    return Outcome.http_error(response(status), retryable=True, resend_safe=False, retry_after=None)


async def test_a_retryable_answer_is_sent_again_after_backoff_until_it_succeeds() -> None:
    parts = Parts()
    sends, send = scripted(failed(503), failed(503), Outcome.success(response(200), 200))
    result = await Retry(parts.wiring, Settings()).run(send, parts.call())  # type: ignore[arg-type]
    assert isinstance(result, Response)
    assert result.attempts == 3
    assert sends == [(1, False), (2, True), (3, True)]
    assert parts.clock.slept == [0.1, 0.2]  # base_delay doubling, no jitter
    assert parts.kinds().count("RetryScheduled") == 2


async def test_the_last_outcome_stands_when_attempts_run_out() -> None:
    parts = Parts()
    _, send = scripted(failed(503), failed(503), failed(503))
    result = await Retry(parts.wiring, Settings()).run(send, parts.call())  # type: ignore[arg-type]
    assert result.status == 503
    assert result.attempts == 3


async def test_an_unknown_outcome_is_not_resent_for_a_call_that_is_not_resend_safe() -> None:
    parts = Parts()
    timeout = Outcome.retryable_failure(RequestTimeout("slow"), vendor=UNKNOWN)
    sends, send = scripted(timeout)
    with pytest.raises(RequestTimeout) as info:
        await Retry(parts.wiring, Settings()).run(send, parts.call(resend_safe=False))  # type: ignore[arg-type]
    assert len(sends) == 1
    assert info.value.attempts == 1


async def test_a_retry_refused_admission_surfaces_the_previous_outcome() -> None:
    parts = Parts()
    _, send = scripted(failed(503), None)
    result = await Retry(parts.wiring, Settings()).run(send, parts.call())  # type: ignore[arg-type]
    assert (result.status, result.attempts) == (503, 1)


async def test_a_retry_that_cannot_finish_before_the_deadline_is_not_started() -> None:
    parts = Parts()
    policy = RetryPolicy(max_attempts=5, base_delay=5.0, jitter=False)
    sends, send = scripted(failed(503), failed(503))
    call = parts.call(retry=policy, deadline=3.0)
    result = await Retry(parts.wiring, Settings()).run(send, call)  # type: ignore[arg-type]
    assert result.status == 503
    assert len(sends) == 1


async def test_a_429_with_retry_after_pauses_the_service_at_most_max_shared_pause() -> None:
    parts = Parts()
    throttled = Outcome.http_error(
        response(429), retryable=False, resend_safe=False, retry_after=1000.0
    )
    _, send = scripted(throttled)
    await Retry(parts.wiring, Settings(pause=7.0)).run(send, parts.call())  # type: ignore[arg-type]
    admission = await parts.backend.admit("svc", None, parts.call().breaker, None, probe_lease=1.0)
    assert not admission.admitted
    assert admission.wait == pytest.approx(7.0)
