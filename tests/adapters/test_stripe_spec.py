"""Every request the Stripe adapter emits conforms to Stripe's OpenAPI definition; amounts
round-trip exactly through the wire format (Hypothesis)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus_connector_async import Connector
from nexus_connector_async.adapters import Money
from nexus_connector_async.adapters.stripe import StripePaymentAdapter
from nexus_connector_async.testing import StripeSimulator
from nexus_connector_async.testing._vendor_server import parse_brackets
from tests.adapters._specs import require_spec
from tests.adapters._stripe_minimums import at_least_minimum

KEY = "sk_test_spec_0123456789"
# Operations the trimmed definition does not carry (legacy charge capture/retrieve).
NOT_IN_SPEC = {("POST", "/v1/charges/{}/capture"), ("GET", "/v1/charges/{}")}


@pytest.fixture
async def sim() -> AsyncIterator[StripeSimulator]:
    async with StripeSimulator(api_key=KEY) as s:
        yield s


@pytest.fixture
async def stripe(sim: StripeSimulator) -> AsyncIterator[StripePaymentAdapter]:
    async with Connector() as connector:
        yield StripePaymentAdapter(connector, KEY, base_url=sim.url)


async def test_every_request_the_adapter_emits_matches_the_openapi_definition(
    stripe: StripePaymentAdapter, sim: StripeSimulator
) -> None:
    spec = require_spec("stripe.json")
    usd = Money("25.00", "USD")
    await stripe.create_payment_intent(usd, metadata={"order": "1"}, description="d")
    paid = await stripe.charge(usd, "pm_card_visa", metadata={"order": "2"}, description="x")
    await stripe.retrieve(paid.id)
    await stripe.refund(paid.id, Money("5.00", "USD"), reason="duplicate", metadata={"r": "1"})
    held = await stripe.authorize(usd, "pm_card_visa")
    await stripe.capture(held.id, Money("20.00", "USD"))
    await stripe.create_payment_intent(
        usd, payment_method="pm_card_visa", confirm=True, return_url="https://shop.example/r"
    )
    charge = await stripe.create_charge(usd, "tok_visa", capture=False, metadata={"a": "b"})
    await stripe.capture(charge.id)
    await stripe.refund(charge.id)
    checked = 0
    for request in sim.requests:
        generic = "/".join("{}" if p.startswith("ch_") else p for p in request.path.split("/"))
        if (request.method, generic) in NOT_IN_SPEC:
            continue
        assert spec.validate(request) == [], (request.method, request.path)
        checked += 1
    assert checked == len(sim.requests) - 1  # all but the legacy charge capture


async def test_the_validator_itself_catches_a_bad_request(sim: StripeSimulator) -> None:
    spec = require_spec("stripe.json")
    from multidict import CIMultiDict, CIMultiDictProxy  # noqa: PLC0415

    from nexus_connector_async.testing import SimulatedRequest  # noqa: PLC0415

    headers = CIMultiDictProxy(
        CIMultiDict(
            {"Content-Type": "application/x-www-form-urlencoded", "Authorization": "Bearer x"}
        )
    )
    bad = SimulatedRequest("POST", "/v1/refunds", "", headers, b"amount=1.5&reason=because")
    errors = spec.validate(bad)
    assert any("amount" in e for e in errors)
    assert any("reason" in e for e in errors)
    no_auth = SimulatedRequest(
        "GET", "/v1/payment_intents/pi_1", "", CIMultiDictProxy(CIMultiDict()), b""
    )
    assert spec.validate(no_auth)


# Independent of the adapter's tables: (currency, decimals on the Money, Stripe factor).
CURRENCIES = [
    ("USD", 2, 1),
    ("EUR", 2, 1),
    ("GBP", 2, 1),
    ("JPY", 0, 1),
    ("KRW", 0, 1),
    ("ISK", 0, 100),
    ("UGX", 0, 100),
    ("HUF", 2, 1),
]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    currency=st.sampled_from(CURRENCIES),
    units=st.integers(min_value=1, max_value=999_999),
)
async def test_charged_amounts_round_trip_exactly_through_stripe_minor_units(
    stripe: StripePaymentAdapter, sim: StripeSimulator, currency: tuple[str, int, int], units: int
) -> None:
    code, decimals, factor = currency
    money = Money(at_least_minimum(Decimal(units).scaleb(-decimals), code), code)
    payment = await stripe.charge(money, "pm_card_visa")
    sent = parse_brackets(sim.requests[-1].body.decode())
    assert sent["amount"] == str(int(money.amount.scaleb(decimals)) * factor)
    assert sent["currency"] == code.lower()
    assert payment.amount == money
