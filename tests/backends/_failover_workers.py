"""Worker bodies for the failover test: module level, so spawned children can import them."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import structlog

from nexus_connector_async import Connector, ConnectorError, Endpoint, RedisBackend


async def pay_shared_keys(
    index: int, cluster_url: str, vendor_url: str, durability: str, seconds: float
) -> dict[str, int]:
    """Pay order-0, order-1, ... in turn (every worker the same keys) for `seconds`.

    Each key is paid by every worker at about the same moment, and a failed call is retried
    with the same key (as a caller would), so a claim or stored result the cluster loses in a
    failover shows up as a second POST for that key at the vendor. Returns counts by outcome:
    "sent", "replayed" and each error type.
    """
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(50))
    backend = RedisBackend.from_url(cluster_url, cluster=True, durability=durability)  # type: ignore[arg-type]
    endpoint = Endpoint.create(f"{vendor_url}/pay", "POST")  # a vendor without idempotency
    outcomes: Counter[str] = Counter()
    async with Connector(backend=backend, idempotency_wait=5.0) as connector:
        deadline = time.monotonic() + seconds
        n = 0
        while time.monotonic() < deadline:
            key = f"order-{n}"
            try:
                response = await connector.execute(
                    "vendor", endpoint, {"order": key}, idempotency_key=key
                )
                outcomes["replayed" if response.replayed else "sent"] += 1
            except ConnectorError as exc:
                outcomes[type(exc).__name__] += 1
                await asyncio.sleep(0.01)  # pace retries while the cluster fails over
                continue  # the same key again
            n += 1
    return dict(outcomes)
