"""An asyncio worker: payment jobs from a queue, many tasks, one `Connector`, clean shutdown.

Run several of these processes with `REDIS_URL` set and they share one rate limit, one circuit
breaker and the idempotency keys:

    printf 'order-1 500\\norder-2 700\\norder-1 500\\n' | python docs/examples/worker.py

Each input line is `ORDER_ID AMOUNT`. `STRIPE_BASE_URL` points the worker at a sandbox or a local
stub; `STRIPE_API_KEY` is the secret key. SIGTERM or SIGINT stops it from taking new jobs; jobs
already in flight finish before the connector closes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import structlog

from nexus_connector_async import (
    Backend,
    CircuitOpenError,
    Connector,
    ConnectorError,
    Endpoint,
    HttpStatusError,
    IdempotencyKey,
    RateLimitConfig,
    RateLimitExceeded,
    RetryPolicy,
    StaticCredentialProvider,
    Timeouts,
)


@dataclass(frozen=True)
class PaymentJob:
    """One order to charge. The order id is the idempotency key: a redelivered job is safe."""

    order_id: str
    amount: int  # minor units
    currency: str = "usd"
    source: str = "tok_visa"


def charges_endpoint(base_url: str) -> Endpoint:
    """Stripe's legacy Charges API with a fleet-wide limit and a retry budget."""
    return Endpoint.create(
        f"{base_url.rstrip('/')}/v1/charges",
        "POST",
        body="form",
        # Pin the API version: without it Stripe uses the account's default, which changes
        # when someone upgrades it in the dashboard (and the library's simulator refuses it).
        headers={"Stripe-Version": "2026-06-24.dahlia"},
        idempotency_header="Idempotency-Key",
        timeout=Timeouts(total=10.0, connect=3.0),
        rate_limit=RateLimitConfig.per_second(25, max_wait=2.0),
        retry=RetryPolicy(max_attempts=4, budget_ratio=0.2),
    )


async def pay(connector: Connector, charges: Endpoint, job: PaymentJob) -> str:
    """Charge one job; returns its outcome: paid, replayed, declined, deferred or failed."""
    payload = {"amount": job.amount, "currency": job.currency, "source": job.source}
    try:
        response = await connector.execute(
            "stripe", charges, payload, idempotency_key=IdempotencyKey(f"order-{job.order_id}")
        )
    except (CircuitOpenError, RateLimitExceeded):
        # The vendor is down or we are at the limit: hand the job back to your queue with a
        # delay of `exc.retry_after` seconds instead of spinning on it.
        return "deferred"
    except HttpStatusError as exc:
        return "declined" if exc.status < 500 else "failed"
    except ConnectorError:
        return "failed"  # timeouts, connection errors: retry the job later, same key
    return "replayed" if response.replayed else "paid"


async def run_worker(
    jobs: Iterable[PaymentJob],
    *,
    base_url: str,
    api_key: str,
    concurrency: int = 10,
    backend: Backend | None = None,
    stop: asyncio.Event | None = None,
) -> Counter[str]:
    """Pay `jobs` with `concurrency` tasks until they run out or `stop` is set."""
    queue: asyncio.Queue[PaymentJob] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    stop = stop or asyncio.Event()
    outcomes: Counter[str] = Counter()
    charges = charges_endpoint(base_url)
    credentials = StaticCredentialProvider({"stripe": api_key})

    async def consume(connector: Connector) -> None:
        while not stop.is_set():
            try:
                job = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            outcomes[await pay(connector, charges, job)] += 1

    # The task group ends (first) when every consumer has finished its job in flight: only
    # then does the connector close its HTTP session and backend.
    async with (
        Connector(backend=backend, credentials=credentials) as connector,
        asyncio.TaskGroup() as tasks,
    ):
        for _ in range(concurrency):
            tasks.create_task(consume(connector))
    return outcomes


def read_jobs(lines: Iterable[str]) -> list[PaymentJob]:
    """`ORDER_ID AMOUNT` per line; blank lines are skipped."""
    jobs = []
    for line in lines:
        if line.strip():
            order_id, amount = line.split()
            jobs.append(PaymentJob(order_id, int(amount)))
    return jobs


def configure_logging() -> None:
    """JSON log lines on stderr at INFO and above: the `nexus.*` events, ready for shipping."""
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


async def main() -> None:
    """Read jobs from stdin, pay them, print the outcome counts."""
    configure_logging()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    backend: Backend | None = None
    if redis_url := os.environ.get("REDIS_URL"):
        from nexus_connector_async import RedisBackend  # noqa: PLC0415 - the redis extra

        backend = RedisBackend.from_url(redis_url)
    outcomes = await run_worker(
        read_jobs(sys.stdin),
        base_url=os.environ.get("STRIPE_BASE_URL", "https://api.stripe.com"),
        api_key=os.environ.get("STRIPE_API_KEY", "sk_test_placeholder"),
        backend=backend,
        stop=stop,
    )
    for outcome, count in sorted(outcomes.items()):
        print(f"{outcome:<9} {count}")


if __name__ == "__main__":
    asyncio.run(main())
