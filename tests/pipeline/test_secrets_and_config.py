"""Bad configuration is refused up front; planted secrets never reach logs, reprs or errors."""

from __future__ import annotations

from typing import Any

import pytest

import nexus_connector_async as nca
from nexus_connector_async import (
    CircuitBreakerConfig,
    Connector,
    ConnectorError,
    Credentials,
    Endpoint,
    HttpStatusError,
    IdempotencyKey,
    InvalidRequest,
    RateLimitConfig,
    RetryPolicy,
    StaticCredentialProvider,
    Timeouts,
)
from nexus_connector_async.testing import FakeClock, capture_logs

from ._stub import Stub, status

SECRETS = {
    "token": "tok_SECRET_1f9a8b7c6d",
    "card": "4242424242424242",
    "client_secret": "cs_SECRET_77aa88bb",
    "api_key": "sk_live_SECRET0123456789",
}


@pytest.mark.parametrize(
    ("factory", "field"),
    [
        (lambda: Timeouts(total=0), "Timeouts.total"),
        (lambda: Timeouts(connect=-1), "Timeouts.connect"),
        (lambda: RateLimitConfig.per_second(-5), "RateLimitConfig.rate"),
        (lambda: RateLimitConfig.per_second(5, burst=0), "RateLimitConfig.burst"),
        (lambda: RateLimitConfig.per_second(5, max_wait=-1), "RateLimitConfig.max_wait"),
        (lambda: RateLimitConfig.per_second(5, scope="global"), "RateLimitConfig.scope"),
        (lambda: CircuitBreakerConfig(failure_threshold=0), "failure_threshold"),
        (lambda: CircuitBreakerConfig(recovery_timeout=float("nan")), "recovery_timeout"),
        (lambda: RetryPolicy(max_attempts=0), "RetryPolicy.max_attempts"),
        (lambda: RetryPolicy(retry_statuses=frozenset({42})), "statuses"),
        (lambda: Endpoint.create("ftp://example.com/x"), "Endpoint.url"),
        (lambda: Endpoint.create("/relative"), "Endpoint.url"),
        (lambda: Endpoint.create("https://example.com", "TRACE"), "Endpoint.method"),
        (lambda: Endpoint("https://example.com", body="xml"), "Endpoint.body"),  # type: ignore[arg-type]
        (lambda: Endpoint("https://example.com", headers={"X-A": "1\r\nX-B: 2"}), "CR, LF"),
        (lambda: IdempotencyKey(""), "1 to 255"),
        (lambda: IdempotencyKey("x" * 256), "1 to 255"),
        (lambda: IdempotencyKey("caf\u00e9"), "printable ASCII"),
        (lambda: IdempotencyKey("a\nb"), "printable ASCII"),
        (lambda: Connector(idempotency_wait=-1), "idempotency_wait"),
    ],
)
def test_invalid_configuration_raises_invalid_request_naming_the_field(
    factory: Any, field: str
) -> None:
    with pytest.raises(InvalidRequest, match=field.replace(".", r"\.")):
        factory()


async def test_bad_call_arguments_are_refused_before_anything_is_sent(
    connector: Connector, stub: Stub
) -> None:
    ep = Endpoint.create(stub.url(), "POST", body="form")
    bad: list[dict[str, Any]] = [
        {"service": ""},
        {"service": "a b"},
        {"service": "{tag}"},
        {"tenant_id": "t\n"},
        {"payload": {"amount": 10.5}},
        {"headers": {"X-Evil": "a\r\nInjected: 1"}},
        {"idempotency_key": "k\x00"},
    ]
    for case in bad:
        args = {"service": "vendor", "payload": {"amount": 1}, **case}
        with pytest.raises(InvalidRequest):
            await connector.execute(args.pop("service"), ep, args.pop("payload"), **args)
    assert stub.count == 0


def test_credentials_and_keys_never_show_secrets_in_repr() -> None:
    creds = Credentials(SECRETS["token"], refresh_token=SECRETS["client_secret"], expires_at=5.0)
    for text in (repr(creds), str(creds), repr(IdempotencyKey(SECRETS["api_key"]))):
        assert all(secret not in text for secret in SECRETS.values())
    provider = StaticCredentialProvider({"stripe": SECRETS["api_key"]})
    assert SECRETS["api_key"] not in repr(provider)


async def test_planted_secrets_never_appear_in_logs_or_errors(stub: Stub) -> None:
    provider = StaticCredentialProvider({"vendor": Credentials(SECRETS["token"])})
    url = stub.url(f"/v1/pay?api_key={SECRETS['api_key']}")
    ep = Endpoint(
        url,
        "POST",
        body="form",
        retry=RetryPolicy(max_attempts=2, base_delay=0.0, max_delay=0.0),
        headers={"X-Client-Secret": SECRETS["client_secret"]},
    )
    payload = {"card": {"number": SECRETS["card"]}, "client_secret": SECRETS["client_secret"]}
    stub.queue(status(500), status(402, b'{"error":"declined"}'))
    errors: list[str] = []
    async with Connector(credentials=provider, clock=FakeClock()) as c:
        with capture_logs() as logs:
            try:
                await c.execute("vendor", ep, payload, idempotency_key=SECRETS["api_key"])
            except HttpStatusError as exc:
                errors += [str(exc), repr(exc), repr(exc.response)]
            assert await c.execute(
                "vendor", ep, payload, idempotency_key=SECRETS["api_key"], raise_for_status=False
            )
    assert stub.requests[0]["headers"]["Authorization"] == f"Bearer {SECRETS['token']}"
    assert len(logs) >= 4
    dump = repr(logs) + repr(errors)
    for secret in SECRETS.values():
        assert secret not in dump


async def test_a_service_without_credentials_gets_no_authorization_header(
    stub: Stub,
) -> None:
    provider = StaticCredentialProvider({"stripe": "sk_test_abc"})
    ep = Endpoint.create(stub.url(), "GET")
    async with Connector(credentials=provider) as c:
        await c.execute("stripe", ep)
        await c.execute("twilio", ep)
    assert stub.requests[0]["headers"]["Authorization"] == "Bearer sk_test_abc"
    assert "Authorization" not in stub.requests[1]["headers"]


def test_every_error_is_a_connector_error() -> None:
    errors = [getattr(nca, n) for n in nca.__all__ if n.endswith(("Error", "Exceeded"))]
    assert len(errors) >= 5
    assert all(issubclass(e, ConnectorError) for e in errors)
