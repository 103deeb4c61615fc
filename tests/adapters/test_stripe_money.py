"""Stripe tells the truth about money (api.md rules 33-36, 40), against the strict simulator."""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus_connector_async import (
    Connector,
    Endpoint,
    IdempotencyKey,
    InvalidRequest,
    RetryPolicy,
)
from nexus_connector_async.adapters import (
    PaymentDeclined,
    StripeAPIError,
    StripeCardError,
    StripeInvalidRequestError,
    StripePaymentAdapter,
    VendorResponseError,
)
from nexus_connector_async.adapters._money import ISO_4217_EXPONENTS, Money
from nexus_connector_async.adapters.stripe import StripeResponseError
from nexus_connector_async.testing import StripeSimulator
from nexus_connector_async.testing._vendor_server import parse_brackets
from tests.adapters._stripe_minimums import at_least_minimum

KEY = "sk_test_money_0123456789abcdef"
# Independent of the adapter's tables (vendor-facts 1.9): Stripe's digits and step per code.
ZERO = {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "VND", "VUV"}
ZERO |= {"XAF", "XOF", "XPF"}
TIMES_100 = {"ISK", "UGX"}
THREE = {"BHD", "JOD", "KWD", "OMR", "TND"}
STRIPE_CURRENCIES = sorted(c for c, e in ISO_4217_EXPONENTS.items() if e is not None)


def stripe_scale(code: str) -> tuple[int, int]:
    """(digits of the Money, minor units per smallest allowed step) for a Stripe currency."""
    if code in ZERO:
        return 0, 1
    if code in TIMES_100:
        return 0, 100
    if code in THREE:
        return 2, 10  # 3 digits on the wire, last one 0: the Money has 2
    exponent = ISO_4217_EXPONENTS[code]
    assert exponent is not None
    return exponent, 1


@pytest.fixture
async def sim() -> AsyncIterator[StripeSimulator]:
    async with StripeSimulator(api_key=KEY) as s:
        yield s


@pytest.fixture
async def connector() -> AsyncIterator[Connector]:
    async with Connector() as c:
        yield c


@pytest.fixture
def stripe(connector: Connector, sim: StripeSimulator) -> StripePaymentAdapter:
    return StripePaymentAdapter(connector, KEY, base_url=sim.url)


def posts(sim: StripeSimulator) -> list[str]:
    return [r.path for r in sim.requests if r.method == "POST"]


def seed_intent(sim: StripeSimulator, currency: str, amount: int, **extra: Any) -> str:
    """A succeeded PaymentIntent as Stripe would hold it (e.g. one made in BGN before 2026)."""
    intent_id = f"pi_seeded{len(sim.payment_intents)}"
    sim.payment_intents[intent_id] = {
        "id": intent_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_received": amount,
        "amount_capturable": 0,
        "currency": currency,
        "status": "succeeded",
        "next_action": None,
        **extra,
    }
    return intent_id


# -- rule 33: a Money in another currency is refused before anything is sent --------------------


async def test_capturing_eur_on_a_jpy_payment_is_refused_before_sending(
    stripe: StripePaymentAdapter, sim: StripeSimulator
) -> None:
    held = await stripe.authorize(Money("100000", "JPY"), "pm_card_visa")
    before = len(sim.requests)
    with pytest.raises(InvalidRequest, match=r"EUR.*JPY"):
        await stripe.capture(held.id, Money("10.00", "EUR"))
    assert len(sim.requests) == before  # the adapter knew the currency: not even a GET
    assert sim.payment_intents[held.id]["status"] == "requires_capture"


async def test_an_unknown_payment_costs_one_get_to_learn_its_currency(
    connector: Connector, sim: StripeSimulator
) -> None:
    maker = StripePaymentAdapter(connector, KEY, base_url=sim.url)
    paid = await maker.charge(Money("10.00", "USD"), "pm_card_visa")
    fresh = StripePaymentAdapter(connector, KEY, base_url=sim.url)
    before = len(sim.requests)
    with pytest.raises(InvalidRequest, match=r"KWD.*USD"):
        await fresh.refund(paid.id, Money("0.50", "KWD"))
    assert [(r.method, r.path) for r in sim.requests[before:]] == [
        ("GET", f"/v1/payment_intents/{paid.id}")
    ]
    assert sim.payment_intents[paid.id].get("amount_refunded", 0) == 0
    # In the right currency the refund goes out, with no second GET.
    refund = await fresh.refund(paid.id, Money("5.00", "USD"))
    assert refund.amount == Money("5.00", "USD")
    assert sim.count("GET") == 1


async def test_legacy_charges_are_checked_too(
    stripe: StripePaymentAdapter, sim: StripeSimulator
) -> None:
    held = await stripe.create_charge(Money("20.00", "GBP"), "tok_visa", capture=False)
    with pytest.raises(InvalidRequest, match=r"USD.*GBP"):
        await stripe.capture(held.id, Money("20.00", "USD"))
    with pytest.raises(InvalidRequest, match=r"USD.*GBP"):
        await stripe.refund(held.id, Money("1.00", "USD"))
    assert posts(sim) == ["/v1/charges"]


# -- rule 34: read back leniently; an unreadable 2xx is a vendor error, never a resend ----------


@pytest.mark.parametrize("currency", ["bgn", "hrk", "ang"])
async def test_refunding_a_payment_in_a_retired_currency_returns_the_refund(
    stripe: StripePaymentAdapter, sim: StripeSimulator, currency: str
) -> None:
    intent = seed_intent(sim, currency, 5000)
    full = await stripe.refund(intent, Money.from_vendor("10.00", currency))
    assert full.amount == Money.from_vendor("10.00", currency.upper())
    assert full.succeeded
    rest = await stripe.refund(intent)
    assert rest.amount.currency == currency.upper()
    assert rest.amount.amount == Decimal("40.00")
    payment = await stripe.retrieve(intent)
    assert payment.amount.currency == currency.upper()
    # A Money read back survives a pickle round trip (a job queue, a cache).
    assert pickle.loads(pickle.dumps(payment.amount)) == payment.amount


async def test_a_refund_2xx_that_cannot_be_read_is_a_vendor_error_and_is_not_resent(
    stripe: StripePaymentAdapter, sim: StripeSimulator
) -> None:
    paid = await stripe.charge(Money("10.00", "USD"), "pm_card_visa")
    odd = {"id": "re_odd", "object": "refund", "amount": "ten", "currency": "usd"}
    sim.inject(200, odd)
    key = IdempotencyKey("refund-odd-1")
    with pytest.raises(VendorResponseError) as caught:
        await stripe.refund(paid.id, idempotency_key=key)
    error = caught.value
    assert not isinstance(error, InvalidRequest)
    assert isinstance(error, StripeResponseError | StripeAPIError)
    assert error.response.status == 200
    assert msgspec.json.decode(error.response.body) == odd
    assert "do not resend" in str(error)
    # The answer was stored for its key: the same call again sends nothing.
    sent = sim.count("POST", "/v1/refunds")
    with pytest.raises(VendorResponseError):
        await stripe.refund(paid.id, idempotency_key=key)
    assert sim.count("POST", "/v1/refunds") == sent == 1


async def test_an_unreadable_currency_after_a_2xx_is_a_vendor_error(
    stripe: StripePaymentAdapter, sim: StripeSimulator
) -> None:
    sim.inject(200, {"id": "pi_x", "amount": 100, "currency": "u$d", "status": "succeeded"})
    with pytest.raises(StripeResponseError):
        await stripe.charge(Money("1.00", "USD"), "pm_card_visa")


# -- rule 35: Payment.amount is what was captured ----------------------------------------------


async def test_a_partial_capture_reports_the_captured_amount_and_the_authorized_one(
    stripe: StripePaymentAdapter,
) -> None:
    held = await stripe.authorize(Money("100.00", "USD"), "pm_card_visa")
    assert held.amount == held.authorized_amount == Money("100.00", "USD")
    captured = await stripe.capture(held.id, Money("60.00", "USD"))
    assert captured.succeeded
    assert captured.amount == Money("60.00", "USD")
    assert captured.authorized_amount == Money("100.00", "USD")
    assert (await stripe.retrieve(held.id)).amount == Money("60.00", "USD")


async def test_a_partial_capture_of_a_legacy_charge_reports_the_captured_amount(
    stripe: StripePaymentAdapter,
) -> None:
    held = await stripe.create_charge(Money("100.00", "USD"), "tok_visa", capture=False)
    captured = await stripe.capture(held.id, Money("60.00", "USD"))
    assert captured.amount == Money("60.00", "USD")
    assert captured.authorized_amount == Money("100.00", "USD")


# -- rule 36: declines raise; what the buyer needs is carried --------------------------------


async def test_a_3ds_card_without_return_url_answers_use_stripe_sdk_with_the_client_secret(
    stripe: StripePaymentAdapter, sim: StripeSimulator
) -> None:
    payment = await stripe.charge(Money("10.00", "USD"), "pm_card_authenticationRequired")
    assert payment.requires_action
    assert payment.next_action == "use_stripe_sdk"
    assert payment.action_url is None
    secret = sim.payment_intents[payment.id]["client_secret"]
    assert payment.client_secret == secret
    assert secret not in repr(payment)
    assert ("client_secret", "***") in payment.__rich_repr__()


async def test_authorize_takes_a_return_url_and_gets_the_redirect(
    stripe: StripePaymentAdapter, sim: StripeSimulator
) -> None:
    payment = await stripe.authorize(
        Money("10.00", "USD"), "pm_card_authenticationRequired", return_url="https://s.example/r"
    )
    assert payment.next_action == "redirect_to_url"
    assert payment.action_url
    assert payment.action_url.startswith("https://hooks.stripe.com/")
    assert parse_brackets(sim.requests[-1].body.decode())["return_url"] == "https://s.example/r"


async def test_a_402_keeps_the_payment_intent_the_charge_and_the_advice_code(
    stripe: StripePaymentAdapter, sim: StripeSimulator
) -> None:
    with pytest.raises(StripeCardError) as caught:
        await stripe.charge(Money("10.00", "USD"), "pm_card_chargeDeclinedInsufficientFunds")
    error = caught.value
    assert error.decline_code == "insufficient_funds"
    assert error.payment_intent_id in sim.payment_intents
    assert error.payment_intent_status == "requires_payment_method"
    assert error.charge_id
    assert error.charge_id.startswith("ch_")
    assert error.advice_code == "try_again_later"


async def test_a_2xx_carrying_a_failed_legacy_charge_raises_payment_declined(
    stripe: StripePaymentAdapter, sim: StripeSimulator
) -> None:
    failed = {
        "id": "ch_failed1",
        "amount": 1000,
        "currency": "usd",
        "status": "failed",
        "captured": False,
        "failure_code": "card_declined",
        "outcome": {"reason": "generic_decline"},
    }
    sim.inject(200, failed)
    with pytest.raises(PaymentDeclined) as caught:
        await stripe.create_charge(Money("10.00", "USD"), "tok_visa")
    assert caught.value.code == "card_declined"
    assert caught.value.decline_code == "generic_decline"
    # Reading it back later is a result, not an exception.
    sim.inject(200, failed)
    assert (await stripe.retrieve("ch_failed1")).status == "failed"


@pytest.mark.parametrize(
    ("call", "problem"),
    [
        ({"reason": ["duplicate"]}, "reason must be one of"),
        ({"reason": {"duplicate": 1}}, "reason must be one of"),
    ],
)
async def test_wrong_typed_refund_options_are_invalid_requests_not_type_errors(
    stripe: StripePaymentAdapter, sim: StripeSimulator, call: dict[str, Any], problem: str
) -> None:
    with pytest.raises(InvalidRequest, match=problem):
        await stripe.refund("pi_123", **call)
    with pytest.raises(InvalidRequest, match="capture_method"):
        await stripe.create_payment_intent(
            Money("1.00", "USD"),
            capture_method=["manual"],  # type: ignore[arg-type]
        )
    assert sim.requests == []


# -- rule 40: the simulator is as strict as Stripe ---------------------------------------------


@pytest.mark.parametrize(
    ("currency", "amount", "ok"),
    [("kwd", "5125", False), ("kwd", "5120", True), ("isk", "550", False), ("isk", "500", True)],
)
async def test_the_simulator_enforces_stripes_steps_for_three_decimal_isk_and_ugx(
    connector: Connector, sim: StripeSimulator, currency: str, amount: str, ok: bool
) -> None:
    endpoint = Endpoint(
        sim.url + "/v1/payment_intents",
        body="form",
        headers={"Authorization": f"Bearer {KEY}", "Stripe-Version": "2026-06-24.dahlia"},
        idempotency_header="Idempotency-Key",
    )
    response = await connector.execute(
        "raw",
        endpoint,
        {"amount": amount, "currency": currency},
        idempotency_key=IdempotencyKey(f"raw-{currency}-{amount}"),
        raise_for_status=False,
    )
    assert (response.status == 200) is ok
    if not ok:
        assert response.json()["error"]["param"] == "amount"


async def test_a_failed_validation_is_not_stored_under_its_key(
    connector: Connector, sim: StripeSimulator
) -> None:
    headers = {
        "Authorization": f"Bearer {KEY}",
        "Stripe-Version": "2026-06-24.dahlia",
        "Idempotency-Key": "same-key-after-a-fix",
    }
    endpoint = Endpoint(sim.url + "/v1/payment_intents", body="form", headers=headers)
    bad = await connector.execute(
        "raw", endpoint, {"amount": "5125", "currency": "kwd"}, raise_for_status=False
    )
    assert bad.status == 400
    fixed = await connector.execute(
        "raw", endpoint, {"amount": "5120", "currency": "kwd"}, raise_for_status=False
    )
    assert fixed.status == 200, fixed.json()
    # An executed request, by contrast, is stored and replayed (a second create is a replay).
    again = await connector.execute(
        "raw", endpoint, {"amount": "5120", "currency": "kwd"}, raise_for_status=False
    )
    assert again.json()["id"] == fixed.json()["id"]
    assert len(sim.payment_intents) == 1


def raw_endpoint(sim: StripeSimulator, path: str, key: str) -> Endpoint:
    headers = {
        "Authorization": f"Bearer {KEY}",
        "Stripe-Version": "2026-06-24.dahlia",
        "Idempotency-Key": key,
    }
    return Endpoint(sim.url + path, body="form", headers=headers)


@pytest.mark.parametrize("path", ["/v1/payment_intents", "/v1/charges"])
@pytest.mark.parametrize(
    ("currency", "below", "minimum"),
    [
        ("usd", "49", "50"),
        ("eur", "49", "50"),
        ("gbp", "29", "30"),
        ("jpy", "49", "50"),
        ("cad", "49", "50"),
        ("aud", "49", "50"),
        ("huf", "17499", "17500"),
        ("pln", "199", "200"),
    ],
)
async def test_the_simulator_refuses_charges_below_stripes_minimum_without_storing_them(
    connector: Connector, sim: StripeSimulator, path: str, currency: str, below: str, minimum: str
) -> None:
    endpoint = raw_endpoint(sim, path, f"min-{path}-{currency}")
    source = {"source": "tok_visa"} if path == "/v1/charges" else {}
    small = await connector.execute(
        "raw", endpoint, {"amount": below, "currency": currency, **source}, raise_for_status=False
    )
    assert small.status == 400
    error = small.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error",
        "amount_too_small",
        "amount",
    )
    assert error["doc_url"].endswith("/amount-too-small")
    # A validation failure is not stored: the same key works once the amount is fixed.
    fixed = await connector.execute(
        "raw", endpoint, {"amount": minimum, "currency": currency, **source}, raise_for_status=False
    )
    assert fixed.status == 200, fixed.json()


async def test_a_charge_below_the_minimum_is_a_stripe_invalid_request_error(
    stripe: StripePaymentAdapter, sim: StripeSimulator
) -> None:
    with pytest.raises(StripeInvalidRequestError) as caught:
        await stripe.charge(Money("0.49", "USD"), "pm_card_visa")
    assert caught.value.code == "amount_too_small"
    assert sim.payment_intents == {}


async def test_a_duplicate_while_the_first_is_processed_gets_409_in_use_and_is_not_stored(
    sim: StripeSimulator,
) -> None:
    """Two workers without a shared backend send one key at once: Stripe's 409 is "not
    processed", so neither Stripe nor the second worker's pipeline keeps it, and the second
    worker's next try gets Stripe's replay of the first charge."""
    gate = asyncio.Event()
    sim.hold(gate)
    once = RetryPolicy(max_attempts=1)
    key = IdempotencyKey("order-77")
    amount = Money("10.00", "USD")
    async with Connector() as one, Connector() as two:
        first_worker = StripePaymentAdapter(one, KEY, base_url=sim.url, retry=once)
        second_worker = StripePaymentAdapter(two, KEY, base_url=sim.url, retry=once)
        first = asyncio.create_task(
            first_worker.charge(amount, "pm_card_visa", idempotency_key=key)
        )
        async with asyncio.timeout(10):
            await sim.until_held(1)
        with pytest.raises(StripeAPIError) as caught:
            await second_worker.charge(amount, "pm_card_visa", idempotency_key=key)
        assert (caught.value.status, caught.value.code) == (409, "idempotency_key_in_use")
        gate.set()
        paid = await first
        again = await second_worker.charge(amount, "pm_card_visa", idempotency_key=key)
    assert again.id == paid.id
    assert len(sim.payment_intents) == 1
    assert sim.count("POST", "/v1/payment_intents") == 3


# -- money property tests over every currency (round trip, inexact, mismatch) --------------------

PROPERTY = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY
@given(currency=st.sampled_from(STRIPE_CURRENCIES), units=st.integers(1, 99_999))
async def test_every_stripe_currency_round_trips_through_the_simulator(
    stripe: StripePaymentAdapter, sim: StripeSimulator, currency: str, units: int
) -> None:
    digits, step = stripe_scale(currency)
    money = Money(at_least_minimum(Decimal(units).scaleb(-digits), currency), currency)
    payment = await stripe.charge(money, "pm_card_visa")
    assert payment.amount == money
    sent = parse_brackets(sim.requests[-1].body.decode())
    assert sent["currency"] == currency.lower()
    wire_digits = 3 if currency in THREE else (2 if currency in TIMES_100 else digits)
    assert Decimal(sent["amount"]).scaleb(-wire_digits) == money.amount
    assert int(sent["amount"]) % step == 0


@PROPERTY
@given(currency=st.sampled_from(STRIPE_CURRENCIES), units=st.integers(1, 99_999))
async def test_every_stripe_currency_refuses_an_inexact_amount_before_sending(
    stripe: StripePaymentAdapter, sim: StripeSimulator, currency: str, units: int
) -> None:
    digits, _ = stripe_scale(currency)
    # One more digit than Stripe can carry, and not zero: 5.125 KWD, 5.5 ISK, 1.5 JPY.
    money = Money(Decimal(units * 10 + 5).scaleb(-digits - 1), currency)
    before = len(sim.requests)
    with pytest.raises(InvalidRequest, match="exactly"):
        await stripe.charge(money, "pm_card_visa")
    assert len(sim.requests) == before


@PROPERTY
@given(
    paid=st.sampled_from(STRIPE_CURRENCIES),
    asked=st.sampled_from(STRIPE_CURRENCIES),
    refund=st.booleans(),
)
async def test_every_currency_mismatch_is_refused_before_sending(
    stripe: StripePaymentAdapter, sim: StripeSimulator, paid: str, asked: str, refund: bool
) -> None:
    if paid == asked:
        return
    held = await stripe.authorize(Money(at_least_minimum(Decimal(100), paid), paid), "pm_card_visa")
    if refund:
        held = await stripe.capture(held.id)
    before = len(sim.requests)
    call = stripe.refund if refund else stripe.capture
    with pytest.raises(InvalidRequest, match=rf"{asked}.*{paid}"):
        await call(held.id, Money(1, asked))
    assert len(sim.requests) == before
