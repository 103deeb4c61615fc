"""A FastAPI app (the same lifespan works for plain Starlette) with one shared `Connector`.

Run it with `uvicorn docs.examples.fastapi_app:app` from the repository root.
`STRIPE_BASE_URL` points it at a sandbox or a local stub; `STRIPE_API_KEY` is the secret key.
"""

from __future__ import annotations

import math
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel

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


class Order(BaseModel):
    """What the client sends: an amount in minor units (cents)."""

    amount: int
    currency: str = "usd"
    source: str = "tok_visa"


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
        deadline=15.0,
    )


def create_app(base_url: str | None = None, api_key: str | None = None) -> FastAPI:
    """The app; `base_url` and `api_key` default to the environment."""
    charges = charges_endpoint(
        base_url or os.environ.get("STRIPE_BASE_URL", "https://api.stripe.com")
    )
    secret = api_key or os.environ.get("STRIPE_API_KEY", "sk_test_placeholder")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One Connector per process: opened before the first request, closed at shutdown.
        credentials = StaticCredentialProvider({"stripe": secret})
        async with Connector(credentials=credentials) as connector:
            app.state.connector = connector
            yield

    app = FastAPI(lifespan=lifespan)

    @app.post("/orders/{order_id}/pay")
    async def pay(order_id: str, order: Order, request: Request) -> dict[str, Any]:
        """Charge an order once: a repeat gets the same charge back."""
        connector: Connector = request.app.state.connector
        try:
            response = await connector.execute(
                "stripe",
                charges,
                order.model_dump(),
                idempotency_key=IdempotencyKey(f"order-{order_id}"),
            )
        except (CircuitOpenError, RateLimitExceeded) as exc:
            retry_after = str(max(1, math.ceil(exc.retry_after)))
            raise HTTPException(503, "payments are busy", {"Retry-After": retry_after}) from exc
        except IdempotencyConflict as exc:
            raise HTTPException(409, "this order was already paid with other details") from exc
        except HttpStatusError as exc:
            if exc.status >= 500:
                raise HTTPException(502, "the payment provider failed") from exc
            raise HTTPException(402, {"paid": False, "vendor_status": exc.status}) from exc
        charge = response.json()
        return {"paid": True, "charge": charge["id"], "replayed": response.replayed}

    return app


app = create_app()
