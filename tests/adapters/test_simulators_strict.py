"""The Twilio simulator rejects what Twilio rejects and counts segments on its own (rule 40);
wrong-typed adapter inputs are `InvalidRequest`, never a raw `TypeError`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nexus_connector_async import Connector, Endpoint, IdempotencyKey, InvalidRequest
from nexus_connector_async.adapters import Money, PayPalPaymentAdapter, count_segments
from nexus_connector_async.adapters.twilio import TwilioSmsAdapter
from nexus_connector_async.testing import PayPalSimulator, StripeSimulator
from nexus_connector_async.testing._twilio import (
    DEFAULT_AUTH_TOKEN,
    TwilioSimulator,
    simulated_segments,
)


@pytest.fixture
async def sim() -> AsyncIterator[TwilioSimulator]:
    async with TwilioSimulator() as s:
        yield s


@pytest.fixture
async def connector() -> AsyncIterator[Connector]:
    async with Connector() as c:
        yield c


async def _raw_send(connector: Connector, sim: TwilioSimulator, **extra: str) -> Any:
    import base64  # noqa: PLC0415

    auth = base64.b64encode(f"{sim.account_sid}:{DEFAULT_AUTH_TOKEN}".encode()).decode()
    endpoint = Endpoint(
        f"{sim.url}/2010-04-01/Accounts/{sim.account_sid}/Messages.json",
        body="form",
        headers={"Authorization": f"Basic {auth}"},
    )
    form = [("To", "+14155550100"), ("From", "+15005550006"), ("Body", "hi"), *extra.items()]
    return await connector.execute("raw-twilio", endpoint, form, raise_for_status=False)


@pytest.mark.parametrize(
    ("callback", "ok"),
    [
        ("https://hooks.example.com/sms", True),
        ("https://my_hooks.example.com/sms", False),  # Twilio refuses underscores in the host
        ("ftp://hooks.example.com/sms", False),
        ("/relative/path", False),
    ],
)
async def test_the_twilio_simulator_validates_callback_hosts(
    connector: Connector, sim: TwilioSimulator, callback: str, ok: bool
) -> None:
    response = await _raw_send(connector, sim, StatusCallback=callback)
    assert (response.status == 201) is ok
    if not ok:
        assert response.json()["code"] == 21609
        assert sim.messages == []


async def test_the_adapter_refuses_an_underscore_callback_before_sending(
    connector: Connector, sim: TwilioSimulator
) -> None:
    twilio = TwilioSmsAdapter(
        connector, sim.account_sid, DEFAULT_AUTH_TOKEN, "+15005550006", base_url=sim.url
    )
    with pytest.raises(InvalidRequest, match="underscore"):
        await twilio.send("+14155550100", "hi", status_callback="https://a_b.example/cb")
    assert sim.requests == []


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        ("", 0),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # extension characters take two septets
        ("€" * 81, 2),
        ("a" * 152 + "€" + "a" * 10, 2),  # the escape pair is not split across parts
        ("ç" * 70, 1),  # ç is not in GSM 03.38 (Ç is): UCS-2
        ("ç" * 71, 2),
        ("😀" * 35, 1),  # a surrogate pair is two UTF-16 units
        ("😀" * 36, 2),
        ("a" * 66 + "😀" + "ç" * 3, 2),  # 71 units: the pair moves whole to part 2
    ],
)
def test_the_simulator_counts_segments_on_its_own(body: str, segments: int) -> None:
    assert simulated_segments(body) == segments


@given(st.text(alphabet=st.sampled_from(list("aZ0 @£€[]{}^~|\\\nçé😀ΩΔ_ß\u00a0")), max_size=500))
def test_the_library_and_the_simulator_agree_on_segments(body: str) -> None:
    assert count_segments(body).segments == simulated_segments(body)


async def test_the_twilio_simulator_reports_its_own_count(
    connector: Connector, sim: TwilioSimulator
) -> None:
    twilio = TwilioSmsAdapter(
        connector, sim.account_sid, DEFAULT_AUTH_TOKEN, "+15005550006", base_url=sim.url
    )
    result = await twilio.send("+14155550100", "€" * 81)
    assert result.segments == 2


async def test_wrong_typed_paypal_options_are_invalid_requests() -> None:
    async with PayPalSimulator() as paypal_sim, Connector() as connector:
        paypal = PayPalPaymentAdapter(connector, "id", "secret", base_url=paypal_sim.url)
        with pytest.raises(InvalidRequest, match="source"):
            await paypal.charge(
                Money("1.00", "USD"),
                "vault_ok",
                source=["card"],  # type: ignore[arg-type]
            )
        with pytest.raises(InvalidRequest, match="intent"):
            await paypal.create_order(
                Money("1.00", "USD"),
                intent=["CAPTURE"],  # type: ignore[arg-type]
            )
        assert paypal_sim.requests == []


async def test_twilio_reads_a_balance_in_a_retired_currency_and_refuses_media_none(
    connector: Connector,
) -> None:
    async with TwilioSimulator(currency="HRK") as hrk:
        twilio = TwilioSmsAdapter(
            connector, hrk.account_sid, DEFAULT_AUTH_TOKEN, "+15005550006", base_url=hrk.url
        )
        assert await twilio.balance() == Money.from_vendor("25.00", "HRK")
        with pytest.raises(InvalidRequest, match="media_urls"):
            await twilio.send("+14155550100", "hi", media_urls=None)  # type: ignore[arg-type]
        assert hrk.messages == []


async def test_the_stripe_simulator_enforces_metadata_limits(connector: Connector) -> None:
    async with StripeSimulator(api_key="sk_test_meta") as stripe_sim:
        endpoint = Endpoint(
            stripe_sim.url + "/v1/payment_intents",
            body="form",
            headers={"Authorization": "Bearer sk_test_meta", "Stripe-Version": "2026-06-24.dahlia"},
            idempotency_header="Idempotency-Key",
        )
        base = {"amount": "100", "currency": "usd"}
        cases = [
            ({f"k{i}": "v" for i in range(51)}, 400),
            ({"k" * 41: "v"}, 400),
            ({"k": "v" * 501}, 400),
            ({"k" * 40: "v" * 500}, 200),
        ]
        for i, (metadata, status) in enumerate(cases):
            response = await connector.execute(
                "raw-meta",
                endpoint,
                {**base, "metadata": metadata},
                idempotency_key=IdempotencyKey(f"meta-{i}"),
                raise_for_status=False,
            )
            assert response.status == status, (i, response.json())


@pytest.mark.parametrize(
    ("units", "issue"),
    [
        (
            [
                {"reference_id": "a", "amount": {"currency_code": "USD", "value": "1.00"}},
                {"reference_id": "b", "amount": {"currency_code": "EUR", "value": "1.00"}},
            ],
            "MULTI_CURRENCY_ORDER",
        ),
        (
            [
                {"reference_id": "a", "amount": {"currency_code": "USD", "value": "1.00"}},
                {"reference_id": "a", "amount": {"currency_code": "USD", "value": "2.00"}},
            ],
            "DUPLICATE_REFERENCE_ID",
        ),
    ],
)
async def test_the_paypal_simulator_refuses_inconsistent_purchase_units(
    connector: Connector, units: list[dict[str, Any]], issue: str
) -> None:
    async with PayPalSimulator() as paypal_sim:
        paypal_sim.tokens.add("tok")
        endpoint = Endpoint(
            paypal_sim.url + "/v2/checkout/orders",
            headers={"Authorization": "Bearer tok", "PayPal-Request-Id": f"units-{issue}"},
        )
        response = await connector.execute(
            "raw-pp",
            endpoint,
            {"intent": "CAPTURE", "purchase_units": units},
            raise_for_status=False,
        )
        assert response.status == 422
        assert response.json()["details"][0]["issue"] == issue
