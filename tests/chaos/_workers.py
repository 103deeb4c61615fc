"""The chaos run's worker process: keyed payments, each outcome appended to its own log file.

Module level, so spawned children can import it. Every outcome is written (and flushed) as one
JSON line the moment it is known, so a worker SIGKILLed by the controller leaves a true record
of everything it saw up to its death.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import structlog

from nexus_connector_async import Connector as _Connector
from nexus_connector_async import (
    ConnectorError,
    Endpoint,
    IdempotencyKey,
    RateLimitConfig,
    RedisBackend,
    RetryPolicy,
    Timeouts,
)

# Keys per lane: few in the short CI runs (so keys repeat across workers and faults), many in
# long runs (`--keys`), so that new keys keep coming.
KEYS_PER_LANE = int(os.environ.get("NEXUS_CHAOS_KEYS", "60"))
LEASE = 2.0
RATE, BURST = 40.0, 10
LIMIT = RateLimitConfig.per_second(RATE, burst=BURST, max_wait=0.5)


def endpoints(vendor_url: str) -> dict[str, Endpoint]:
    """The two lanes: a vendor that deduplicates by Idempotency-Key, and one that does not."""
    timeouts = Timeouts(total=1.0)
    retry = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05)
    return {
        "dedup": Endpoint.create(
            f"{vendor_url}/dedup", "POST", idempotency_header="Idempotency-Key"
        )
        .with_timeout(timeouts)
        .with_retry(retry)
        .with_rate_limit(LIMIT),
        "plain": Endpoint.create(f"{vendor_url}/plain", "POST")
        .with_timeout(timeouts)
        .with_retry(retry)
        .with_rate_limit(LIMIT),
    }


def connector(redis_url: str, **kw: Any) -> _Connector:
    backend = RedisBackend.from_url(redis_url, prefix="chaos")
    return _Connector(backend=backend, idempotency_lease=LEASE, idempotency_wait=1.0, **kw)


def run_worker(
    index: int, seed: int, redis_url: str, vendor_url: str, seconds: float, log: str
) -> None:
    """Process entry point: pay random keys of both lanes for `seconds`."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(50))
    asyncio.run(_work(index, seed, redis_url, vendor_url, seconds, Path(log)))


async def _work(
    index: int, seed: int, redis_url: str, vendor_url: str, seconds: float, log: Path
) -> None:
    rng = random.Random(seed * 1000 + index)
    lanes = endpoints(vendor_url)
    with log.open("a", encoding="utf-8") as out:

        def write(record: dict[str, Any]) -> None:
            out.write(json.dumps(record) + "\n")
            out.flush()

        async with connector(redis_url) as c:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                lane = rng.choice(("dedup", "plain"))
                key = f"{lane}-{rng.randrange(KEYS_PER_LANE)}"
                call = asyncio.ensure_future(
                    c.execute(
                        lane, lanes[lane], {"order": key}, idempotency_key=IdempotencyKey(key)
                    )
                )
                if rng.random() < 0.05:  # a caller that gives up: cancelled at a random moment
                    await asyncio.wait((call,), timeout=rng.uniform(0.0, 0.05))
                    call.cancel()
                record: dict[str, Any] = {"worker": index, "lane": lane, "key": key}
                try:
                    r = await call
                except asyncio.CancelledError:
                    record["outcome"] = "cancelled"
                except ConnectorError as exc:
                    record.update(outcome="error", error=type(exc).__name__)
                except BaseException as exc:
                    record.update(
                        outcome="foreign", error=f"{type(exc).__module__}.{type(exc).__name__}"
                    )
                else:
                    record.update(
                        outcome="ok", status=r.status, body=r.body.decode(), replayed=r.replayed
                    )
                write(record)
                if record["outcome"] != "ok":
                    await asyncio.sleep(rng.uniform(0.0, 0.02))  # a caller pauses before the next
