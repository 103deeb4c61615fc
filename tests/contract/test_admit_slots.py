"""A concurrency slot taken in the admission itself (api.md 26: no extra round trip).

The same admission decides breaker, budget, token and slot: a free slot comes with it; with
fail-fast no free slot refuses it before a token is spent; a caller that would wait is admitted
without one (and queues with `acquire_slot`); newcomers never overtake queued waiters.
"""

from __future__ import annotations

import asyncio
from typing import Any

from nexus_connector_async import CircuitBreakerConfig, RateLimitConfig
from nexus_connector_async.backends._base import ADMITTED, CONCURRENCY_LIMITED, RATE_LIMITED
from nexus_connector_async.testing import FakeClock
from nexus_connector_async.typing import SlotAsk
from tests.contract.conftest import queued

CB = CircuitBreakerConfig()
FAST = SlotAsk(None, 2, 10.0, fail_fast=True)
PATIENT = SlotAsk(None, 2, 10.0, fail_fast=False)


async def admit(backend: Any, slot: SlotAsk | None, limit: RateLimitConfig | None = None) -> Any:
    return await backend.admit("svc", None, CB, limit, probe_lease=5.0, slot=slot)


async def test_a_free_slot_comes_with_the_admission(backend: Any) -> None:
    a, b = await admit(backend, FAST), await admit(backend, FAST)
    assert (a.reason, b.reason) == (ADMITTED, ADMITTED)
    assert a.slot
    assert b.slot
    assert a.slot != b.slot
    assert await backend.slot_usage("svc", None, 2) == (2, 2)
    await backend.release_slot("svc", None, a.slot, 2)
    assert await backend.slot_usage("svc", None, 2) == (1, 2)


async def test_fail_fast_refuses_with_the_lease_left_and_spends_no_token(
    backend: Any, clock: FakeClock
) -> None:
    limit = RateLimitConfig.per_second(0.01, burst=3)  # (no refill to speak of)
    for _ in range(2):
        assert (await admit(backend, FAST, limit)).slot
    clock.advance(4.0)
    refused = await admit(backend, FAST, limit)
    assert (refused.reason, refused.wait, refused.slot) == (CONCURRENCY_LIMITED, 6.0, "")
    # Its token is still in the bucket: one more admission without a slot gets it.
    assert (await admit(backend, None, limit)).reason == ADMITTED
    assert (await admit(backend, None, limit)).reason == RATE_LIMITED


async def test_a_caller_that_would_wait_is_admitted_without_a_slot(backend: Any) -> None:
    for _ in range(2):
        await admit(backend, PATIENT)
    adm = await admit(backend, PATIENT)
    assert (adm.reason, adm.slot) == (ADMITTED, "")
    assert await backend.slot_usage("svc", None, 2) == (2, 2)


async def test_an_admission_waiting_for_its_token_takes_no_slot(backend: Any) -> None:
    limit = RateLimitConfig.per_second(1, burst=1, max_wait=5.0)
    first = await admit(backend, PATIENT, limit)
    assert first.slot
    later = await admit(backend, PATIENT, limit)
    assert (later.reason, later.wait, later.slot) == (ADMITTED, 1.0, "")
    assert await backend.slot_usage("svc", None, 2) == (1, 2)


async def test_a_newcomer_does_not_overtake_a_queued_waiter(backend: Any) -> None:
    held = [await admit(backend, FAST) for _ in range(2)]
    waiter = asyncio.ensure_future(backend.acquire_slot("svc", None, 2, 10.0, 30.0))
    await queued(backend, 1)
    await backend.release_slot("svc", None, held[0].slot, 2)
    late = await admit(backend, FAST)  # a slot is free, but the waiter came first
    assert (late.reason, late.slot) == (CONCURRENCY_LIMITED, "")
    async with asyncio.timeout(3):
        assert (await waiter).acquired


async def test_shadow_mode_takes_no_slot_in_the_admission(backend: Any) -> None:
    adm = await backend.admit("svc", None, CB, None, probe_lease=5.0, shadow=True, slot=FAST)
    assert (adm.reason, adm.slot) == (ADMITTED, "")
    assert await backend.slot_usage("svc", None, 2) == (0, 2)


async def test_the_slot_carries_the_adaptive_generation(backend: Any) -> None:
    assert await backend.adapt_slot_limit("svc", None, 2, cut=True, window=1.0) == 1
    adm = await admit(backend, FAST)
    assert (adm.slot != "", adm.slot_generation) == (True, 1)
    assert (await admit(backend, FAST)).reason == CONCURRENCY_LIMITED  # the cut limit holds
