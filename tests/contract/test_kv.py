"""Shared key-value store and locks (OAuth token cache, single-flight refresh)."""

from __future__ import annotations

import asyncio

from nexus_connector_async import Backend
from nexus_connector_async.testing import FakeClock


async def test_get_set_overwrite_delete(backend: Backend) -> None:
    assert await backend.get("k") is None
    await backend.set("k", b"one")
    assert await backend.get("k") == b"one"
    await backend.set("k", b"\x00two")
    assert await backend.get("k") == b"\x00two"
    await backend.delete("k")
    assert await backend.get("k") is None
    await backend.delete("k")  # deleting a missing key is fine


async def test_a_value_with_a_ttl_expires(backend: Backend, clock: FakeClock) -> None:
    await backend.set("k", b"v", ttl=10.0)
    clock.advance(9.9)
    assert await backend.get("k") == b"v"
    clock.advance(0.1)
    assert await backend.get("k") is None


async def test_setting_without_ttl_clears_an_earlier_ttl(
    backend: Backend, clock: FakeClock
) -> None:
    await backend.set("k", b"v", ttl=1.0)
    await backend.set("k", b"w")
    clock.advance(5.0)
    assert await backend.get("k") == b"w"


async def test_a_lock_has_one_holder_at_a_time(backend: Backend) -> None:
    assert await backend.acquire_lock("lock", "t1", 10.0) is True
    assert await backend.acquire_lock("lock", "t2", 10.0) is False


async def test_only_the_holder_releases_a_lock(backend: Backend) -> None:
    await backend.acquire_lock("lock", "t1", 10.0)
    await backend.release_lock("lock", "t2")
    assert await backend.acquire_lock("lock", "t2", 10.0) is False
    await backend.release_lock("lock", "t1")
    assert await backend.acquire_lock("lock", "t2", 10.0) is True


async def test_a_lock_frees_itself_when_its_lease_ends(backend: Backend, clock: FakeClock) -> None:
    await backend.acquire_lock("lock", "t1", 10.0)
    clock.advance(10.0)
    assert await backend.acquire_lock("lock", "t2", 10.0) is True
    await backend.release_lock("lock", "t1")  # the old holder cannot free the new one's lock
    assert await backend.acquire_lock("lock", "t3", 10.0) is False


async def test_keys_are_independent(backend: Backend) -> None:
    await backend.set("a", b"1")
    assert await backend.acquire_lock("b", "t", 10.0) is True
    assert await backend.get("a") == b"1"


async def test_a_counter_adds_up_to_its_limit_and_refuses_past_it(backend: Backend) -> None:
    assert await backend.add("spend", 600, limit=1000) == (True, 600)
    assert await backend.add("spend", 400, limit=1000) == (True, 1000)
    assert await backend.add("spend", 1, limit=1000) == (False, 1000)
    assert await backend.add("spend", -300) == (True, 700)  # a refund always applies
    assert await backend.add("spend", -5000) == (True, 0)  # never below zero
    assert await backend.add("spend", 5) == (True, 5)  # no limit: always applies


async def test_concurrent_additions_never_pass_the_limit(backend: Backend) -> None:
    results = await asyncio.gather(*(backend.add("c", 3, limit=100) for _ in range(50)))
    assert sum(applied for applied, _ in results) == 33
    assert max(total for _, total in results) == 99


async def test_a_counter_expires_with_the_ttl_it_was_created_with(
    backend: Backend, clock: FakeClock
) -> None:
    await backend.add("month", 10, ttl=60.0)
    clock.advance(30.0)
    await backend.add("month", 10, ttl=60.0)  # does not extend the counter's life
    clock.advance(30.0)
    assert await backend.add("month", 1) == (True, 1)
