"""Small value types: credentials' expiry arithmetic and endpoint copies."""

from __future__ import annotations

from nexus_connector_async import Credentials, Endpoint, RateLimitConfig, Timeouts


def test_credentials_expire_and_want_a_refresh_within_the_skew() -> None:
    creds = Credentials("tok", expires_at=1000.0)
    assert not creds.is_expired(now=999.9)
    assert creds.is_expired(now=1000.0)
    assert not creds.should_refresh(skew=300.0, now=699.9)
    assert creds.should_refresh(skew=300.0, now=700.0)
    forever = Credentials("tok")
    assert not forever.is_expired(now=1e12)
    assert not forever.should_refresh(now=1e12)
    assert Credentials("t", token_type="Basic").authorization == "Basic t"


def test_endpoint_copies_change_one_thing_and_leave_the_original_alone() -> None:
    base = Endpoint.create("https://api.example.com/v1/x", "post")
    assert base.method == "POST"
    limited = base.with_rate_limit(RateLimitConfig.per_minute(60)).with_timeout(Timeouts(5.0))
    tagged = limited.with_headers(**{"X-Tenant": "t1"}).with_deadline(9.0)
    assert (base.rate_limit, base.timeout, base.headers, base.deadline) == (
        None,
        Timeouts(),
        {},
        None,
    )
    assert tagged.rate_limit == RateLimitConfig.per_minute(60)
    assert (tagged.timeout.total, tagged.headers, tagged.deadline) == (5.0, {"X-Tenant": "t1"}, 9.0)
