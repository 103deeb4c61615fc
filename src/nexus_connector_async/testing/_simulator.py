"""A fault-injecting vendor simulator on 127.0.0.1, for the demo, tests and benchmarks."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import msgspec
from aiohttp import web

__all__ = ["VendorSimulator"]


class VendorSimulator:
    """A payment-vendor-like HTTP server with latency, 5xx outages and 429 throttling.

    `outage=(start, end)` answers 503 to every request between those seconds after start;
    `throttle_rate` answers that fraction with 429 and `Retry-After`; `error_rate` answers that
    fraction with 500. Requests carrying an `Idempotency-Key` seen before get the first answer
    again, as Stripe does. Use as `async with VendorSimulator() as sim: sim.url("/v1/charges")`.
    """

    def __init__(
        self,
        *,
        latency: tuple[float, float] = (0.0, 0.0),
        error_rate: float = 0.0,
        throttle_rate: float = 0.0,
        retry_after: float = 1.0,
        outage: tuple[float, float] | None = None,
        seed: int | None = None,
    ) -> None:
        self.latency = latency
        self.error_rate = error_rate
        self.throttle_rate = throttle_rate
        self.retry_after = retry_after
        self.outage = outage
        self.requests = 0
        self.charges = 0
        self.by_status: dict[int, int] = {}
        self._random = random.Random(seed)
        self._seen: dict[str, tuple[int, bytes]] = {}
        self._runner: web.AppRunner | None = None
        self._started = 0.0
        self.base = ""

    def url(self, path: str = "/v1/charges") -> str:
        """The absolute URL of `path` on this simulator."""
        return self.base + path

    async def __aenter__(self) -> VendorSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        self._started = time.monotonic()

    async def close(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _answer(
        self, status: int, body: Any, headers: dict[str, str] | None = None
    ) -> web.Response:
        self.by_status[status] = self.by_status.get(status, 0) + 1
        return web.Response(
            status=status,
            body=msgspec.json.encode(body),
            headers={"Content-Type": "application/json", **(headers or {})},
        )

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        await request.read()
        low, high = self.latency
        if high > 0:
            await asyncio.sleep(self._random.uniform(low, high))
        key = request.headers.get("Idempotency-Key")
        if key is not None and key in self._seen:
            status, body = self._seen[key]
            self.by_status[status] = self.by_status.get(status, 0) + 1
            return web.Response(
                status=status, body=body, headers={"Content-Type": "application/json"}
            )
        elapsed = time.monotonic() - self._started
        if self.outage is not None and self.outage[0] <= elapsed < self.outage[1]:
            return self._answer(503, {"error": {"type": "api_error", "message": "outage"}})
        roll = self._random.random()
        if roll < self.throttle_rate:
            return self._answer(
                429,
                {"error": {"type": "rate_limit_error", "code": "rate_limit"}},
                {"Retry-After": f"{self.retry_after:g}"},
            )
        if roll < self.throttle_rate + self.error_rate:
            return self._answer(500, {"error": {"type": "api_error"}})
        self.charges += 1
        charge = {"id": f"ch_{self.charges:06d}", "object": "charge", "status": "succeeded"}
        response = self._answer(200, charge)
        if key is not None:
            self._seen[key] = (200, msgspec.json.encode(charge))
        return response
