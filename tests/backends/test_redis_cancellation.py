"""A caller cancelled while its admission reply is in flight gives its probe permit back."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from nexus_connector_async import CircuitBreakerConfig, RedisBackend
from nexus_connector_async.backends._base import ADMITTED, CIRCUIT_OPEN, AdmitAsk
from nexus_connector_async.testing import FakeClock
from tests._redis_servers import RedisProcess

pytestmark = pytest.mark.redis

BREAKER = CircuitBreakerConfig(failure_threshold=1, recovery_timeout=5.0, half_open_max_calls=1)


async def _cancel_in_flight(
    backend: RedisBackend, clock: FakeClock, call: Callable[[], Awaitable[Any]]
) -> None:
    """Open the breaker, let it half-open (one probe permit), and cancel `call` while its
    reply is in flight: the script runs and grants, but its caller is gone."""
    assert await backend.record("svc", BREAKER, success=False) == "open"
    clock.advance(5.0)
    doomed = asyncio.ensure_future(call())
    await asyncio.sleep(0)  # the command is queued in the next batch...
    doomed.cancel()  # ...and its caller goes away before the reply arrives
    with pytest.raises(asyncio.CancelledError):
        await doomed


async def test_a_permit_granted_to_a_cancelled_caller_is_released(
    redis_server: RedisProcess, redis_flush: None
) -> None:
    clock = FakeClock()
    backend = RedisBackend.from_url(redis_server.url, clock=clock)
    try:
        await _cancel_in_flight(
            backend, clock, lambda: backend.admit("svc", None, BREAKER, None, probe_lease=60.0)
        )
        # The script still ran and granted the only permit; the orphaned reply hands it back.
        async with asyncio.timeout(5.0):
            while True:
                adm = await backend.admit("svc", None, BREAKER, None, probe_lease=60.0)
                if adm.reason == ADMITTED:
                    break
                assert adm.reason == CIRCUIT_OPEN
                await asyncio.sleep(0.01)
        assert adm.probe
    finally:
        await backend.aclose()


async def test_a_key_and_permit_claimed_for_a_cancelled_caller_are_released(
    redis_server: RedisProcess, redis_flush: None
) -> None:
    # The connector awaits claim_admit without a shielding task: the store's own duty.
    clock = FakeClock()
    backend = RedisBackend.from_url(redis_server.url, clock=clock)
    ask = AdmitAsk(BREAKER, None, 60.0)
    try:
        await _cancel_in_flight(
            backend, clock, lambda: backend.claim_admit("svc", None, "k", "fp", 60.0, ask)
        )
        # The script took the key and the only permit; the orphaned reply hands both back, so
        # a repeat gets them now, not when the 60 s lease ends.
        async with asyncio.timeout(5.0):
            while True:
                claim, adm = await backend.claim_admit("svc", None, "k", "fp", 60.0, ask)
                if claim.state == "acquired" and adm is not None and adm.reason == ADMITTED:
                    break
                assert claim.state in ("acquired", "in_progress")
                if claim.state == "acquired":
                    await backend.release("svc", None, "k", claim.token)
                await asyncio.sleep(0.01)
        assert adm.probe
    finally:
        await backend.aclose()
