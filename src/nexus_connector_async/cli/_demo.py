"""`python -m nexus_connector_async demo`: a few hundred payments through the whole pipeline.

A local vendor simulator injects latency, a 5xx outage and 429s with Retry-After; the connector
(in-memory backend, the default) retries what is safe, opens and closes its circuit, respects
its rate limit and its concurrency limit (at most `IN_FLIGHT` requests at the vendor at once,
as Twilio limits an account's concurrent requests) and replays repeated idempotency keys. Ends
with a table of what happened.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections import Counter
from typing import TextIO

import msgspec

from .._config import (
    CircuitBreakerConfig,
    ConcurrencyLimit,
    Endpoint,
    RateLimitConfig,
    RetryPolicy,
    Timeouts,
)
from .._connector import Connector
from .._errors import (
    CircuitOpenError,
    ConcurrencyLimitExceeded,
    ConnectorError,
    HttpStatusError,
    RateLimitExceeded,
    plural,
)
from .._models import IdempotencyKey
from ..testing._simulator import VendorSimulator

#: The vendor's limit on requests open at once (Twilio answers 20429 beyond its account's).
IN_FLIGHT = 8

ROWS = (
    ("sent", "paid on the first attempt"),
    ("retried", "paid after retries (same idempotency key)"),
    ("replayed", "repeat of a paid key: stored response, nothing sent"),
    ("rate_limited", "refused by the rate limiter (no token within max_wait)"),
    ("concurrency", "refused by the concurrency limit (no free slot within max_wait)"),
    ("circuit_open", "refused while the circuit was open"),
    ("failed", "vendor error after all safe retries"),
)


async def run_demo(
    payments: int = 300, concurrency: int = 25, seed: int = 7, out: TextIO = sys.stdout
) -> Counter[str]:
    """Run the demo and return the outcome counts.

    The progress bar is drawn only on a terminal; into a file or pipe the demo writes the
    final table alone. The library logs nothing here: logging is not configured.
    """
    live = bool(getattr(out, "isatty", lambda: False)())
    rng = random.Random(seed)
    counts: Counter[str] = Counter()
    sim = VendorSimulator(
        latency=(0.005, 0.03),
        throttle_rate=0.03,
        error_rate=0.04,
        retry_after=0.2,
        outage=(1.0, 1.4),
        seed=seed,
    )
    endpoint = Endpoint(
        "http://placeholder.invalid/v1/charges",
        "POST",
        body="form",
        timeout=Timeouts(total=2.0),
        rate_limit=RateLimitConfig.per_second(140, burst=20, max_wait=0.1),
        circuit_breaker=CircuitBreakerConfig(
            failure_threshold=5, recovery_timeout=0.3, half_open_max_calls=2
        ),
        retry=RetryPolicy(max_attempts=4, base_delay=0.05, max_delay=0.5),
        idempotency_header="Idempotency-Key",
        # Fleet-wide with a RedisBackend: every worker's requests count against the one limit.
        concurrency_limit=ConcurrencyLimit(IN_FLIGHT, max_wait=0.25),
    )
    async with sim, Connector() as connector:
        ep = msgspec.structs.replace(endpoint, url=f"{sim.url}/v1/charges")
        keys: list[IdempotencyKey] = []
        limiter = asyncio.Semaphore(concurrency)
        started = time.monotonic()

        async def pay(i: int) -> None:
            if keys and rng.random() < 0.1:
                key = rng.choice(keys)  # a client retrying a payment it already made
                amount = int(key.value.rsplit("_", 1)[0].split("-")[1])
            else:
                amount = 500 + i
                key = IdempotencyKey(f"demo-{amount}_{i}")
            async with limiter:
                try:
                    response = await connector.execute(
                        "stripe", ep, {"amount": amount, "currency": "usd"}, idempotency_key=key
                    )
                except ConcurrencyLimitExceeded:  # a RateLimitExceeded: caught first
                    counts["concurrency"] += 1
                except RateLimitExceeded:
                    counts["rate_limited"] += 1
                except CircuitOpenError:
                    counts["circuit_open"] += 1
                except (HttpStatusError, ConnectorError):
                    counts["failed"] += 1
                else:
                    if response.replayed:
                        counts["replayed"] += 1
                    else:
                        counts["retried" if response.attempts > 1 else "sent"] += 1
                        keys.append(key)

        async def progress() -> None:
            if not live:  # carriage-return frames would pile up in a log file
                return
            while True:
                done = sum(counts.values())
                bar = "#" * (30 * done // payments)
                out.write(
                    f"\r  [{bar:<30}] {done:>4}/{payments}  "
                    + "  ".join(f"{k}={counts[k]}" for k, _ in ROWS)
                )
                out.flush()
                if done >= payments:
                    out.write("\n")
                    return
                await asyncio.sleep(0.1)

        reporter = asyncio.create_task(progress())
        tasks = []
        for i in range(payments):
            tasks.append(asyncio.create_task(pay(i)))
            await asyncio.sleep(0.008)  # ~125 payments/s offered
        await asyncio.gather(*tasks)
        await reporter
        elapsed = time.monotonic() - started

    out.write(
        f"\n  {plural(payments, 'payment')} in {elapsed:.1f}s; the vendor saw "
        f"{plural(len(sim.requests), 'request')} and made {plural(sim.charges, 'charge')};\n"
        f"  never more than {IN_FLIGHT} requests at the vendor at once (ConcurrencyLimit).\n\n"
    )
    out.write(f"  {'outcome':<14}{'count':>6}  meaning\n  {'-' * 72}\n")
    for key, meaning in ROWS:
        out.write(f"  {key:<14}{counts[key]:>6}  {meaning}\n")
    out.write(f"  {'-' * 72}\n  {'total':<14}{sum(counts.values()):>6}\n")
    return counts
