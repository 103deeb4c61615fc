"""Idempotency is scoped by vendor account (api.md 28): two merchants, or two tenants, with the
same key on one real Redis never replay each other's records, and the vendor header is derived
from (tenant, account, key) within the vendor's limit."""

from __future__ import annotations

import itertools
import re

from aiohttp import web

from nexus_connector_async import Connector, IdempotencyKey, RedisBackend, RetryPolicy
from nexus_connector_async.adapters import Money, StripePaymentAdapter
from tests._redis_servers import RedisServer
from tests.faults._servers import serve

MERCHANT_A = "sk_test_merchantA000000000000001"
MERCHANT_B = "sk_test_merchantB000000000000002"
ONCE = RetryPolicy(max_attempts=1)


class Stripeish:
    """Creates a PaymentIntent per request, deduplicated per (account key, Idempotency-Key)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.objects: dict[tuple[str, str], str] = {}
        self._ids = itertools.count(1)

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        seen = (request.headers["Authorization"], request.headers["Idempotency-Key"])
        self.seen.append(seen)
        pi = self.objects.setdefault(seen, f"pi_{next(self._ids)}")
        body = {"id": pi, "object": "payment_intent", "amount": 1000, "currency": "usd"}
        return web.json_response({**body, "status": "succeeded"})


async def test_two_merchants_with_the_same_key_never_replay_each_other(
    redis_server: RedisServer, redis_flush: None
) -> None:
    vendor = Stripeish()
    key = IdempotencyKey("order-1")
    async with (
        serve(vendor.handle) as base,
        Connector(backend=RedisBackend.from_url(redis_server.url)) as c,
    ):
        a = StripePaymentAdapter(c, MERCHANT_A, base_url=base, retry=ONCE)
        b = StripePaymentAdapter(c, MERCHANT_B, base_url=base, retry=ONCE)
        paid_a = await a.charge(Money("10.00", "USD"), "pm_card_visa", idempotency_key=key)
        paid_b = await b.charge(Money("10.00", "USD"), "pm_card_visa", idempotency_key=key)
        again_a = await a.charge(Money("10.00", "USD"), "pm_card_visa", idempotency_key=key)
    assert [auth for auth, _ in vendor.seen] == [f"Bearer {MERCHANT_A}", f"Bearer {MERCHANT_B}"]
    assert paid_b.id != paid_a.id
    assert not paid_b.replayed
    assert again_a.replayed  # each merchant still gets its own replay
    assert again_a.id == paid_a.id


async def test_two_tenants_with_the_same_key_get_different_vendor_keys(
    redis_server: RedisServer, redis_flush: None
) -> None:
    vendor = Stripeish()
    key = IdempotencyKey("order-1")
    async with (
        serve(vendor.handle) as base,
        Connector(backend=RedisBackend.from_url(redis_server.url)) as c,
    ):
        stripe = StripePaymentAdapter(c, MERCHANT_A, base_url=base, retry=ONCE)
        paid = [
            await stripe.charge(
                Money("10.00", "USD"), "pm_card_visa", idempotency_key=key, tenant_id=tenant
            )
            for tenant in ("tenant-a", "tenant-b")
        ]
    headers = [header for _, header in vendor.seen]
    assert len(set(headers)) == 2
    assert all(re.fullmatch(r"order-1\.[A-Za-z0-9_-]{22}", h) for h in headers)
    assert paid[0].id != paid[1].id


async def test_the_derived_stripe_key_stays_within_255_characters() -> None:
    vendor = Stripeish()
    async with serve(vendor.handle) as base, Connector() as c:
        stripe = StripePaymentAdapter(c, MERCHANT_A, base_url=base, retry=ONCE)
        for key in ("x" * 255, "y" * 233, "z" * 232):
            await stripe.charge(
                Money("10.00", "USD"), "pm_card_visa", idempotency_key=IdempotencyKey(key)
            )
    assert [len(header) for _, header in vendor.seen] == [255, 255, 255]
    assert len({header for _, header in vendor.seen}) == 3
