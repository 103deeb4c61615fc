"""Keys the adapters generate travel as the vendor header only (api.md rule 29).

Nobody can ever replay a key the caller never saw, so nothing is claimed or stored for it:
the vendor's body (a Stripe `client_secret`, card fields) does not sit in the backend for a
day. Retries stay safe: the vendor deduplicates by the header, which is the same on every try.
"""

from __future__ import annotations

import pytest

from nexus_connector_async import Connector, IdempotencyKey, RedisBackend, RetryPolicy
from nexus_connector_async.adapters import Money, StripePaymentAdapter
from nexus_connector_async.testing import StripeSimulator
from tests._redis_servers import RedisServer

pytestmark = pytest.mark.redis
KEY = "sk_test_51NexusSecretKeyDoNotLeak0123456789"
FAST = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0)


async def idempotency_records(backend: RedisBackend) -> list[bytes]:
    return [n async for n in backend.client.scan_iter(match="*:idem:*")]


async def test_a_charge_without_a_caller_key_stores_nothing_and_retries_with_one_header(
    redis_server: RedisServer, redis_flush: None
) -> None:
    backend = RedisBackend.from_url(redis_server.url)
    async with StripeSimulator(api_key=KEY) as sim, Connector(backend=backend) as connector:
        stripe = StripePaymentAdapter(connector, KEY, base_url=sim.url, retry=FAST)
        sim.inject(500)
        payment = await stripe.charge(Money("5.00", "USD"), "pm_card_visa")
        assert payment.status == "succeeded"
        posts = [r for r in sim.requests if r.method == "POST"]
        assert len(posts) == 2  # the 500, then the retry
        assert len({r.headers["Idempotency-Key"] for r in posts}) == 1
        assert await idempotency_records(backend) == []
        # A caller's key is still claimed, stored and replayed.
        key = IdempotencyKey("order-7")
        again = [await stripe.charge(Money("5.00", "USD"), "pm_card_visa", idempotency_key=key)]
        again.append(await stripe.charge(Money("5.00", "USD"), "pm_card_visa", idempotency_key=key))
        assert again[0].id == again[1].id
        assert len(await idempotency_records(backend)) >= 1
