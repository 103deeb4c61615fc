"""Every request the PayPal adapter emits conforms to PayPal's OpenAPI definitions; amounts
round-trip exactly through PayPal's decimal strings (Hypothesis)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus_connector_async import Connector
from nexus_connector_async.adapters import Money
from nexus_connector_async.adapters.paypal import PayPalPaymentAdapter
from nexus_connector_async.testing import PayPalSimulator
from tests.adapters._specs import require_spec


@pytest.fixture
async def sim() -> AsyncIterator[PayPalSimulator]:
    async with PayPalSimulator() as s:
        yield s


@pytest.fixture
async def paypal(sim: PayPalSimulator) -> AsyncIterator[PayPalPaymentAdapter]:
    async with Connector() as connector:
        yield PayPalPaymentAdapter(connector, sim.client_id, sim.client_secret, base_url=sim.url)


async def test_every_request_the_adapter_emits_matches_the_openapi_definitions(
    paypal: PayPalPaymentAdapter, sim: PayPalSimulator
) -> None:
    orders = require_spec("paypal_checkout_orders_v2.json")
    payments = require_spec("paypal_payments_v2.json")
    usd = Money("25.00", "USD")
    order = await paypal.create_order(usd, reference_id="ref-1")
    await paypal.create_order(
        usd, return_url="https://a.example/ok", cancel_url="https://a.example/no"
    )
    sim.approve(order.id)
    captured = await paypal.capture_order(order.id)
    await paypal.get_order(order.id)
    await paypal.refund_capture(captured.id, Money("5.00", "USD"))
    await paypal.refund_capture(captured.id)
    auth_order = await paypal.create_order(usd, intent="AUTHORIZE")
    sim.approve(auth_order.id)
    auth = await paypal.authorize_order(auth_order.id)
    await paypal.capture_authorization(auth.id, Money("10.00", "USD"), final_capture=False)
    await paypal.charge(usd, "vault1", source="card")
    held = await paypal.authorize(Money("1000", "JPY"), "vault2", source="venmo")
    await paypal.capture(held.id)
    api = [r for r in sim.requests if r.path.startswith("/v2/")]
    assert len(api) == 12
    for request in api:
        spec = payments if request.path.startswith("/v2/payments/") else orders
        assert spec.validate(request) == [], (request.method, request.path)


async def test_the_validator_itself_catches_a_bad_request() -> None:
    spec = require_spec("paypal_checkout_orders_v2.json")
    from multidict import CIMultiDict, CIMultiDictProxy  # noqa: PLC0415

    from nexus_connector_async.testing import SimulatedRequest  # noqa: PLC0415

    headers = CIMultiDictProxy(
        CIMultiDict(
            {
                "Content-Type": "application/json",
                "Authorization": "Bearer t",
                "PayPal-Request-Id": "x" * 109,
            }
        )
    )
    body = {"intent": "SALE", "purchase_units": [{"amount": {"currency_code": "USD", "value": 10}}]}
    errors = spec.validate(
        SimulatedRequest("POST", "/v2/checkout/orders", "", headers, json.dumps(body).encode())
    )
    assert any("intent" in e for e in errors)
    assert any("value" in e for e in errors)
    assert any("PayPal-Request-Id" in e for e in errors)


# (currency, decimals PayPal wants) written out from vendor-facts 2.6, not from the adapter.
CURRENCIES = [("USD", 2), ("EUR", 2), ("GBP", 2), ("JPY", 0), ("HUF", 0), ("TWD", 0), ("CAD", 2)]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(currency=st.sampled_from(CURRENCIES), units=st.integers(min_value=1, max_value=10**12))
async def test_charged_amounts_round_trip_exactly_through_paypal_value_strings(
    paypal: PayPalPaymentAdapter, sim: PayPalSimulator, currency: tuple[str, int], units: int
) -> None:
    code, decimals = currency
    money = Money(Decimal(units).scaleb(-decimals), code)
    payment = await paypal.charge(money, "vault_ok")
    sent = json.loads(sim.requests[-1].body)["purchase_units"][0]["amount"]
    expected = str(units) if decimals == 0 else f"{units // 100}.{units % 100:02d}"
    assert sent == {"currency_code": code, "value": expected}
    assert payment.amount == money
