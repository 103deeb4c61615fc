"""Outcome classification: answers and errors become named outcomes the retry loop acts on."""

from __future__ import annotations

from nexus_connector_async import (
    ConnectionFailed,
    ConnectorError,
    HttpStatusError,
    RequestTimeout,
    RetryPolicy,
)
from nexus_connector_async.pipeline._outcome import (
    ANSWERED,
    UNKNOWN,
    UNTOUCHED,
    Outcome,
    from_error,
    from_response,
    from_transport_error,
)

from ._wiring import response

POLICY = RetryPolicy()


def test_a_2xx_is_a_final_success_with_its_status() -> None:
    outcome = from_response(response(201), POLICY)
    assert outcome == Outcome.success(outcome.value, 201)
    assert (outcome.failure, outcome.retryable, outcome.vendor) == (False, False, ANSWERED)


def test_a_503_counts_against_the_breaker_is_retryable_and_carries_retry_after() -> None:
    outcome = from_response(response(503, **{"Retry-After": "2"}), POLICY)
    assert (outcome.failure, outcome.retryable, outcome.retry_after) == (True, True, 2.0)
    assert outcome.vendor == ANSWERED


def test_a_documented_not_processed_status_is_resend_safe() -> None:
    policy = RetryPolicy(always_safe_statuses=frozenset({429}))
    outcome = from_response(response(429), policy)
    assert (outcome.failure, outcome.retryable, outcome.vendor) == (False, True, UNTOUCHED)


def test_stripe_should_retry_overrides_the_policys_statuses() -> None:
    outcome = from_response(response(500, **{"Stripe-Should-Retry": "false"}), POLICY)
    assert (outcome.failure, outcome.retryable) == (True, False)


def test_a_timeout_after_sending_may_have_reached_the_vendor() -> None:
    outcome = from_transport_error(RequestTimeout("slow"))
    assert (outcome.failure, outcome.retryable, outcome.vendor) == (True, True, UNKNOWN)


def test_a_connection_that_failed_before_sending_touched_nothing() -> None:
    outcome = from_transport_error(ConnectionFailed("refused", sent=False))
    assert outcome.vendor == UNTOUCHED


def test_a_throttled_error_is_retried_not_counted_and_untouched() -> None:
    class Throttled(ConnectorError):
        throttled = True
        retry_after = 1.5

    outcome = from_error(Throttled("slow down"))
    assert (outcome.failure, outcome.retryable, outcome.vendor) == (False, True, UNTOUCHED)
    assert outcome.retry_after == 1.5


def test_a_vendors_5xx_error_from_a_factory_was_answered() -> None:
    outcome = from_error(HttpStatusError(response(502)))
    assert (outcome.failure, outcome.retryable, outcome.vendor) == (True, True, ANSWERED)


def test_a_plain_connector_error_is_final() -> None:
    outcome = from_error(ConnectorError("no"))
    assert (outcome.failure, outcome.retryable, outcome.vendor) == (False, False, ANSWERED)
