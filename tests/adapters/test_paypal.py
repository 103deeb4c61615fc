"""PayPalPaymentAdapter against the strict PayPalSimulator, through the real pipeline."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from nexus_connector_async import (
    Connector,
    CredentialRefreshError,
    Endpoint,
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
from nexus_connector_async.adapters.paypal import (
    LIVE_URL,
    SANDBOX_URL,
    PayPalAPIError,
    PayPalAuthenticationError,
    PayPalDeclined,
    PayPalInvalidRequestError,
    PayPalPaymentAdapter,
    PayPalPermissionError,
    PayPalRateLimitError,
)
from nexus_connector_async.testing import PayPalSimulator, SimulatedRequest, capture_logs

CLIENT_ID = "AeNexusClientId0123"
SECRET = "EJNexusClientSecretMustNeverLeak987"
FAST = RetryPolicy(
    max_attempts=3,
    base_delay=0.0,
    max_delay=0.0,
    retry_statuses=frozenset({409, 429, 500, 502, 503, 504}),
)
UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


@pytest.fixture
async def sim() -> AsyncIterator[PayPalSimulator]:
    async with PayPalSimulator(CLIENT_ID, SECRET) as s:
        yield s


@pytest.fixture
async def connector() -> AsyncIterator[Connector]:
    async with Connector(idempotency_wait=5.0) as c:
        yield c


@pytest.fixture
def paypal(connector: Connector, sim: PayPalSimulator) -> PayPalPaymentAdapter:
    return PayPalPaymentAdapter(connector, CLIENT_ID, SECRET, base_url=sim.url, retry=FAST)


def usd(amount: str) -> Money:
    return Money(amount, "USD")


def api(sim: PayPalSimulator) -> list[SimulatedRequest]:
    return [r for r in sim.requests if r.path.startswith("/v2/")]


def body(request: SimulatedRequest) -> Any:
    return json.loads(request.body)


# -- orders: the buyer-approval flow ----------------------------------------------------------


async def test_create_order_needs_the_buyer_and_says_where_to_send_them(
    paypal: PayPalPaymentAdapter, sim: PayPalSimulator
) -> None:
    order = await paypal.create_order(usd("10.00"), reference_id="r1")
    assert order.requires_action
    assert not order.succeeded
    assert order.raw_status == "CREATED"
    assert order.id == order.order_id
    assert order.action_url is not None
    assert "checkoutnow" in order.action_url
    assert order.amount == usd("10.00")
    (request,) = api(sim)
    assert request.method == "POST"
    assert request.path == "/v2/checkout/orders"
    assert request.headers["Authorization"].startswith("Bearer A21AA")
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Prefer"] == "return=representation"
    assert UUID4.fullmatch(request.headers["PayPal-Request-Id"])
    assert body(request) == {
        "intent": "CAPTURE",
        "purchase_units": [
            {"reference_id": "r1", "amount": {"currency_code": "USD", "value": "10.00"}}
        ],
    }
    assert sim.token_requests == 1


async def test_return_and_cancel_urls_go_in_the_paypal_experience_context(
    paypal: PayPalPaymentAdapter, sim: PayPalSimulator
) -> None:
    order = await paypal.create_order(
        usd("5.00"), return_url="https://shop.example/ok", cancel_url="https://shop.example/cancel"
    )
    assert order.raw_status == "PAYER_ACTION_REQUIRED"
    assert order.requires_action
    assert body(api(sim)[-1])["payment_source"] == {
        "paypal": {
            "experience_context": {
                "return_url": "https://shop.example/ok",
                "cancel_url": "https://shop.example/cancel",
            }
        }
    }


async def test_an_approved_order_is_captured_with_an_empty_json_body(
    paypal: PayPalPaymentAdapter, sim: PayPalSimulator
) -> None:
    order = await paypal.create_order(usd("10.00"))
    sim.approve(order.id)
    captured = await paypal.capture_order(order.id)
    assert captured.succeeded
    assert captured.order_id == order.id
    assert captured.id in sim.captures
    request = api(sim)[-1]
    assert request.path == f"/v2/checkout/orders/{order.id}/capture"
    assert request.body == b"{}"
    assert request.headers["Content-Type"] == "application/json"
    fetched = await paypal.get_order(order.id)
    assert fetched.id == captured.id
    assert fetched.succeeded
    get = api(sim)[-1]
    assert get.method == "GET"
    assert "PayPal-Request-Id" not in get.headers


async def test_capturing_an_unapproved_order_is_an_invalid_request_naming_the_issue(
    paypal: PayPalPaymentAdapter,
) -> None:
    order = await paypal.create_order(usd("10.00"))
    with pytest.raises(PayPalInvalidRequestError) as info:
        await paypal.capture_order(order.id)
    assert info.value.code == "ORDER_NOT_APPROVED"
    assert info.value.name == "UNPROCESSABLE_ENTITY"
    assert info.value.request_id


async def test_authorize_then_capture_part_then_refund(
    paypal: PayPalPaymentAdapter, sim: PayPalSimulator
) -> None:
    order = await paypal.create_order(usd("30.00"), intent="AUTHORIZE")
    sim.approve(order.id)
    auth = await paypal.authorize_order(order.id)
    assert auth.requires_capture
    assert auth.id in sim.authorizations
    capture = await paypal.capture_authorization(auth.id, usd("20.00"), final_capture=False)
    assert capture.succeeded
    assert capture.amount == usd("20.00")
    assert body(api(sim)[-1]) == {
        "final_capture": False,
        "amount": {"currency_code": "USD", "value": "20.00"},
    }
    partial = await paypal.refund_capture(capture.id, usd("5.00"))
    assert partial.succeeded
    assert partial.amount == usd("5.00")
    assert partial.payment_id == capture.id
    rest = await paypal.refund_capture(capture.id)
    assert api(sim)[-1].body == b"{}"
    assert rest.amount == usd("15.00")


# -- vaulted sources: the PaymentGateway protocol -------------------------------------------


async def test_charge_with_a_vaulted_card_captures_at_once_and_refunds_by_capture_id(
    paypal: PayPalPaymentAdapter, sim: PayPalSimulator
) -> None:
    gateway: PaymentGateway = paypal
    assert isinstance(gateway, PaymentGateway)
    payment = await gateway.charge(usd("12.34"), "7XY12345AB")
    assert payment.succeeded
    assert payment.id in sim.captures
    assert payment.order_id in sim.orders
    assert body(api(sim)[-1])["payment_source"] == {"card": {"vault_id": "7XY12345AB"}}
    refund = await gateway.refund(payment.id)
    assert refund.succeeded
    assert refund.amount == usd("12.34")


async def test_authorize_with_a_vaulted_wallet_then_capture(
    paypal: PayPalPaymentAdapter, sim: PayPalSimulator
) -> None:
    held = await paypal.authorize(usd("8.00"), "wallet_vault_1", source="paypal")
    assert held.requires_capture
    assert body(api(sim)[-1])["intent"] == "AUTHORIZE"
    assert body(api(sim)[-1])["payment_source"] == {"paypal": {"vault_id": "wallet_vault_1"}}
    done = await paypal.capture(held.id)
    assert done.succeeded
    assert body(api(sim)[-1]) == {"final_capture": True}


async def test_a_declined_capture_inside_a_201_raises_payment_declined(
    paypal: PayPalPaymentAdapter, sim: PayPalSimulator
) -> None:
    with pytest.raises(PayPalDeclined) as info:
        await paypal.charge(usd("10.00"), "vault_declined")
    err = info.value
    assert isinstance(err, PaymentDeclined)
    assert err.status == 201
    assert err.code == "DECLINED"
    assert err.decline_code == "0500"
    assert err.request_id


async def test_instrument_declined_422_is_a_decline_with_the_debug_id(
    paypal: PayPalPaymentAdapter, sim: PayPalSimulator
) -> None:
    with pytest.raises(PaymentDeclined) as info:
        await paypal.charge(usd("10.00"), "vault_instrument_declined")
    assert info.value.code == "INSTRUMENT_DECLINED"
    assert info.value.decline_code == "INSTRUMENT_DECLINED"
    assert info.value.request_id == json.loads(info.value.response.body)["debug_id"]
    assert len(api(sim)) == 1


async def test_a_pending_capture_is_visible_and_not_a_success(paypal: PayPalPaymentAdapter) -> None:
    payment = await paypal.charge(usd("10.00"), "vault_pending")
    assert payment.pending
    assert payment.raw_status == "PENDING"
    assert not payment.succeeded


async def test_a_declined_charge_is_stored_for_its_key_and_replayed_without_a_request(
    paypal: PayPalPaymentAdapter, sim: PayPalSimulator
) -> None:
    key = IdempotencyKey("order-77")
    with pytest.raises(PaymentDeclined) as first:
        await paypal.charge(usd("10.00"), "vault_declined", idempotency_key=key)
    with pytest.raises(PaymentDeclined) as second:
        await paypal.charge(usd("10.00"), "vault_declined", idempotency_key=key)
    assert len(api(sim)) == 1
    assert second.value.response.replayed
    assert second.value.request_id == first.value.request_id


# -- money ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("money", "value"),
    [
        (Money("1000", "JPY"), "1000"),
        (Money("250", "HUF"), "250"),
        (Money("10.5", "USD"), "10.50"),
        (Money("3", "EUR"), "3.00"),
    ],
)
async def test_amounts_are_decimal_strings_with_the_currency_decimals(
    paypal: PayPalPaymentAdapter, sim: PayPalSimulator, money: Money, value: str
) -> None:
    payment = await paypal.charge(money, "vault_ok")
    assert body(api(sim)[-1])["purchase_units"][0]["amount"] == {
        "currency_code": money.currency,
        "value": value,
    }
    assert payment.amount == money


async def test_amounts_paypal_cannot_take_are_refused_before_sending(
    paypal: PayPalPaymentAdapter, sim: PayPalSimulator
) -> None:
    for money in (
        Money("1.5", "JPY"),
        Money("1.005", "USD"),
        Money("1.000", "KWD"),
        usd("0"),
        usd("-5"),
    ):
        with pytest.raises(InvalidRequest):
            await paypal.charge(money, "vault_ok")
    assert sim.requests == []


# -- inputs ---------------------------------------------------------------------------------


async def test_bad_ids_and_options_are_refused_before_sending(
    paypal: PayPalPaymentAdapter, sim: PayPalSimulator
) -> None:
    for bad in ("", "5O1/../x", "5o190127tn364715t", "A" * 37, None):
        with pytest.raises(InvalidRequest):
            await paypal.get_order(bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidRequest):
            await paypal.capture_order(bad)  # type: ignore[arg-type]
    for bad in ("", "a/b", "a b", "x?y"):
        with pytest.raises(InvalidRequest):
            await paypal.refund(bad)
        with pytest.raises(InvalidRequest):
            await paypal.capture(bad)
        with pytest.raises(InvalidRequest):
            await paypal.charge(usd("1.00"), bad)
    with pytest.raises(InvalidRequest):
        await paypal.create_order(usd("1.00"), intent="SALE")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest):
        await paypal.create_order(usd("1.00"), return_url="http://insecure.example/")
    with pytest.raises(InvalidRequest):
        await paypal.charge(usd("1.00"), "vault_ok", source="bitcoin")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest):
        await paypal.charge(usd("1.00"), "vault_ok", idempotency_key=IdempotencyKey("k" * 109))
    assert sim.requests == []


async def test_the_paypal_request_id_is_the_callers_key_scoped_within_108_characters(
    paypal: PayPalPaymentAdapter, sim: PayPalSimulator
) -> None:
    # api.md 28: derived from (tenant, account, key), cut to PayPal's 108-character limit.
    key = IdempotencyKey("k" * 108)
    first = await paypal.charge(usd("1.00"), "vault_ok", idempotency_key=key)
    again = await paypal.charge(usd("1.00"), "vault_ok", idempotency_key=key)
    request_id = api(sim)[0].headers["PayPal-Request-Id"]
    assert len(request_id) == 108
    assert re.fullmatch(r"k{85}\.[A-Za-z0-9_-]{22}", request_id)
    assert len(api(sim)) == 1
    assert again.replayed
    assert again.id == first.id


def test_sandbox_is_the_default_and_live_is_opt_in() -> None:
    connector = Connector()
    assert SANDBOX_URL in repr(PayPalPaymentAdapter(connector, CLIENT_ID, SECRET))
    assert LIVE_URL in repr(PayPalPaymentAdapter(connector, CLIENT_ID, SECRET, sandbox=False))
    assert SANDBOX_URL == "https://api-m.sandbox.paypal.com"
    assert LIVE_URL == "https://api-m.paypal.com"


# -- OAuth: one shared token, refreshed once -------------------------------------------------


async def test_one_token_serves_many_calls_and_tenants(
    paypal: PayPalPaymentAdapter, sim: PayPalSimulator
) -> None:
    await asyncio.gather(
        *(paypal.create_order(usd("1.00"), tenant_id=f"t{i % 3}") for i in range(10))
    )
    assert len(api(sim)) == 10
    assert sim.token_requests == 1


async def test_a_second_adapter_on_the_same_backend_reuses_the_token(
    connector: Connector, paypal: PayPalPaymentAdapter, sim: PayPalSimulator
) -> None:
    await paypal.create_order(usd("1.00"))
    other = PayPalPaymentAdapter(connector, CLIENT_ID, SECRET, base_url=sim.url, retry=FAST)
    await other.create_order(usd("1.00"))
    assert sim.token_requests == 1


async def test_an_expired_token_is_refreshed_once_and_the_call_resent(
    paypal: PayPalPaymentAdapter, sim: PayPalSimulator
) -> None:
    await paypal.create_order(usd("1.00"))
    sim.expire_tokens()
    order = await paypal.create_order(usd("2.00"))
    assert order.amount == usd("2.00")
    assert sim.token_requests == 2
    statuses = [r.headers["Authorization"] for r in api(sim)]
    assert len(statuses) == 3
    assert statuses[1] != statuses[2]


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (
            {"error": "invalid_token", "error_description": "Token signature verification failed"},
            "invalid_token",
        ),
        (
            {
                "name": "AUTHENTICATION_FAILURE",
                "message": "Authentication failed due to invalid authentication credentials.",
                "debug_id": "dbg401",
                "details": [{"issue": "INVALID_ACCOUNT_STATUS", "description": "x"}],
            },
            "INVALID_ACCOUNT_STATUS",
        ),
    ],
)
async def test_both_401_shapes_are_parsed_after_the_one_refresh(
    paypal: PayPalPaymentAdapter, sim: PayPalSimulator, payload: dict[str, Any], code: str
) -> None:
    sim.fail_next(401, body=payload, times=2)
    with pytest.raises(PayPalAuthenticationError) as info:
        await paypal.create_order(usd("1.00"))
    assert isinstance(info.value, AuthenticationFailed)
    assert info.value.code == code
    assert sim.token_requests == 2
    assert len(api(sim)) == 2


async def test_wrong_client_credentials_fail_without_leaking_the_secret(
    connector: Connector, sim: PayPalSimulator
) -> None:
    wrong = "EJWrongSecretThatMustNotAppear42"
    adapter = PayPalPaymentAdapter(connector, CLIENT_ID, wrong, base_url=sim.url, retry=FAST)
    with capture_logs() as logs, pytest.raises(CredentialRefreshError) as info:
        await adapter.create_order(usd("1.00"))
    assert info.value.error == "invalid_client"
    for text in (str(info.value), repr(info.value), repr(adapter), repr(logs)):
        assert wrong not in text
    assert api(sim) == []


async def test_tokens_and_secrets_stay_out_of_reprs_logs_and_errors(
    paypal: PayPalPaymentAdapter, sim: PayPalSimulator
) -> None:
    with capture_logs() as logs:
        await paypal.create_order(usd("1.00"))
        sim.fail_next(422, "INSTRUMENT_DECLINED")
        with pytest.raises(PaymentDeclined) as info:
            await paypal.charge(usd("1.00"), "vault_ok")
    (token,) = sim.tokens
    for text in (repr(paypal), repr(logs), str(info.value), repr(info.value)):
        assert SECRET not in text
        assert token not in text


# -- errors and retries ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "issue", "expected"),
    [
        (400, "INVALID_PARAMETER_VALUE", PayPalInvalidRequestError),
        (403, "PERMISSION_DENIED", PayPalPermissionError),
        (404, "INVALID_RESOURCE_ID", PayPalInvalidRequestError),
        (415, "UNSUPPORTED_MEDIA_TYPE", PayPalInvalidRequestError),
        (422, "TRANSACTION_REFUSED", PayPalDeclined),
        (422, "PAYEE_ACCOUNT_RESTRICTED", PayPalInvalidRequestError),
    ],
)
async def test_errors_map_by_status_and_issue_and_are_not_retried(
    paypal: PayPalPaymentAdapter,
    sim: PayPalSimulator,
    status: int,
    issue: str,
    expected: type[Exception],
) -> None:
    sim.fail_next(status, issue)
    with pytest.raises(expected) as info:
        await paypal.charge(usd("1.00"), "vault_ok")
    assert info.value.code == issue  # type: ignore[attr-defined]
    assert info.value.issues == (issue,)  # type: ignore[attr-defined]
    assert len(api(sim)) == 1


@pytest.mark.parametrize(
    ("status", "issue"), [(409, "PREVIOUS_REQUEST_IN_PROGRESS"), (500, None), (503, None)]
)
async def test_conflicts_and_5xx_are_retried_with_the_same_request_id(
    paypal: PayPalPaymentAdapter, sim: PayPalSimulator, status: int, issue: str | None
) -> None:
    sim.fail_next(status, issue)
    payment = await paypal.charge(usd("1.00"), "vault_ok")
    assert payment.succeeded
    ids = [r.headers["PayPal-Request-Id"] for r in api(sim)]
    assert len(ids) == 2
    assert ids[0] == ids[1]


async def test_a_duplicate_while_the_first_is_processed_gets_409_in_progress_not_stored(
    sim: PayPalSimulator,
) -> None:
    """Two workers without a shared backend send one request id at once: the simulator answers
    the second 409 PREVIOUS_REQUEST_IN_PROGRESS, as PayPal does, and keeps nothing for it, so
    the second worker's next try gets the first order instead of a second payment."""
    gate = asyncio.Event()
    sim.hold(gate)
    once = RetryPolicy(max_attempts=1)
    key = IdempotencyKey("order-77")
    async with Connector() as one, Connector() as two:
        first_worker = PayPalPaymentAdapter(one, CLIENT_ID, SECRET, base_url=sim.url, retry=once)
        second_worker = PayPalPaymentAdapter(two, CLIENT_ID, SECRET, base_url=sim.url, retry=once)
        first = asyncio.create_task(
            first_worker.charge(usd("10.00"), "vault_ok", idempotency_key=key)
        )
        async with asyncio.timeout(10):
            await sim.until_held(1)
        with pytest.raises(PayPalAPIError) as caught:
            await second_worker.charge(usd("10.00"), "vault_ok", idempotency_key=key)
        assert (caught.value.status, caught.value.code) == (409, "PREVIOUS_REQUEST_IN_PROGRESS")
        gate.set()
        paid = await first
        again = await second_worker.charge(usd("10.00"), "vault_ok", idempotency_key=key)
    assert (again.order_id, again.id) == (paid.order_id, paid.id)
    assert len(sim.orders) == 1
    creates = [r for r in api(sim) if r.path == "/v2/checkout/orders"]
    assert len({r.headers["PayPal-Request-Id"] for r in creates}) == 1
    assert len(creates) == 3


async def test_rate_limits_are_retried_then_raised_as_vendor_rate_limited(
    paypal: PayPalPaymentAdapter, sim: PayPalSimulator
) -> None:
    sim.fail_next(429, headers={"Retry-After": "0"}, times=3)
    with pytest.raises(PayPalRateLimitError) as info:
        await paypal.charge(usd("1.00"), "vault_ok")
    assert isinstance(info.value, VendorRateLimited)
    assert len(api(sim)) == FAST.max_attempts


async def test_persistent_5xx_is_an_api_error(
    paypal: PayPalPaymentAdapter, sim: PayPalSimulator
) -> None:
    sim.fail_next(500, times=3)
    with pytest.raises(PayPalAPIError) as info:
        await paypal.create_order(usd("1.00"))
    assert info.value.transient
    assert info.value.request_id


# -- the simulator is strict ----------------------------------------------------------------------


async def test_the_simulator_rejects_what_paypal_would_not_want(
    connector: Connector, paypal: PayPalPaymentAdapter, sim: PayPalSimulator
) -> None:
    await paypal.create_order(usd("1.00"))  # issues a token
    (token,) = sim.tokens
    url = sim.url + "/v2/checkout/orders"
    order = {
        "intent": "CAPTURE",
        "purchase_units": [{"amount": {"currency_code": "USD", "value": "1.00"}}],
    }
    once = RetryPolicy(max_attempts=1)

    async def send(
        payload: Any, headers: dict[str, str], body_kind: str = "json"
    ) -> tuple[int, Any]:
        ep = Endpoint(url, "POST", body=body_kind, retry=once)  # type: ignore[arg-type]
        response = await connector.execute(
            "raw", ep, payload, headers=headers, raise_for_status=False
        )
        return response.status, response.json()

    auth = {"Authorization": f"Bearer {token}"}
    assert (await send(order, {**auth, "PayPal-Request-Id": "a"}))[0] == 201
    status, reply = await send(order, {"PayPal-Request-Id": "b"})
    assert (status, reply["error"]) == (401, "invalid_token")
    assert (await send(order, auth))[0] == 400  # no PayPal-Request-Id
    assert (await send({"intent": "CAPTURE"}, {**auth, "PayPal-Request-Id": "c"}, "form"))[0] == 415
    assert (await send(None, {**auth, "PayPal-Request-Id": "d", "Content-Type": "text/plain"}))[
        0
    ] == 415
    for amount, issue in (
        ({"currency_code": "USD", "value": 1.0}, "INVALID_PARAMETER_SYNTAX"),
        ({"currency_code": "JPY", "value": "10.5"}, "DECIMALS_NOT_SUPPORTED"),
        ({"currency_code": "USD", "value": "1.005"}, "DECIMAL_PRECISION"),
        ({"currency_code": "usd", "value": "1.00"}, "INVALID_CURRENCY_CODE"),
    ):
        bad = {"intent": "CAPTURE", "purchase_units": [{"amount": amount}]}
        status, reply = await send(bad, {**auth, "PayPal-Request-Id": issue})
        assert reply["details"][0]["issue"] == issue
