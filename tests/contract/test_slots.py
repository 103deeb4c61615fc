"""Concurrency slots (api.md 26): limit, release, leases, FIFO waiting, renewal, AIMD steps."""

from __future__ import annotations

import asyncio
from typing import Any

from nexus_connector_async.testing import FakeClock
from nexus_connector_async.typing import Adapt
from tests.contract.conftest import queued


async def take(backend: Any, n: int, *, wait: float = 0.0, tenant: str | None = None) -> Any:
    return await backend.acquire_slot("svc", tenant, n, 10.0, wait)


async def test_at_most_max_in_flight_then_fail_fast_with_retry_after(backend: Any) -> None:
    slots = [await take(backend, 3) for _ in range(3)]
    assert all(s.acquired for s in slots)
    assert len({s.token for s in slots}) == 3
    refused = await take(backend, 3)
    assert not refused.acquired
    assert refused.retry_after == 10.0  # the earliest lease end
    assert await backend.slot_usage("svc", None, 3) == (3, 3)


async def test_a_release_frees_a_slot_and_unknown_tokens_are_ignored(backend: Any) -> None:
    a = await take(backend, 1)
    await backend.release_slot("svc", None, "not-a-token", 1)
    assert not (await take(backend, 1)).acquired
    await backend.release_slot("svc", None, a.token, 1)
    await backend.release_slot("svc", None, a.token, 1)  # twice: still only one slot back
    assert (await take(backend, 1)).acquired
    assert not (await take(backend, 1)).acquired


async def test_scopes_are_separate(backend: Any) -> None:
    assert (await take(backend, 1, tenant="a")).acquired
    assert (await take(backend, 1, tenant="b")).acquired
    assert (await take(backend, 1)).acquired
    assert not (await take(backend, 1, tenant="a")).acquired


async def test_a_dead_holders_slot_comes_back_when_its_lease_ends(
    backend: Any, clock: FakeClock
) -> None:
    await take(backend, 1)  # never released: its worker died
    clock.advance(9.9)
    assert not (await take(backend, 1)).acquired
    clock.advance(0.2)
    assert (await take(backend, 1)).acquired


async def test_renewal_keeps_a_long_attempts_slot(backend: Any, clock: FakeClock) -> None:
    a = await take(backend, 1)
    clock.advance(8.0)
    assert await backend.renew_slot("svc", None, a.token, 10.0)
    clock.advance(8.0)
    assert not (await take(backend, 1)).acquired
    clock.advance(3.0)
    assert not await backend.renew_slot("svc", None, a.token, 10.0)  # lost: not revived
    assert (await take(backend, 1)).acquired


async def test_a_waiter_is_woken_by_a_release(backend: Any) -> None:
    a = await take(backend, 1)
    waiter = asyncio.ensure_future(take(backend, 1, wait=5.0))
    await queued(backend, 1)
    assert not waiter.done()
    await backend.release_slot("svc", None, a.token, 1)
    async with asyncio.timeout(3):
        got = await waiter
    assert got.acquired


async def test_a_release_wakes_the_waiter_at_once_not_at_its_next_re_check(backend: Any) -> None:
    """Redis waiters re-check every 0.5 s at most; the release itself must wake them sooner."""
    held = [await take(backend, 2) for _ in range(2)]
    waiter = asyncio.ensure_future(take(backend, 2, wait=30.0))
    await queued(backend, 1)
    await backend.release_slot("svc", None, held[0].token, 2)
    async with asyncio.timeout(0.3):  # the fake clock stands still: only a wake-up ends the wait
        got = await waiter
    assert got.acquired


async def test_waiters_are_served_in_arrival_order(backend: Any) -> None:
    held = await take(backend, 1)
    order: list[int] = []

    async def wait_then_release(i: int) -> None:
        s = await take(backend, 1, wait=30.0)
        assert s.acquired
        order.append(i)
        await backend.release_slot("svc", None, s.token, 1)

    tasks = []
    for i in range(4):
        tasks.append(asyncio.ensure_future(wait_then_release(i)))
        await queued(backend, i + 1)  # each queued before the next arrives
    late = await take(backend, 1)  # a newcomer may not jump the queue
    assert not late.acquired
    await backend.release_slot("svc", None, held.token, 1)
    async with asyncio.timeout(5):
        await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3]


async def test_a_waiter_gives_up_after_max_wait(backend: Any, clock: FakeClock) -> None:
    await take(backend, 1)
    waiter = asyncio.ensure_future(take(backend, 1, wait=2.0))
    await queued(backend, 1)
    clock.advance(2.5)
    async with asyncio.timeout(3):
        got = await waiter
    assert not got.acquired


async def test_a_cancelled_waiter_leaves_the_queue(backend: Any) -> None:
    a = await take(backend, 1)
    waiter = asyncio.ensure_future(take(backend, 1, wait=30.0))
    await queued(backend, 1)
    waiter.cancel()
    await queued(backend, 0)  # it left the queue
    await backend.release_slot("svc", None, a.token, 1)
    assert (await take(backend, 1)).acquired  # the cancelled waiter holds nothing


async def test_a_waiter_cancelled_before_its_answer_came_leaves_no_place_in_the_queue(
    backend: Any,
) -> None:
    a = await take(backend, 1)
    waiter = asyncio.ensure_future(take(backend, 1, wait=30.0))
    await asyncio.sleep(0)  # its request is out (on Redis: the answer "queued" not read yet)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    await backend.release_slot("svc", None, a.token, 1)
    # The give-back of what the cancelled request took lands in the background: a newcomer
    # gets the slot soon (a place left in the queue would block it for the waiter's 30 s).
    async with asyncio.timeout(5):
        while not (await take(backend, 1)).acquired:  # nobody left ahead of a newcomer
            await asyncio.sleep(0.001)


async def test_aimd_cuts_once_per_window_and_raises_by_one(backend: Any, clock: FakeClock) -> None:
    assert await backend.adapt_slot_limit("svc", None, 10, cut=True, window=1.0) == 7
    assert await backend.adapt_slot_limit("svc", None, 10, cut=True, window=1.0) is None
    assert await backend.slot_usage("svc", None, 10) == (0, 7)
    clock.advance(1.0)
    assert await backend.adapt_slot_limit("svc", None, 10, cut=False, window=1.0) == 8
    for _ in range(6):
        clock.advance(1.0)
        await backend.adapt_slot_limit("svc", None, 10, cut=True, window=1.0)
    assert (await backend.slot_usage("svc", None, 10))[1] == 1  # never below 1
    assert (await take(backend, 10)).acquired
    assert not (await take(backend, 10)).acquired
    for _ in range(20):
        clock.advance(1.0)
        await backend.adapt_slot_limit("svc", None, 10, cut=False, window=1.0)
    assert (await backend.slot_usage("svc", None, 10))[1] == 10  # never above max_in_flight


async def test_a_fresh_throttle_cuts_at_once_and_a_stale_one_not_at_all(
    backend: Any, clock: FakeClock
) -> None:
    """A throttle cuts only the limit its attempt was admitted under: one cut per overload."""
    old = await take(backend, 10)
    assert old.generation == 0
    cut = Adapt(cut=True, window=1.0, generation=old.generation)
    assert await backend.adapt_slot_limit("svc", None, 10, cut=True, window=1.0, generation=0) == 7
    # More 429s of the same cohort (admitted under 10) do not cut again...
    assert await backend.release_slot("svc", None, old.token, 10, adapt=cut) is None
    assert (await backend.slot_usage("svc", None, 10))[1] == 7
    # ...one from an attempt admitted under 7 does, even within the window.
    fresh = await take(backend, 10)
    assert fresh.generation == 1
    again = Adapt(cut=True, window=1.0, generation=fresh.generation)
    assert await backend.release_slot("svc", None, fresh.token, 10, adapt=again) == 4


async def test_a_throttle_right_after_a_raise_cuts_at_once(backend: Any, clock: FakeClock) -> None:
    assert await backend.adapt_slot_limit("svc", None, 10, cut=True, window=1.0) == 7
    clock.advance(1.0)
    assert await backend.adapt_slot_limit("svc", None, 10, cut=False, window=1.0) == 8
    probe = await take(backend, 10)  # admitted under 8
    throttled = Adapt(cut=True, window=1.0, generation=probe.generation)
    assert await backend.release_slot("svc", None, probe.token, 10, adapt=throttled) == 5
    # A success raises only once a window has passed since that cut.
    ok = await take(backend, 10)
    success = Adapt(cut=False, window=1.0, generation=ok.generation)
    assert await backend.release_slot("svc", None, ok.token, 10, adapt=success) is None
    clock.advance(1.0)
    ok = await take(backend, 10)
    assert await backend.release_slot("svc", None, ok.token, 10, adapt=success) == 6


async def test_a_throttled_release_cuts_before_it_hands_the_slot_on(backend: Any) -> None:
    """The freed slot goes to a waiter only if the cut limit still has room for it."""
    held = [await take(backend, 4) for _ in range(4)]
    waiter = asyncio.ensure_future(take(backend, 4, wait=30.0))
    await queued(backend, 1)
    throttled = Adapt(cut=True, window=1.0, generation=held[0].generation)
    assert await backend.release_slot("svc", None, held[0].token, 4, adapt=throttled) == 2
    await asyncio.sleep(0.6)  # past a Redis waiter's re-check: it must still be waiting
    assert not waiter.done()
    for slot in held[1:]:
        await backend.release_slot("svc", None, slot.token, 4)
    async with asyncio.timeout(3):
        assert (await waiter).acquired
    assert await backend.slot_usage("svc", None, 4) == (1, 2)
