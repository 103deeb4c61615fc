"""Worker bodies for `run_in_processes`: module level, so spawned children can import them."""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping

import structlog

from nexus_connector_async import (
    AiohttpTransport,
    Connector,
    Endpoint,
    IdempotencyKey,
    RedisBackend,
    Response,
    Timeouts,
)

KILL_POINTS = ("before_send", "after_send", "after_store")


class DyingTransport:
    """The real transport, with a SIGKILL of this very process at one point of the exchange."""

    def __init__(self, point: str) -> None:
        self.point = point
        self.inner = AiohttpTransport()

    async def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: Timeouts,
    ) -> Response:
        if self.point == "before_send":  # the key is claimed, nothing went out
            os.kill(os.getpid(), signal.SIGKILL)
        response = await self.inner.send(method, url, headers, body, timeout)
        if self.point == "after_send":  # the vendor charged; the result is not stored yet
            os.kill(os.getpid(), signal.SIGKILL)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def payment(vendor_url: str) -> Endpoint:
    return Endpoint(f"{vendor_url}/v1/charges", "POST", idempotency_header="Idempotency-Key")


async def pay_and_die(
    index: int, redis_url: str, vendor_url: str, point: str, key: str, lease: float
) -> None:
    """Run one idempotent payment through a real Connector and die by SIGKILL at `point`."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(50))
    backend = RedisBackend.from_url(redis_url)
    c = Connector(backend=backend, http=DyingTransport(point), idempotency_lease=lease)
    await c.execute(
        "vendor", payment(vendor_url), {"amount": 1000}, idempotency_key=IdempotencyKey(key)
    )
    # after_store: the result is stored, the process dies before anyone hears back.
    os.kill(os.getpid(), signal.SIGKILL)
