"""`ConcurrencyLimit` validation and `Endpoint.with_concurrency_limit` (api.md rule 26)."""

from __future__ import annotations

import pytest

from nexus_connector_async import (
    ConcurrencyLimit,
    ConcurrencyLimitExceeded,
    Endpoint,
    InvalidRequest,
    RateLimitExceeded,
)


def test_defaults_fail_fast_per_service() -> None:
    limit = ConcurrencyLimit(4)
    assert (limit.max_in_flight, limit.max_wait, limit.scope, limit.lease) == (
        4,
        0.0,
        "service",
        None,
    )
    assert limit.adaptive is False


@pytest.mark.parametrize(
    "kw",
    [
        {"max_in_flight": 0},
        {"max_in_flight": 2.5},
        {"max_in_flight": True},
        {"max_in_flight": 3, "max_wait": -1},
        {"max_in_flight": 3, "scope": "global"},
        {"max_in_flight": 3, "lease": 0},
        {"max_in_flight": 3, "adaptive": "yes"},
        {"max_in_flight": 3, "latency_target": 0},
        {"max_in_flight": 3, "window": 0},
    ],
)
def test_bad_values_are_refused_naming_the_field(kw: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest, match="ConcurrencyLimit"):
        ConcurrencyLimit(**kw)  # type: ignore[arg-type]


def test_frozen() -> None:
    limit = ConcurrencyLimit(2)
    with pytest.raises(AttributeError):
        limit.max_in_flight = 3  # type: ignore[misc]


def test_endpoint_copy_carries_the_limit() -> None:
    ep = Endpoint.create("https://api.example.com/x")
    assert ep.concurrency_limit is None
    limited = ep.with_concurrency_limit(ConcurrencyLimit(3, max_wait=1.0))
    assert limited.concurrency_limit == ConcurrencyLimit(3, max_wait=1.0)
    assert ep.concurrency_limit is None
    assert limited.with_concurrency_limit(None).concurrency_limit is None
    with pytest.raises(InvalidRequest, match="concurrency_limit"):
        Endpoint("https://api.example.com/x", concurrency_limit=3)  # type: ignore[arg-type]


def test_exceeded_is_a_rate_limit_error_with_retry_after() -> None:
    err = ConcurrencyLimitExceeded("no slot", retry_after=0.5)
    assert isinstance(err, RateLimitExceeded)
    assert err.retry_after == 0.5
    assert "retry after" in str(err)
