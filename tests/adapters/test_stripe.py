"""StripePaymentAdapter against the strict StripeSimulator, through the real pipeline."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from nexus_connector_async import (
    CircuitBreakerConfig,
    CircuitOpenError,
    Connector,
    Endpoint,
    IdempotencyConflict,
    IdempotencyKey,
    InvalidRequest,
    RetryPolicy,
)
from nexus_connector_async.adapters import (
    AuthenticationFailed,
    Money,
    PaymentDeclined,
    PaymentGateway,
    VendorRateLimited,
)
from nexus_connector_async.adapters.stripe import (
    DEFAULT_API_VERSION,
    StripeAPIError,
    StripeAuthenticationError,
    StripeCardError,
    StripeIdempotencyError,
    StripeInvalidRequestError,
    StripePaymentAdapter,
    StripePermissionError,
    StripeRateLimitError,
)
from nexus_connector_async.testing import FakeClock, StripeSimulator, capture_logs
from nexus_connector_async.testing._vendor_server import SimulatedRequest, parse_brackets

KEY = "sk_test_51NexusSecretKeyDoNotLeak0123456789"
FAST = RetryPolicy(
    max_attempts=3,
    base_delay=0.0,
    max_delay=0.0,
    retry_statuses=frozenset({409, 500, 502, 503, 504}),
)
UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


@pytest.fixture
async def sim() -> AsyncIterator[StripeSimulator]:
    async with StripeSimulator(api_key=KEY) as s:
        yield s


@pytest.fixture
async def connector() -> AsyncIterator[Connector]:
    async with Connector(idempotency_wait=5.0) as c:
        yield c


@pytest.fixture
def stripe(connector: Connector, sim: StripeSimulator) -> StripePaymentAdapter:
    return StripePaymentAdapter(connector, KEY, base_url=sim.url, retry=FAST)


def form(request: SimulatedRequest) -> dict[str, Any]:
    return parse_brackets(request.body.decode())


def usd(amount: str) -> Money:
    return Money(amount, "USD")


# -- the happy paths and what goes over the wire ------------------------------------------------


async def test_charge_confirms_server_side_without_redirects_and_succeeds(
    stripe: StripePaymentAdapter, sim: StripeSimulator
) -> None:
    payment = await stripe.charge(usd("10.00"), "pm_card_visa", metadata={"order": "42"})
    assert payment.succeeded
    assert payment.status == "succeeded" == payment.raw_status
    assert payment.amount == usd("10.00")
    assert payment.vendor == "stripe"
    assert payment.id.startswith("pi_")
    assert payment.request_id
    assert payment.request_id.startswith("req_")
    (request,) = sim.requests
    assert request.method == "POST"
    assert request.path == "/v1/payment_intents"
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.headers["Stripe-Version"] == DEFAULT_API_VERSION
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert UUID4.fullmatch(request.headers["Idempotency-Key"])
    assert form(request) == {
        "amount": "1000",
        "currency": "usd",
        "capture_method": "automatic",
        "payment_method": "pm_card_visa",
        "confirm": "true",
        "automatic_payment_methods": {"enabled": "true", "allow_redirects": "never"},
        "metadata": {"order": "42"},
    }


@pytest.mark.parametrize(
    ("money", "wire"),
    [
        (Money("500", "JPY"), "500"),
        (Money("5", "ISK"), "500"),
        (Money("5.120", "KWD"), "5120"),
        (Money("0.50", "EUR"), "50"),
        (Money("175.00", "HUF"), "17500"),
    ],
)
async def test_amounts_go_out_in_stripe_minor_units_with_lowercase_currency(
    stripe: StripePaymentAdapter, sim: StripeSimulator, money: Money, wire: str
) -> None:
    payment = await stripe.charge(money, "pm_card_visa")
    body = form(sim.requests[-1])
    assert body["amount"] == wire
    assert body["currency"] == money.currency.lower()
    assert payment.amount == money


async def test_amounts_stripe_cannot_carry_exactly_are_refused_before_sending(
    stripe: StripePaymentAdapter, sim: StripeSimulator
) -> None:
    for money in (usd("10.005"), Money("1.5", "JPY"), Money("5.125", "KWD"), usd("0"), usd("-1")):
        with pytest.raises(InvalidRequest):
            await stripe.charge(money, "pm_card_visa")
    assert sim.count() == 0


async def test_authorize_holds_funds_and_capture_collects_part_of_them(
    stripe: StripePaymentAdapter, sim: StripeSimulator
) -> None:
    held = await stripe.authorize(usd("20.00"), "pm_card_visa")
    assert held.requires_capture
    assert not held.succeeded
    assert form(sim.requests[-1])["capture_method"] == "manual"
    captured = await stripe.capture(held.id, usd("15.00"))
    assert captured.succeeded
    assert captured.id == held.id
    request = sim.requests[-1]
    assert request.path == f"/v1/payment_intents/{held.id}/capture"
    assert form(request) == {"amount_to_capture": "1500"}
    assert UUID4.fullmatch(request.headers["Idempotency-Key"])


async def test_requires_action_is_a_visible_result_not_a_success(
    stripe: StripePaymentAdapter,
) -> None:
    payment = await stripe.charge(
        usd("10.00"), "pm_card_authenticationRequired", return_url="https://shop.example/done"
    )
    assert payment.requires_action
    assert not payment.succeeded
    assert payment.status == "requires_action"
    assert payment.next_action == "redirect_to_url"
    assert payment.action_url
    assert payment.action_url.startswith("https://")
    assert payment.client_secret
    assert payment.client_secret.startswith(payment.id + "_secret_")


async def test_create_payment_intent_without_confirm_sends_only_what_was_asked(
    stripe: StripePaymentAdapter, sim: StripeSimulator
) -> None:
    payment = await stripe.create_payment_intent(usd("3.00"))
    assert payment.status == "requires_payment_method"
    assert form(sim.requests[-1]) == {
        "amount": "300",
        "currency": "usd",
        "capture_method": "automatic",
    }
    with_url = await stripe.create_payment_intent(
        usd("3.00"),
        payment_method="pm_card_visa",
        confirm=True,
        return_url="https://shop.example/back",
    )
    assert with_url.succeeded
    body = form(sim.requests[-1])
    assert body["return_url"] == "https://shop.example/back"
    assert "automatic_payment_methods" not in body


async def test_refunds_take_the_payment_intent_or_a_legacy_charge(
    stripe: StripePaymentAdapter, sim: StripeSimulator
) -> None:
    paid = await stripe.charge(usd("10.00"), "pm_card_visa")
    partial = await stripe.refund(paid.id, usd("4.00"), reason="requested_by_customer")
    assert partial.succeeded
    assert partial.amount == usd("4.00")
    assert partial.payment_id == paid.id
    assert form(sim.requests[-1]) == {
        "payment_intent": paid.id,
        "amount": "400",
        "reason": "requested_by_customer",
    }
    rest = await stripe.refund(paid.id)
    assert rest.amount == usd("6.00")
    charge = await stripe.create_charge(usd("7.00"), "tok_visa", description="legacy")
    assert charge.succeeded
    assert charge.id.startswith("ch_")
    assert form(sim.requests[-1])["source"] == "tok_visa"
    refund = await stripe.refund(charge.id)
    assert form(sim.requests[-1]) == {"charge": charge.id}
    assert refund.amount == usd("7.00")


async def test_a_legacy_charge_can_be_authorized_then_captured(
    stripe: StripePaymentAdapter, sim: StripeSimulator
) -> None:
    held = await stripe.create_charge(usd("9.00"), "tok_visa", capture=False)
    assert held.requires_capture
    captured = await stripe.capture(held.id, usd("8.00"))
    assert captured.succeeded
    assert sim.requests[-1].path == f"/v1/charges/{held.id}/capture"
    assert form(sim.requests[-1]) == {"amount": "800"}


async def test_retrieve_is_a_get_with_version_and_no_idempotency_key(
    stripe: StripePaymentAdapter, sim: StripeSimulator
) -> None:
    paid = await stripe.charge(usd("10.00"), "pm_card_visa")
    again = await stripe.retrieve(paid.id)
    assert again.id == paid.id
    assert again.succeeded
    request = sim.requests[-1]
    assert request.method == "GET"
    assert request.body == b""
    assert request.headers["Stripe-Version"] == DEFAULT_API_VERSION
    assert "Idempotency-Key" not in request.headers


async def test_the_adapter_satisfies_the_payment_gateway_protocol(
    stripe: StripePaymentAdapter,
) -> None:
    gateway: PaymentGateway = stripe
    assert isinstance(gateway, PaymentGateway)
    payment = await gateway.charge(usd("1.00"), "pm_card_visa")
    refund = await gateway.refund(payment.id)
    assert refund.succeeded


# -- input validation ------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["", "pi_1/../../v1/charges", "pi 1", "pi_1?x=1", "pi_é", 42, None])
async def test_ids_that_are_not_safe_in_a_url_path_are_refused(
    stripe: StripePaymentAdapter, sim: StripeSimulator, bad: Any
) -> None:
    with pytest.raises(InvalidRequest):
        await stripe.capture(bad)
    with pytest.raises(InvalidRequest):
        await stripe.refund(bad)
    with pytest.raises(InvalidRequest):
        await stripe.retrieve(bad)
    with pytest.raises(InvalidRequest):
        await stripe.charge(usd("1.00"), bad)
    assert sim.count() == 0


async def test_bad_options_are_refused_before_sending(
    stripe: StripePaymentAdapter, sim: StripeSimulator
) -> None:
    with pytest.raises(InvalidRequest):
        await stripe.refund("pi_123", reason="changed_my_mind")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest):
        await stripe.create_payment_intent(usd("1.00"), capture_method="later")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest):
        await stripe.charge(usd("1.00"), "pm_card_visa", metadata={"k": 1})  # type: ignore[dict-item]
    with pytest.raises(InvalidRequest):
        await stripe.charge(usd("1.00"), "pm_card_visa", metadata={"a[b]": "x"})
    with pytest.raises(InvalidRequest):
        await stripe.charge(usd("1.00"), "pm_card_visa", metadata={str(i): "v" for i in range(51)})
    with pytest.raises(InvalidRequest):
        await stripe.charge(10, "pm_card_visa")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest):
        StripePaymentAdapter(Connector(), "")
    assert sim.count() == 0


async def test_card_numbers_in_metadata_are_refused_and_never_echoed(
    stripe: StripePaymentAdapter, sim: StripeSimulator
) -> None:
    pan = "4242 4242 4242 4242"
    with capture_logs() as logs, pytest.raises(InvalidRequest) as info:
        await stripe.charge(usd("1.00"), "pm_card_visa", metadata={"note": f"card {pan}"})
    assert pan not in str(info.value)
    assert "4242424242424242" not in str(info.value)
    assert pan not in repr(logs)
    assert sim.count() == 0


# -- errors, classified by HTTP status --------------------------------------------------------


async def test_a_decline_raises_payment_declined_with_codes_and_request_id_and_is_not_retried(
    stripe: StripePaymentAdapter, sim: StripeSimulator
) -> None:
    with pytest.raises(StripeCardError) as info:
        await stripe.charge(usd("10.00"), "pm_card_chargeDeclinedInsufficientFunds")
    err = info.value
    assert isinstance(err, PaymentDeclined)
    assert err.code == "card_declined"
    assert err.decline_code == "insufficient_funds"
    assert err.status == 402
    assert err.vendor == "stripe"
    assert err.error_type == "card_error"
    assert err.request_id
    assert err.request_id.startswith("req_")
    assert sim.count() == 1


@pytest.mark.parametrize(
    ("status", "kind", "code", "expected", "neutral"),
    [
        (400, "invalid_request_error", "parameter_missing", StripeInvalidRequestError, None),
        (400, "idempotency_error", None, StripeIdempotencyError, None),
        (400, "invalid_request_error", "rate_limit", StripeRateLimitError, VendorRateLimited),
        (401, "invalid_request_error", None, StripeAuthenticationError, AuthenticationFailed),
        (403, "invalid_request_error", None, StripePermissionError, AuthenticationFailed),
        (404, "invalid_request_error", "resource_missing", StripeInvalidRequestError, None),
        (424, "api_error", None, StripeAPIError, None),
        (429, "invalid_request_error", "rate_limit", StripeRateLimitError, VendorRateLimited),
    ],
)
async def test_errors_are_classified_by_http_status_first(
    stripe: StripePaymentAdapter,
    sim: StripeSimulator,
    status: int,
    kind: str,
    code: str | None,
    expected: type[Exception],
    neutral: type[Exception] | None,
) -> None:
    sim.fail_next(status, type=kind, code=code, message="nope")
    with pytest.raises(expected) as info:
        await stripe.charge(usd("1.00"), "pm_card_visa")
    if neutral is not None:
        assert isinstance(info.value, neutral)
    assert sim.count() == 1  # none of these is retried


async def test_409_and_5xx_are_retried_with_the_same_idempotency_key(
    stripe: StripePaymentAdapter, sim: StripeSimulator
) -> None:
    sim.fail_next(409, code="idempotency_key_in_use")
    sim.fail_next(500)
    payment = await stripe.charge(usd("10.00"), "pm_card_visa")
    assert payment.succeeded
    assert sim.count() == 3
    keys = {r.headers["Idempotency-Key"] for r in sim.requests}
    assert len(keys) == 1


async def test_stripe_should_retry_decides_over_the_status(
    stripe: StripePaymentAdapter, sim: StripeSimulator
) -> None:
    sim.fail_next(503, should_retry=False)
    with pytest.raises(StripeAPIError):
        await stripe.charge(usd("1.00"), "pm_card_visa")
    assert sim.count() == 1
    sim.rate_limit_next(should_retry=True)
    assert (await stripe.charge(usd("1.00"), "pm_card_visa")).succeeded
    assert sim.count() == 3


async def test_persistent_5xx_ends_in_an_api_error_after_the_policy_attempts(
    stripe: StripePaymentAdapter, sim: StripeSimulator
) -> None:
    sim.fail_next(500, times=5)
    with pytest.raises(StripeAPIError) as info:
        await stripe.charge(usd("1.00"), "pm_card_visa")
    assert info.value.transient
    assert info.value.status == 500
    assert sim.count() == FAST.max_attempts


async def test_a_wrong_key_is_an_authentication_error_that_leaks_nothing(
    connector: Connector, sim: StripeSimulator
) -> None:
    wrong = "sk_test_51WrongKeyThatMustNeverShowUp987654321"
    adapter = StripePaymentAdapter(connector, wrong, base_url=sim.url, retry=FAST)
    with capture_logs() as logs, pytest.raises(AuthenticationFailed) as info:
        await adapter.charge(usd("1.00"), "pm_card_visa")
    assert info.value.status == 401
    for text in (str(info.value), repr(info.value), repr(adapter), repr(logs)):
        assert wrong not in text
        assert KEY not in text


async def test_the_adapter_repr_and_its_endpoints_hide_the_key(
    stripe: StripePaymentAdapter,
) -> None:
    assert KEY not in repr(stripe)
    # The key reaches requests through the vendor client's credential provider only.
    assert KEY not in repr(stripe._vendor)
    assert KEY not in repr(stripe._vendor.credentials)
    assert KEY not in repr(stripe._intents)


# -- through the pipeline: idempotency, breaker, limiter -------------------------------------


async def test_a_duplicate_charge_with_the_same_key_sends_one_request(
    stripe: StripePaymentAdapter, sim: StripeSimulator
) -> None:
    key = IdempotencyKey("order-42-charge")
    first = await stripe.charge(usd("10.00"), "pm_card_visa", idempotency_key=key)
    second = await stripe.charge(usd("10.00"), "pm_card_visa", idempotency_key=key)
    assert sim.count() == 1
    assert second.id == first.id
    assert not first.replayed
    assert second.replayed
    # api.md 28: the caller's key, tagged with its (tenant, account) scope.
    assert re.fullmatch(
        r"order-42-charge\.[A-Za-z0-9_-]{22}", sim.requests[0].headers["Idempotency-Key"]
    )


async def test_concurrent_duplicates_with_one_key_send_one_request(
    stripe: StripePaymentAdapter, sim: StripeSimulator
) -> None:
    key = IdempotencyKey("order-43-charge")
    results = await asyncio.gather(
        *(stripe.charge(usd("10.00"), "pm_card_visa", idempotency_key=key) for _ in range(5))
    )
    assert sim.count() == 1
    assert len({p.id for p in results}) == 1


async def test_a_500_then_success_resends_the_same_vendor_key(
    stripe: StripePaymentAdapter, sim: StripeSimulator
) -> None:
    sim.fail_next(500)
    payment = await stripe.charge(
        usd("10.00"), "pm_card_visa", idempotency_key=IdempotencyKey("k-500")
    )
    assert payment.succeeded
    first, again = (r.headers["Idempotency-Key"] for r in sim.requests)
    assert first == again
    assert first.startswith("k-500.")


async def test_a_402_is_stored_for_its_key_and_replayed_without_a_request(
    stripe: StripePaymentAdapter, sim: StripeSimulator
) -> None:
    key = IdempotencyKey("order-44-charge")
    with pytest.raises(PaymentDeclined) as first:
        await stripe.charge(usd("10.00"), "pm_card_chargeDeclined", idempotency_key=key)
    with pytest.raises(PaymentDeclined) as second:
        await stripe.charge(usd("10.00"), "pm_card_chargeDeclined", idempotency_key=key)
    assert sim.count() == 1
    assert second.value.response.replayed
    assert (second.value.code, second.value.decline_code, second.value.request_id) == (
        first.value.code,
        first.value.decline_code,
        first.value.request_id,
    )


async def test_reusing_a_key_for_another_amount_is_a_conflict_caught_locally(
    stripe: StripePaymentAdapter, sim: StripeSimulator
) -> None:
    key = IdempotencyKey("order-45-charge")
    await stripe.charge(usd("10.00"), "pm_card_visa", idempotency_key=key)
    with pytest.raises(IdempotencyConflict):
        await stripe.charge(usd("11.00"), "pm_card_visa", idempotency_key=key)
    assert sim.count() == 1


async def test_without_a_key_each_call_is_a_new_payment(
    stripe: StripePaymentAdapter, sim: StripeSimulator
) -> None:
    a = await stripe.charge(usd("10.00"), "pm_card_visa")
    b = await stripe.charge(usd("10.00"), "pm_card_visa")
    assert a.id != b.id
    assert sim.requests[0].headers["Idempotency-Key"] != sim.requests[1].headers["Idempotency-Key"]


async def test_the_default_retry_policy_backs_off_like_the_official_sdk(
    sim: StripeSimulator,
) -> None:
    slept: list[float] = []

    class Recorder(FakeClock):
        async def sleep(self, seconds: float) -> None:
            slept.append(seconds)
            self.advance(max(0.0, seconds))
            await asyncio.sleep(0)

    async with Connector(clock=Recorder()) as connector:
        adapter = StripePaymentAdapter(connector, KEY, base_url=sim.url)
        sim.fail_next(502, times=2)
        assert (await adapter.charge(usd("1.00"), "pm_card_visa")).succeeded
    assert sim.count() == 3
    assert len(slept) == 2
    assert all(0.0 <= s <= 5.0 for s in slept)


async def test_the_breaker_opens_on_stripe_5xx_and_refuses_without_sending(
    connector: Connector, sim: StripeSimulator
) -> None:
    adapter = StripePaymentAdapter(
        connector,
        KEY,
        base_url=sim.url,
        retry=RetryPolicy(max_attempts=1),
        circuit_breaker=CircuitBreakerConfig(failure_threshold=2, recovery_timeout=60.0),
    )
    sim.fail_next(500, times=2)
    for _ in range(2):
        with pytest.raises(StripeAPIError):
            await adapter.charge(usd("1.00"), "pm_card_visa")
    with pytest.raises(CircuitOpenError):
        await adapter.charge(usd("1.00"), "pm_card_visa")
    assert sim.count() == 2


# -- the simulator is strict: it catches what a sloppy client would get wrong -------------------


async def test_the_simulator_rejects_what_stripe_would_not_want(
    connector: Connector, sim: StripeSimulator
) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    version = {"Stripe-Version": DEFAULT_API_VERSION}
    url = sim.url + "/v1/payment_intents"
    form_ep = Endpoint(url, "POST", body="form", retry=RetryPolicy(max_attempts=1))
    good = {"amount": 100, "currency": "usd"}

    async def send(endpoint: Endpoint, payload: Any, headers: dict[str, str]) -> int:
        response = await connector.execute(
            "raw", endpoint, payload, headers=headers, raise_for_status=False
        )
        return response.status

    key = {"Idempotency-Key": "k"}
    assert await send(form_ep, good, {**auth, **version, **key}) == 200
    assert await send(form_ep, good, {**auth, **version}) == 400  # no Idempotency-Key
    assert await send(form_ep, good, {**auth, **key, "Idempotency-Key": "k2"}) == 400  # no version
    assert await send(form_ep, good, {**version, "Idempotency-Key": "k3"}) == 401  # no key
    assert (
        await send(form_ep, {**good, "amount": "1.5"}, {**auth, **version, "Idempotency-Key": "k4"})
        == 400
    )
    assert (
        await send(
            form_ep,
            {**good, "amount": Decimal("100.0")},
            {**auth, **version, "Idempotency-Key": "k5"},
        )
        == 400
    )
    assert (
        await send(
            form_ep, {**good, "currency": "USD"}, {**auth, **version, "Idempotency-Key": "k6"}
        )
        == 400
    )
    assert (
        await send(form_ep, {**good, "bogus": "1"}, {**auth, **version, "Idempotency-Key": "k7"})
        == 400
    )
    json_ep = Endpoint(url, "POST", body="json", retry=RetryPolicy(max_attempts=1))
    assert await send(json_ep, good, {**auth, **version, "Idempotency-Key": "k8"}) == 400


async def test_a_per_tenant_credentials_provider_is_honoured(
    connector: Connector, sim: StripeSimulator
) -> None:
    """api.md rule 37: each tenant's charge goes out with that tenant's own key."""
    from nexus_connector_async import StaticCredentialProvider  # noqa: PLC0415

    keys = StaticCredentialProvider({("stripe", "tenant-b"): KEY, ("stripe", "tenant-a"): "sk_a"})
    stripe = StripePaymentAdapter(connector, credentials=keys, base_url=sim.url, retry=FAST)
    payment = await stripe.charge(usd("5.00"), "pm_card_visa", tenant_id="tenant-b")
    assert payment.status == "succeeded"
    assert sim.requests[-1].headers["Authorization"] == f"Bearer {KEY}"
    with pytest.raises(AuthenticationFailed):
        await stripe.charge(usd("5.00"), "pm_card_visa", tenant_id="tenant-a")
    assert sim.requests[-1].headers["Authorization"] == "Bearer sk_a"
    with pytest.raises(InvalidRequest, match="api_key or a credentials"):
        StripePaymentAdapter(connector, KEY, credentials=keys)
