"""The adapters' one skeleton (`adapters/_vendor.py`): routes built once, one way to attach
auth, one base_url check, and vendor knowledge kept out of the pipeline."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from nexus_connector_async import (
    Connector,
    Endpoint,
    HttpStatusError,
    InvalidRequest,
    Response,
    RetryPolicy,
    Timeouts,
)
from nexus_connector_async.adapters import (
    PayPalPaymentAdapter,
    StripePaymentAdapter,
    TwilioSmsAdapter,
)
from nexus_connector_async.adapters._vendor import (
    FixedCredentials,
    Policies,
    VendorClient,
    check_base_url,
)
from nexus_connector_async.adapters.stripe._adapter import should_retry
from nexus_connector_async.testing import MockTransport, RecordedRequest

FAST = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0)
POLICIES = Policies(Timeouts(total=5.0), FAST)
SRC = Path(__file__).resolve().parents[2] / "src" / "nexus_connector_async"


def answer(status: int, **headers: str) -> MockTransport:
    def handler(request: RecordedRequest) -> Response:
        return Response(status, list(headers.items()), b"{}")

    return MockTransport(handler)


@pytest.mark.parametrize(
    "url", ["http://api.example.com", "ftp://x", "", None, "https://", "api.example.com"]
)
def test_base_url_is_https_or_a_loopback_http_simulator(url: object) -> None:
    with pytest.raises(InvalidRequest, match="base_url must be an https URL"):
        check_base_url(url)


def test_base_url_loses_its_trailing_slash_and_keeps_loopback_http() -> None:
    assert check_base_url("https://api.example.com/") == "https://api.example.com"
    assert check_base_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    "build",
    [
        lambda c: StripePaymentAdapter(c, "sk_test_x", base_url="http://stripe.example"),
        lambda c: PayPalPaymentAdapter(c, "id", "secret", base_url="http://paypal.example"),
        lambda c: TwilioSmsAdapter(
            c, "AC" + "0" * 32, "token", "+14155550100", base_url="http://twilio.example"
        ),
    ],
)
async def test_every_http_adapter_refuses_a_clear_text_base_url_the_same_way(build: object) -> None:
    async with Connector() as connector:
        with pytest.raises(InvalidRequest, match=r"base_url must be an https URL"):
            build(connector)  # type: ignore[operator]


async def test_a_route_is_built_once_and_filled_per_call_with_its_policies_kept() -> None:
    async with Connector() as connector:
        client = VendorClient(connector, "vendor", POLICIES, base_url="https://api.example.com")
        route = client.route("/v1/things/{id}/capture", idempotency_header="Idempotency-Key")
        endpoint = route.at(id="th_1")
        assert endpoint.url == "https://api.example.com/v1/things/th_1/capture"
        assert (endpoint.retry, endpoint.timeout) == (FAST, Timeouts(total=5.0))
        assert endpoint.idempotency_header == "Idempotency-Key"
        fixed = client.route("/v1/things")
        assert fixed.at() is fixed.endpoint


async def test_auth_reaches_the_request_from_the_credential_provider_only() -> None:
    transport = answer(200)
    async with Connector(http=transport) as connector:
        client = VendorClient(
            connector,
            "vendor",
            POLICIES,
            base_url="https://api.example.com",
            credentials=FixedCredentials("s3cret-token"),
        )
        route = client.route("/v1/things")
        assert "s3cret" not in repr(route) + repr(client) + repr(client.credentials)
        await client.send(route.endpoint, {}, tenant_id=None)
    [request] = transport.requests
    assert request.headers["Authorization"] == "Bearer s3cret-token"


async def test_a_non_2xx_answer_raises_the_vendors_mapped_error_or_http_status_error() -> None:
    class VendorBroke(Exception):
        pass

    async with Connector(http=answer(400)) as connector:
        plain = VendorClient(connector, "vendor", POLICIES, base_url="https://api.example.com")
        mapped = VendorClient(
            connector,
            "vendor",
            POLICIES,
            base_url="https://api.example.com",
            errors=lambda response: VendorBroke(response.status),
        )
        with pytest.raises(HttpStatusError):
            await plain.send(plain.route("/x").endpoint, tenant_id=None)
        with pytest.raises(VendorBroke):
            await mapped.send(mapped.route("/x").endpoint, tenant_id=None)


async def test_the_pipeline_heeds_only_the_policys_hint_which_reads_stripe_should_retry() -> None:
    """api.md: a `RetryPolicy` honours `Stripe-Should-Retry` (its default `retry_hint`); the
    pipeline asks the hint, so `retry_hint=None` turns the header off."""
    assert FAST.retry_hint is should_retry
    transport = answer(503, **{"Stripe-Should-Retry": "false"})
    async with Connector(http=transport) as connector:
        unhinted = Endpoint(
            "https://api.example.com/x", "GET", retry=msgspec.structs.replace(FAST, retry_hint=None)
        )
        with pytest.raises(HttpStatusError):
            await connector.execute("vendor", unhinted)
        assert len(transport.requests) == 3  # 503 retried as the statuses say
        plain = Endpoint("https://api.example.com/x", "GET", retry=FAST)
        with pytest.raises(HttpStatusError):
            await connector.execute("vendor", plain)
        assert len(transport.requests) == 4  # Stripe's "false" stopped the retries


async def test_a_stripe_retry_policy_of_the_callers_keeps_stripe_should_retry() -> None:
    async with Connector() as connector:
        adapter = StripePaymentAdapter(connector, "sk_test_x", retry=FAST)
    assert adapter._vendor.policies.retry.retry_hint is should_retry


def test_no_module_outside_the_stripe_adapter_reads_stripe_should_retry() -> None:
    """Vendor knowledge lives in the vendor's folder (the Stripe simulator sends the header),
    except `RetryPolicy`'s default hint, which api.md asks to honour the header everywhere;
    the pipeline itself only asks the policy's hint."""
    readers = [
        path.relative_to(SRC).as_posix()
        for path in SRC.rglob("*.py")
        if "Stripe-Should-Retry" in path.read_text()
        and not path.relative_to(SRC).as_posix().startswith(("adapters/stripe/", "testing/"))
        and path.relative_to(SRC).as_posix() != "_config.py"
    ]
    assert readers == []
