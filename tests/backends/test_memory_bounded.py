"""Bounded memory (api.md rule 24): MemoryBackend frees what Redis would let expire.

5,000 keyed calls with a tiny ttl, over 500 tenant-scoped buckets, then the keys expire:
the backend's entries (records, buckets, breakers, values, waiters) return to their baseline,
and so does the heap (tracemalloc), on a fake clock. Before the fix, 36 MB stayed behind.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Mapping

from nexus_connector_async import (
    CircuitBreakerConfig,
    Connector,
    Endpoint,
    IdempotencyKey,
    MemoryBackend,
    RateLimitConfig,
    Response,
    Timeouts,
)
from nexus_connector_async.backends._base import ADMITTED, RATE_LIMITED
from nexus_connector_async.testing import FakeClock

CALLS = 5_000
TENANTS = 500  # a bucket each (scope="tenant"); below the connector's 4096-name check cache


class Ok:
    """A transport that answers 200 and, unlike MockTransport, keeps nothing."""

    async def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: Timeouts,
    ) -> Response:
        return Response(200, {}, b'{"id": "ch_1", "padding": "' + b"x" * 2000 + b'"}')

    async def aclose(self) -> None:
        return None


async def test_memory_returns_to_baseline_after_keys_expire() -> None:
    clock = FakeClock()
    backend = MemoryBackend(clock=clock)
    endpoint = Endpoint.create("https://vendor.test/v1/charges").with_rate_limit(
        RateLimitConfig.per_second(1000, scope="tenant")
    )
    async with Connector(backend=backend, http=Ok(), clock=clock) as connector:

        async def call(i: int) -> None:
            key = IdempotencyKey(f"order-{i}", ttl=0.01)
            response = await connector.execute(
                "stripe", endpoint, {"n": i}, idempotency_key=key, tenant_id=f"t{i % TENANTS}"
            )
            assert response.status == 200

        async def settle() -> None:
            clock.advance(60.0)  # every record, bucket and lease is expired or full by now
            await connector.execute("other", endpoint, tenant_id="t")  # a write sweeps
            gc.collect()

        await call(-1)
        await settle()
        baseline_entries = backend.entries()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for i in range(CALLS):
                await call(i)
            peak_entries = backend.entries()
            await settle()
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
    assert peak_entries >= CALLS + TENANTS  # the calls did leave records and buckets behind
    assert backend.entries() == baseline_entries
    assert after - before < 512 * 1024, f"{(after - before) / 1e6:.1f} MB still held"


async def test_freed_state_is_the_same_as_fresh_state() -> None:
    clock = FakeClock()
    backend = MemoryBackend(clock=clock)
    cb = CircuitBreakerConfig(failure_threshold=2, recovery_timeout=10.0)
    limit = RateLimitConfig.per_second(2)
    assert (await backend.admit("svc", None, cb, limit, probe_lease=5.0)).reason == ADMITTED
    await backend.record("svc", cb, success=False)  # one failure: the breaker is kept
    clock.advance(5.0)  # the bucket is full: freed; the breaker still counts its failure
    await backend.set("k", b"v", ttl=1.0)  # any write sweeps
    assert backend.breaker_state("svc") == "closed"
    assert await backend.get("k") == b"v"
    assert await backend.record("svc", cb, success=False) == "open"
    # A full bucket that was freed is a full one again; an expired value is gone.
    clock.advance(60.0)
    await backend.set("other", b"v")
    assert await backend.get("k") is None
    admissions = [await backend.admit("x", None, cb, limit, probe_lease=5.0) for _ in range(3)]
    assert [a.reason for a in admissions] == [ADMITTED, ADMITTED, RATE_LIMITED]
    # The open breaker is kept until an hour after its last use, then freed like the Redis key.
    assert backend.breaker_state("svc") == "open"
    clock.advance(3700.0)
    await backend.set("other", b"v")
    assert backend.breaker_state("svc") == "closed"
    assert backend.entries() == 1  # only "other", which has no ttl
