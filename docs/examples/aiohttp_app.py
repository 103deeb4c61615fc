"""An aiohttp web app that takes payments through one shared `Connector`.

Run it with `python docs/examples/aiohttp_app.py`, then
`curl -X POST localhost:8080/orders/42/pay -d '{"amount": 500}'`.
`STRIPE_BASE_URL` points it at a sandbox or a local stub; `STRIPE_API_KEY` is the secret key.
"""

from __future__ import annotations

import math
import os
from collections.abc import AsyncIterator

from aiohttp import web

from nexus_connector_async import (
    CircuitOpenError,
    Connector,
    Endpoint,
    HttpStatusError,
    IdempotencyConflict,
    IdempotencyKey,
    RateLimitConfig,
    RateLimitExceeded,
    StaticCredentialProvider,
    Timeouts,
)

CONNECTOR = web.AppKey("connector", Connector)
CHARGES = web.AppKey("charges", Endpoint)
API_KEY = web.AppKey("api_key", str)


def charges_endpoint(base_url: str) -> Endpoint:
    """Stripe's legacy Charges API: form bodies, an idempotency header, a fleet-wide limit."""
    return Endpoint.create(
        f"{base_url.rstrip('/')}/v1/charges",
        "POST",
        body="form",
        # Pin the API version: without it Stripe uses the account's default, which changes
        # when someone upgrades it in the dashboard (and the library's simulator refuses it).
        headers={"Stripe-Version": "2026-06-24.dahlia"},
        idempotency_header="Idempotency-Key",
        timeout=Timeouts(total=10.0, connect=3.0),
        rate_limit=RateLimitConfig.per_second(25, max_wait=0.5),
        deadline=15.0,  # answer the customer within 15 s, retries included
    )


async def connector_context(app: web.Application) -> AsyncIterator[None]:
    """One Connector per process, opened at startup and closed at shutdown."""
    credentials = StaticCredentialProvider({"stripe": app[API_KEY]})
    async with Connector(credentials=credentials) as connector:
        app[CONNECTOR] = connector
        yield


async def pay(request: web.Request) -> web.Response:
    """Charge an order once: a repeat (a double click, a retried webhook) gets the same charge."""
    order_id = request.match_info["order_id"]
    order = await request.json()
    payload = {
        "amount": int(order["amount"]),
        "currency": order.get("currency", "usd"),
        "source": order.get("source", "tok_visa"),
    }
    try:
        response = await request.app[CONNECTOR].execute(
            "stripe",
            request.app[CHARGES],
            payload,
            idempotency_key=IdempotencyKey(f"order-{order_id}"),
        )
    except (CircuitOpenError, RateLimitExceeded) as exc:
        retry_after = str(max(1, math.ceil(exc.retry_after)))
        raise web.HTTPServiceUnavailable(headers={"Retry-After": retry_after}) from exc
    except IdempotencyConflict as exc:
        raise web.HTTPConflict(text="this order was already paid with other details") from exc
    except HttpStatusError as exc:
        if exc.status >= 500:
            raise web.HTTPBadGateway() from exc
        return web.json_response({"paid": False, "vendor_status": exc.status}, status=402)
    charge = response.json()
    return web.json_response({"paid": True, "charge": charge["id"], "replayed": response.replayed})


def create_app(base_url: str | None = None, api_key: str | None = None) -> web.Application:
    """The app; `base_url` and `api_key` default to the environment."""
    app = web.Application()
    app[CHARGES] = charges_endpoint(
        base_url or os.environ.get("STRIPE_BASE_URL", "https://api.stripe.com")
    )
    app[API_KEY] = api_key or os.environ.get("STRIPE_API_KEY", "sk_test_placeholder")
    app.cleanup_ctx.append(connector_context)
    app.router.add_post("/orders/{order_id}/pay", pay)
    return app


if __name__ == "__main__":
    web.run_app(create_app(), host="127.0.0.1", port=8080)
