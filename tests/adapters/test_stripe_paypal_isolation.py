"""Rate limits and circuit breakers belong to one vendor service: Stripe's never touch PayPal's."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from nexus_connector_async import (
    CircuitBreakerConfig,
    CircuitOpenError,
    Connector,
    RateLimitConfig,
    RateLimitExceeded,
    RetryPolicy,
)
from nexus_connector_async.adapters import Money
from nexus_connector_async.adapters.paypal import PayPalPaymentAdapter
from nexus_connector_async.adapters.stripe import StripeAPIError, StripePaymentAdapter
from nexus_connector_async.testing import PayPalSimulator, StripeSimulator

KEY = "sk_test_isolation_0123456789"
ONCE = RetryPolicy(max_attempts=1)
USD = Money("1.00", "USD")


@pytest.fixture
async def sims() -> AsyncIterator[tuple[StripeSimulator, PayPalSimulator]]:
    async with StripeSimulator(api_key=KEY) as stripe, PayPalSimulator() as paypal:
        yield stripe, paypal


@pytest.fixture
async def connector() -> AsyncIterator[Connector]:
    async with Connector() as c:
        yield c


def adapters(
    connector: Connector,
    sims: tuple[StripeSimulator, PayPalSimulator],
    **policies: object,
) -> tuple[StripePaymentAdapter, PayPalPaymentAdapter]:
    s, p = sims
    stripe = StripePaymentAdapter(connector, KEY, base_url=s.url, retry=ONCE, **policies)  # type: ignore[arg-type]
    paypal = PayPalPaymentAdapter(
        connector,
        p.client_id,
        p.client_secret,
        base_url=p.url,
        retry=ONCE,
        **policies,  # type: ignore[arg-type]
    )
    return stripe, paypal


async def test_an_exhausted_stripe_bucket_leaves_paypal_calls_alone(
    connector: Connector, sims: tuple[StripeSimulator, PayPalSimulator]
) -> None:
    stripe, paypal = adapters(connector, sims, rate_limit=RateLimitConfig.per_minute(1))
    await stripe.charge(USD, "pm_card_visa")
    with pytest.raises(RateLimitExceeded) as info:
        await stripe.charge(USD, "pm_card_visa")
    assert info.value.retry_after > 0
    assert (await paypal.charge(USD, "vault_ok")).succeeded
    assert sims[0].count() == 1


async def test_an_open_stripe_breaker_leaves_paypal_calls_alone(
    connector: Connector, sims: tuple[StripeSimulator, PayPalSimulator]
) -> None:
    breaker = CircuitBreakerConfig(failure_threshold=2, recovery_timeout=60.0)
    stripe, paypal = adapters(connector, sims, circuit_breaker=breaker)
    sims[0].fail_next(503, times=2)
    for _ in range(2):
        with pytest.raises(StripeAPIError):
            await stripe.charge(USD, "pm_card_visa")
    with pytest.raises(CircuitOpenError):
        await stripe.charge(USD, "pm_card_visa")
    payment = await paypal.charge(USD, "vault_ok")
    assert payment.succeeded
    assert sims[0].count() == 2


async def test_a_custom_service_name_gets_its_own_state(
    connector: Connector, sims: tuple[StripeSimulator, PayPalSimulator]
) -> None:
    limit = RateLimitConfig.per_minute(1)
    eu = StripePaymentAdapter(
        connector, KEY, base_url=sims[0].url, service="stripe-eu", rate_limit=limit
    )
    us = StripePaymentAdapter(
        connector, KEY, base_url=sims[0].url, service="stripe-us", rate_limit=limit
    )
    await eu.charge(USD, "pm_card_visa")
    await us.charge(USD, "pm_card_visa")
    with pytest.raises(RateLimitExceeded):
        await eu.charge(USD, "pm_card_visa")
