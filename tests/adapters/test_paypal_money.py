"""PayPal tells the truth about money (api.md rules 34-37, 40), against the strict simulator."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus_connector_async import (
    Connector,
    Credentials,
    Endpoint,
    IdempotencyKey,
    InvalidRequest,
    StaticCredentialProvider,
)
from nexus_connector_async.adapters import (
    Money,
    PaymentDeclined,
    PayPalDeclined,
    PayPalPaymentAdapter,
    VendorResponseError,
)
from nexus_connector_async.adapters.paypal import (
    PayPalPayerActionRequired,
    PayPalResponseError,
)
from nexus_connector_async.testing import PayPalSimulator

CLIENT_ID = "AeMoneyClientId"
SECRET = "EJMoneySecretNeverLeaks42"
# Independent of the adapter's table (vendor-facts 2.6).
PAYPAL = [
    *("AUD", "BRL", "CAD", "CHF", "CNY", "CZK", "DKK", "EUR", "GBP", "HKD", "HUF", "ILS"),
    *("JPY", "MXN", "MYR", "NOK", "NZD", "PHP", "PLN", "RUB", "SEK", "SGD", "THB", "TWD"),
    "USD",
]
WHOLE = {"HUF", "JPY", "TWD"}


@pytest.fixture
async def sim() -> AsyncIterator[PayPalSimulator]:
    async with PayPalSimulator(CLIENT_ID, SECRET) as s:
        yield s


@pytest.fixture
async def connector() -> AsyncIterator[Connector]:
    async with Connector() as c:
        yield c


@pytest.fixture
def paypal(connector: Connector, sim: PayPalSimulator) -> PayPalPaymentAdapter:
    return PayPalPaymentAdapter(connector, CLIENT_ID, SECRET, base_url=sim.url)


def api_posts(sim: PayPalSimulator) -> list[str]:
    return [r.path for r in sim.requests if r.method == "POST" and r.path.startswith("/v2/")]


# -- rule 36: a 2xx with a FAILED or DECLINED capture raises -----------------------------------


@pytest.mark.parametrize("status", ["FAILED", "DECLINED"])
async def test_a_capture_failed_or_declined_inside_a_201_raises_payment_declined(
    paypal: PayPalPaymentAdapter, sim: PayPalSimulator, status: str
) -> None:
    with pytest.raises(PaymentDeclined) as caught:
        await paypal.charge(Money("10.00", "USD"), f"vault_{status.lower()}")
    assert isinstance(caught.value, PayPalDeclined)
    assert caught.value.code == status
    assert caught.value.decline_code == "0500"
    assert caught.value.response.status == 201
    # Reading the order later shows the failure as a result, not an exception.
    order_id = next(iter(sim.orders))
    assert (await paypal.get_order(order_id)).status == "failed"


async def test_payer_action_required_is_its_own_error_with_the_payer_action_link(
    paypal: PayPalPaymentAdapter,
) -> None:
    with pytest.raises(PayPalPayerActionRequired) as caught:
        await paypal.charge(Money("10.00", "USD"), "vault_payer_action")
    error = caught.value
    assert error.code == "PAYER_ACTION_REQUIRED"
    assert error.action_url
    assert error.action_url.startswith("https://www.sandbox.paypal.com/checkoutnow?token=")
    assert not isinstance(error, PaymentDeclined)


# -- rule 35: captured and authorized amounts -------------------------------------------------


async def test_a_partial_capture_reports_the_captured_amount(
    paypal: PayPalPaymentAdapter,
) -> None:
    held = await paypal.authorize(Money("100.00", "USD"), "vault_ok")
    assert held.authorized_amount == Money("100.00", "USD")
    captured = await paypal.capture(held.id, Money("60.00", "USD"))
    assert captured.amount == Money("60.00", "USD")
    paid = await paypal.charge(Money("30.00", "EUR"), "vault_ok")
    assert paid.amount == paid.authorized_amount == Money("30.00", "EUR")


# -- rule 34: an answer without the representation, an unreadable one ------------------------


async def test_a_minimal_refund_answer_is_read_back_not_raised_after_the_refund(
    paypal: PayPalPaymentAdapter, sim: PayPalSimulator
) -> None:
    paid = await paypal.charge(Money("10.00", "USD"), "vault_ok")
    sim.inject(201, {"id": "RF1", "status": "COMPLETED", "links": []})
    sim.refunds["RF1"] = {
        "id": "RF1",
        "status": "COMPLETED",
        "amount": {"currency_code": "USD", "value": "10.00"},
    }
    refund = await paypal.refund(paid.id)
    assert refund.amount == Money("10.00", "USD")
    assert refund.succeeded
    assert sim.count("GET", "/v2/payments/refunds/RF1") == 1


async def test_an_unreadable_2xx_is_a_vendor_error_never_invalid_request_and_not_resent(
    paypal: PayPalPaymentAdapter, sim: PayPalSimulator
) -> None:
    paid = await paypal.charge(Money("10.00", "USD"), "vault_ok")
    odd = {"id": "RF2", "status": "COMPLETED", "amount": {"currency_code": "U1D", "value": "x"}}
    sim.inject(201, odd)
    key = IdempotencyKey("pp-refund-odd")
    with pytest.raises(VendorResponseError) as caught:
        await paypal.refund(paid.id, idempotency_key=key)
    assert isinstance(caught.value, PayPalResponseError)
    assert not isinstance(caught.value, InvalidRequest)
    assert json.loads(caught.value.response.body) == odd
    refunds = sim.count("POST", f"/v2/payments/captures/{paid.id}/refund")
    with pytest.raises(VendorResponseError):
        await paypal.refund(paid.id, idempotency_key=key)
    assert sim.count("POST", f"/v2/payments/captures/{paid.id}/refund") == refunds == 1


async def test_a_payment_in_a_retired_currency_reads_back(
    paypal: PayPalPaymentAdapter, sim: PayPalSimulator
) -> None:
    sim.inject(
        201,
        {
            "id": "ORDERBGN",
            "status": "COMPLETED",
            "purchase_units": [
                {
                    "amount": {"currency_code": "BGN", "value": "10.00"},
                    "payments": {
                        "captures": [
                            {
                                "id": "CAPBGN",
                                "status": "COMPLETED",
                                "amount": {"currency_code": "BGN", "value": "10.00"},
                            }
                        ]
                    },
                }
            ],
        },
    )
    payment = await paypal.charge(Money("10.00", "EUR"), "vault_ok")
    assert payment.amount == Money.from_vendor("10.00", "BGN")


# -- rule 37: a per-tenant provider is asked for (service, tenant) ------------------------------


async def test_a_per_tenant_provider_is_honoured(
    connector: Connector, sim: PayPalSimulator
) -> None:
    sim.tokens |= {"tok-platform", "tok-tenant-a", "tok-tenant-b"}
    provider = StaticCredentialProvider(
        {
            "paypal": Credentials("tok-platform"),
            ("paypal", "a"): Credentials("tok-tenant-a"),
            ("paypal", "b"): Credentials("tok-tenant-b"),
        }
    )
    paypal = PayPalPaymentAdapter(
        connector, CLIENT_ID, SECRET, base_url=sim.url, credentials=provider
    )
    await paypal.charge(Money("1.00", "USD"), "vault_ok", tenant_id="b")
    await paypal.charge(Money("1.00", "USD"), "vault_ok", tenant_id="a")
    await paypal.charge(Money("1.00", "USD"), "vault_ok")
    used = [r.headers["Authorization"] for r in sim.requests]
    assert used == ["Bearer tok-tenant-b", "Bearer tok-tenant-a", "Bearer tok-platform"]
    assert sim.token_requests == 0


# -- rule 40: the simulator is as strict as PayPal ---------------------------------------------


async def _raw(
    connector: Connector, sim: PayPalSimulator, payload: dict[str, Any], prefer: str | None
) -> Any:
    sim.tokens.add("tok-raw")
    headers = {"Authorization": "Bearer tok-raw", "PayPal-Request-Id": payload["id"]}
    if prefer is not None:
        headers["Prefer"] = prefer
    endpoint = Endpoint(sim.url + "/v2/checkout/orders", headers=headers)
    body = {"intent": "CAPTURE", "purchase_units": [{"amount": payload["amount"]}]}
    return await connector.execute("raw", endpoint, body, raise_for_status=False)


@pytest.mark.parametrize(
    ("amount", "issue"),
    [
        ({"currency_code": "KWD", "value": "5.00"}, "CURRENCY_NOT_SUPPORTED"),
        ({"currency_code": "BGN", "value": "5.00"}, "CURRENCY_NOT_SUPPORTED"),
        ({"currency_code": "USD", "value": "1000000000000000.00"}, "MAX_VALUE_EXCEEDED"),
        ({"currency_code": "JPY", "value": "10.0"}, "DECIMALS_NOT_SUPPORTED"),
    ],
)
async def test_the_simulator_refuses_currencies_and_amounts_paypal_refuses(
    connector: Connector, sim: PayPalSimulator, amount: dict[str, str], issue: str
) -> None:
    response = await _raw(
        connector,
        sim,
        {"id": f"r-{issue}-{amount['currency_code']}", "amount": amount},
        "return=representation",
    )
    assert response.status == 422
    assert response.json()["details"][0]["issue"] == issue


@pytest.mark.parametrize(
    ("prefer", "keys"),
    [
        (None, {"id", "status", "links"}),
        ("return=minimal", {"id", "status", "links"}),
        ("return=representation", {"id", "status", "links", "intent", "purchase_units"}),
    ],
)
async def test_the_simulator_honours_prefer_return_minimal(
    connector: Connector, sim: PayPalSimulator, prefer: str | None, keys: set[str]
) -> None:
    amount = {"currency_code": "USD", "value": "1.00"}
    response = await _raw(connector, sim, {"id": f"p-{prefer}", "amount": amount}, prefer)
    assert response.status == 201
    got = set(response.json())
    assert keys <= got
    assert prefer == "return=representation" or got == keys


# -- money property tests over every PayPal currency --------------------------------------------

PROPERTY = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY
@given(currency=st.sampled_from(PAYPAL), units=st.integers(1, 10**12))
async def test_every_paypal_currency_round_trips_through_the_simulator(
    paypal: PayPalPaymentAdapter, sim: PayPalSimulator, currency: str, units: int
) -> None:
    money = Money(Decimal(units).scaleb(0 if currency in WHOLE else -2), currency)
    payment = await paypal.charge(money, "vault_ok")
    assert payment.amount == money


@PROPERTY
@given(currency=st.sampled_from(PAYPAL), units=st.integers(1, 10**9))
async def test_every_paypal_currency_refuses_an_inexact_amount_before_sending(
    paypal: PayPalPaymentAdapter, sim: PayPalSimulator, currency: str, units: int
) -> None:
    digits = 0 if currency in WHOLE else 2
    money = Money(Decimal(units * 10 + 5).scaleb(-digits - 1), currency)
    before = len(sim.requests)
    with pytest.raises(InvalidRequest, match="exactly"):
        await paypal.charge(money, "vault_ok")
    assert len(sim.requests) == before


@PROPERTY
@given(paid=st.sampled_from(PAYPAL), asked=st.sampled_from(PAYPAL))
async def test_every_capture_currency_mismatch_is_refused(
    paypal: PayPalPaymentAdapter, sim: PayPalSimulator, paid: str, asked: str
) -> None:
    if paid == asked:
        return
    held = await paypal.authorize(Money(100, paid), "vault_ok")
    posts = len(api_posts(sim))
    with pytest.raises(InvalidRequest, match=rf"{asked}.*{paid}"):
        await paypal.capture(held.id, Money(1, asked))
    assert len(api_posts(sim)) == posts


async def test_a_minimal_capture_answer_is_read_back(
    paypal: PayPalPaymentAdapter, sim: PayPalSimulator
) -> None:
    held = await paypal.authorize(Money("20.00", "EUR"), "vault_ok")
    sim.inject(201, {"id": "CAPMIN", "status": "COMPLETED", "links": []})
    sim.captures["CAPMIN"] = {
        "id": "CAPMIN",
        "status": "COMPLETED",
        "amount": {"currency_code": "EUR", "value": "20.00"},
    }
    captured = await paypal.capture(held.id)
    assert captured.amount == Money("20.00", "EUR")
    assert sim.count("GET", "/v2/payments/captures/CAPMIN") == 1
