"""Retry budget: a floor of retries per second plus a share of first attempts, shared."""

from __future__ import annotations

from nexus_connector_async import CircuitBreakerConfig, RetryPolicy
from nexus_connector_async.backends._base import ADMITTED, BUDGET_EXHAUSTED, Backend
from nexus_connector_async.testing import FakeClock

CB = CircuitBreakerConfig()
POLICY = RetryPolicy(budget_ratio=0.5, budget_min_per_second=2.0)


async def attempt(backend: Backend, *, retry: bool) -> int:
    adm = await backend.admit("svc", None, CB, None, probe_lease=5.0, budget=POLICY, is_retry=retry)
    return adm.reason


async def test_the_budget_starts_with_one_second_of_its_floor(backend: Backend) -> None:
    assert [await attempt(backend, retry=True) for _ in range(3)] == [
        ADMITTED,
        ADMITTED,
        BUDGET_EXHAUSTED,
    ]


async def test_a_refused_retry_says_when_the_floor_brings_the_next(backend: Backend) -> None:
    for _ in range(2):
        await attempt(backend, retry=True)
    adm = await backend.admit("svc", None, CB, None, probe_lease=5.0, budget=POLICY, is_retry=True)
    assert adm.reason == BUDGET_EXHAUSTED
    assert adm.wait == 0.5


async def test_first_attempts_earn_a_share_of_a_retry(backend: Backend) -> None:
    for _ in range(2):
        await attempt(backend, retry=True)
    for _ in range(4):
        assert await attempt(backend, retry=False) == ADMITTED
    assert [await attempt(backend, retry=True) for _ in range(3)] == [
        ADMITTED,
        ADMITTED,
        BUDGET_EXHAUSTED,
    ]


async def test_the_budget_refills_at_its_floor(backend: Backend, clock: FakeClock) -> None:
    for _ in range(2):
        await attempt(backend, retry=True)
    clock.advance(1.5)
    assert [await attempt(backend, retry=True) for _ in range(4)] == [
        ADMITTED,
        ADMITTED,
        ADMITTED,
        BUDGET_EXHAUSTED,
    ]


async def test_no_budget_never_refuses_retries(backend: Backend) -> None:
    for _ in range(50):
        adm = await backend.admit("svc", None, CB, None, probe_lease=5.0, is_retry=True)
        assert adm.reason == ADMITTED
