"""A fault-injecting vendor simulator on 127.0.0.1, for the demo, tests and benchmarks."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any, Self

from ._vendor_server import Answer, SimulatedRequest, VendorServer

__all__ = ["VendorSimulator"]


class VendorSimulator(VendorServer):
    """A payment-vendor-like HTTP server with latency, 5xx outages and 429 throttling.

    `outage=(start, end)` answers 503 to every request between those seconds after start;
    `throttle_rate` answers that fraction with 429 and `Retry-After`; `error_rate` answers that
    fraction with 500. Requests carrying an `Idempotency-Key` seen with a 200 get that answer
    again, as Stripe does. `charges` counts the charges made, `by_status` the answers. Use as
    `async with VendorSimulator() as sim:` and send to `f"{sim.url}/v1/charges"`.
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
        super().__init__()
        self.latency = latency
        self.error_rate = error_rate
        self.throttle_rate = throttle_rate
        self.retry_after = retry_after
        self.outage = outage
        self.charges = 0
        self._random = random.Random(seed)
        self._started = 0.0

    async def start(self) -> Self:
        """Listen on a free port of 127.0.0.1; the `outage` window counts from now."""
        await super().start()
        self._started = time.monotonic()
        return self

    async def parse(self, request: SimulatedRequest) -> None:
        """Reading the request takes the configured `latency` (replays included)."""
        low, high = self.latency
        if high > 0:
            await asyncio.sleep(self._random.uniform(low, high))

    def replay_key(self, request: SimulatedRequest) -> str | None:
        """Any request may carry an `Idempotency-Key`."""
        return request.headers.get("Idempotency-Key")

    def remembers(self, answer: Answer) -> bool:
        """Only a charge made is kept: a throttled or failed request may be sent again."""
        return answer.status == 200

    async def route(self, request: SimulatedRequest, parsed: Any) -> Answer:
        """The outage window, then a throttle or error roll, else a charge."""
        elapsed = time.monotonic() - self._started
        if self.outage is not None and self.outage[0] <= elapsed < self.outage[1]:
            return Answer(503, {"error": {"type": "api_error", "message": "outage"}})
        roll = self._random.random()
        if roll < self.throttle_rate:
            return Answer(
                429,
                {"error": {"type": "rate_limit_error", "code": "rate_limit"}},
                {"Retry-After": f"{self.retry_after:g}"},
            )
        if roll < self.throttle_rate + self.error_rate:
            return Answer(500, {"error": {"type": "api_error"}})
        self.charges += 1
        return Answer(
            200, {"id": f"ch_{self.charges:06d}", "object": "charge", "status": "succeeded"}
        )
