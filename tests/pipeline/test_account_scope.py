"""api.md rule 28 through `Connector.execute`: idempotency is scoped by tenant and vendor account.

Before: the key went to the vendor unchanged and the record was scoped by (service, tenant, key)
only, so two merchants' providers replayed each other's answers, and two tenants' equal keys
collided at a vendor that deduplicates by its header (one object for two tenants).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from nexus_connector_async import (
    Backend,
    Connector,
    Endpoint,
    IdempotencyKey,
    MemoryBackend,
    OAuth2CredentialProvider,
    OutcomeUnknown,
    RedisBackend,
    RetryPolicy,
    StaticCredentialProvider,
    Timeouts,
)
from nexus_connector_async.testing import FakeClock

from ._stub import Stub, status
from .test_fault_safety import hang


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def backend(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[Backend]:
    b: Backend
    if request.param == "memory":
        b = MemoryBackend(clock=clock)
    else:
        request.getfixturevalue("redis_flush")
        b = RedisBackend.from_url(request.getfixturevalue("redis_url"), clock=clock)
    yield b
    await b.aclose()


def charges(stub: Stub) -> Endpoint:
    return Endpoint(stub.url(), "POST", idempotency_header="Idempotency-Key")


def sent_keys(stub: Stub) -> list[str]:
    return [r["headers"]["Idempotency-Key"] for r in stub.requests]


async def test_two_merchants_providers_never_replay_each_others_answers(
    backend: Backend, clock: FakeClock, stub: Stub
) -> None:
    merchant_a = StaticCredentialProvider({"stripe": "sk_test_merchant_a"})
    merchant_b = StaticCredentialProvider({"stripe": "sk_test_merchant_b"})
    stub.queue(status(200, b'{"id":"pi_A"}'), status(200, b'{"id":"pi_B"}'))
    async with Connector(backend=backend, clock=clock) as c:
        key = IdempotencyKey("order-1")
        a = await c.execute("stripe", charges(stub), {"n": 1}, idempotency_key=key,
                            credentials=merchant_a)  # fmt: skip
        b = await c.execute("stripe", charges(stub), {"n": 1}, idempotency_key=key,
                            credentials=merchant_b)  # fmt: skip
        again = await c.execute("stripe", charges(stub), {"n": 1}, idempotency_key=key,
                                credentials=merchant_a)  # fmt: skip
    assert (a.body, a.replayed) == (b'{"id":"pi_A"}', False)
    assert (b.body, b.replayed) == (b'{"id":"pi_B"}', False)  # not merchant A's PaymentIntent
    assert (again.body, again.replayed) == (b'{"id":"pi_A"}', True)
    first, second = sent_keys(stub)
    assert first != second  # the vendor sees two keys: no idempotency_error between merchants
    assert first.startswith("order-1.")  # the caller's key stays readable at the vendor
    assert second.startswith("order-1.")
    assert [r["headers"]["Authorization"] for r in stub.requests] == [
        "Bearer sk_test_merchant_a",
        "Bearer sk_test_merchant_b",
    ]


async def test_two_tenants_equal_keys_differ_at_the_vendor_and_stay_stable(
    backend: Backend, clock: FakeClock, stub: Stub
) -> None:
    async with Connector(backend=backend, clock=clock) as c:
        for tenant in ("tenant-a", "tenant-b"):
            await c.execute(
                "stripe", charges(stub), {"n": 1}, idempotency_key="k", tenant_id=tenant
            )
    async with Connector(backend=MemoryBackend(clock=clock), clock=clock) as other_worker:
        await other_worker.execute(
            "stripe", charges(stub), {"n": 1}, idempotency_key="k", tenant_id="tenant-a"
        )
    a, b, a_again = sent_keys(stub)
    assert a != b  # two tenants' objects at the vendor, not one
    assert a_again == a  # the same (tenant, account, key) gives the same header on every worker


async def test_without_tenant_or_account_the_key_is_sent_as_given(stub: Stub) -> None:
    async with Connector() as c:
        await c.execute("stripe", charges(stub), {"n": 1}, idempotency_key="order-7")
    assert sent_keys(stub) == ["order-7"]


async def test_a_tenants_unknown_key_is_named_as_given_and_forgotten_by_it(
    backend: Backend, clock: FakeClock, stub: Stub
) -> None:
    plain = Endpoint(stub.url(), "POST", retry=RetryPolicy(max_attempts=1),
                     timeout=Timeouts(total=0.3))  # fmt: skip
    provider = StaticCredentialProvider({("sms", "t1"): "token-t1"})
    stub.queue(hang())
    async with Connector(backend=backend, clock=clock, credentials=provider) as c:
        with pytest.raises(Exception, match="no complete response"):
            await c.execute("sms", plain, {"to": 1}, idempotency_key="otp-1", tenant_id="t1")
        with pytest.raises(OutcomeUnknown) as unknown:
            await c.execute("sms", plain, {"to": 1}, idempotency_key="otp-1", tenant_id="t1")
        assert unknown.value.idempotency_key == "otp-1"  # the caller's key, not the derived one
        assert await c.forget("sms", unknown.value.idempotency_key, "t1") is True
        r = await c.execute("sms", plain, {"to": 1}, idempotency_key="otp-1", tenant_id="t1")
    assert (r.status, stub.count) == (200, 2)


def test_oauth2_providers_name_their_account_by_their_secret() -> None:
    def provider(secret: str) -> OAuth2CredentialProvider:
        return OAuth2CredentialProvider("https://auth.example/token", "client-1", secret)

    same, other = provider("secret-1"), provider("secret-2")
    assert same.account_id("paypal", None) == provider("secret-1").account_id("paypal", "t")
    assert same.account_id("paypal", None) != other.account_id("paypal", None)
    assert b"secret-1" not in same.account_id("paypal", None)
