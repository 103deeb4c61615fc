"""Idempotency store: claim, complete, replay, conflict, release, extend, leases and waiting."""

from __future__ import annotations

import asyncio

from nexus_connector_async.testing import FakeClock
from nexus_connector_async.typing import Backend, Claim
from tests.contract.conftest import until

LEASE = 30.0
KEY = "0123456789abcdef01234567"  # the connector passes a digest, never the caller's key


async def claim(
    backend: Backend, fp: str = "fp-1", tenant: str | None = None, key: str = KEY
) -> Claim:
    return await backend.claim("svc", tenant, key, fp, LEASE)


async def test_the_first_claim_acquires_the_key_with_a_token(backend: Backend) -> None:
    c = await claim(backend)
    assert c.state == "acquired"
    assert c.token != ""


async def test_a_second_claim_sees_the_key_in_progress(backend: Backend) -> None:
    await claim(backend)
    assert (await claim(backend)).state == "in_progress"


async def test_a_different_fingerprint_is_a_conflict(backend: Backend) -> None:
    await claim(backend)
    assert (await claim(backend, fp="fp-2")).state == "conflict"


async def test_a_completed_key_replays_the_stored_bytes(backend: Backend) -> None:
    c = await claim(backend)
    assert await backend.complete("svc", None, KEY, c.token, b"\x00stored\xff", 60.0) is True
    for _ in range(2):
        replay = await claim(backend)
        assert replay.state == "completed"
        assert replay.stored == b"\x00stored\xff"
    assert (await claim(backend, fp="fp-2")).state == "conflict"


async def test_only_the_owner_may_complete(backend: Backend) -> None:
    c = await claim(backend)
    assert await backend.complete("svc", None, KEY, "not-the-token", b"x", 60.0) is False
    assert await backend.complete("svc", None, KEY, c.token, b"ok", 60.0) is True
    assert await backend.complete("svc", None, KEY, c.token, b"again", 60.0) is False
    assert (await claim(backend)).stored == b"ok"


async def test_the_stored_result_expires_after_its_ttl(backend: Backend, clock: FakeClock) -> None:
    c = await claim(backend)
    await backend.complete("svc", None, KEY, c.token, b"ok", 60.0)
    clock.advance(59.0)
    assert (await claim(backend)).state == "completed"
    clock.advance(1.0)
    assert (await claim(backend)).state == "acquired"


async def test_release_frees_the_key_for_a_new_owner(backend: Backend) -> None:
    first = await claim(backend)
    await backend.release("svc", None, KEY, first.token)
    second = await claim(backend)
    assert second.state == "acquired"
    assert second.token != first.token


async def test_release_by_someone_else_changes_nothing(backend: Backend) -> None:
    c = await claim(backend)
    await backend.release("svc", None, KEY, "not-the-token")
    assert (await claim(backend)).state == "in_progress"
    await backend.complete("svc", None, KEY, c.token, b"ok", 60.0)
    await backend.release("svc", None, KEY, c.token)  # too late: completed results stay
    assert (await claim(backend)).state == "completed"


async def test_a_crashed_owners_lease_expires(backend: Backend, clock: FakeClock) -> None:
    await claim(backend)
    clock.advance(LEASE - 0.001)
    assert (await claim(backend)).state == "in_progress"
    clock.advance(0.001)
    assert (await claim(backend)).state == "acquired"


async def test_fencing_a_stale_owner_cannot_complete_or_release(
    backend: Backend, clock: FakeClock
) -> None:
    stale = await claim(backend)
    clock.advance(LEASE)
    fresh = await claim(backend)
    assert fresh.state == "acquired"
    assert await backend.complete("svc", None, KEY, stale.token, b"stale", 60.0) is False
    await backend.release("svc", None, KEY, stale.token)
    assert (await claim(backend)).state == "in_progress"
    assert await backend.complete("svc", None, KEY, fresh.token, b"fresh", 60.0) is True
    assert (await claim(backend)).stored == b"fresh"


async def test_extend_pushes_the_lease_end(backend: Backend, clock: FakeClock) -> None:
    c = await claim(backend)
    clock.advance(20.0)
    assert await backend.extend("svc", None, KEY, c.token, LEASE) is True
    clock.advance(20.0)
    assert (await claim(backend)).state == "in_progress"
    clock.advance(10.0)
    assert (await claim(backend)).state == "acquired"


async def test_extend_fails_for_a_lost_lease_or_a_completed_key(
    backend: Backend, clock: FakeClock
) -> None:
    c = await claim(backend)
    assert await backend.extend("svc", None, KEY, "not-the-token", LEASE) is False
    clock.advance(LEASE)
    assert await backend.extend("svc", None, KEY, c.token, LEASE) is False
    fresh = await claim(backend)
    await backend.complete("svc", None, KEY, fresh.token, b"ok", 60.0)
    assert await backend.extend("svc", None, KEY, fresh.token, LEASE) is False


async def test_keys_are_scoped_by_tenant_and_service(backend: Backend) -> None:
    assert (await claim(backend, tenant="a")).state == "acquired"
    assert (await claim(backend, tenant="b")).state == "acquired"
    assert (await claim(backend)).state == "acquired"
    assert (await backend.claim("other", None, KEY, "fp-1", LEASE)).state == "acquired"


async def _waiter(backend: Backend, timeout: float = 10.0) -> asyncio.Task[Claim]:
    return asyncio.ensure_future(backend.wait("svc", None, KEY, "fp-1", LEASE, timeout))


async def test_wait_wakes_when_the_owner_completes(backend: Backend) -> None:
    c = await claim(backend)
    waiters = [await _waiter(backend) for _ in range(3)]
    await asyncio.sleep(0.01)  # give them time to block: the wake-up must not depend on it
    assert not any(w.done() for w in waiters)
    await backend.complete("svc", None, KEY, c.token, b"done", 60.0)
    async with asyncio.timeout(2.0):  # no fake time passes: woken, not polling on the clock
        results = await asyncio.gather(*waiters)
    assert [(r.state, r.stored) for r in results] == [("completed", b"done")] * 3


async def test_wait_wakes_on_release_and_claims_the_key(backend: Backend) -> None:
    c = await claim(backend)
    waiter = await _waiter(backend)
    await asyncio.sleep(0.01)
    await backend.release("svc", None, KEY, c.token)
    async with asyncio.timeout(2.0):
        result = await waiter
    assert result.state == "acquired"
    assert (await claim(backend)).state == "in_progress"


async def test_wait_claims_the_key_when_the_owners_lease_ends(
    backend: Backend, clock: FakeClock
) -> None:
    await claim(backend)
    waiter = await _waiter(backend, timeout=60.0)
    await until(lambda: clock.pending_sleepers > 0 or waiter.done())
    clock.advance(LEASE)
    async with asyncio.timeout(2.0):
        assert (await waiter).state == "acquired"


async def test_wait_gives_up_in_progress_after_its_timeout(
    backend: Backend, clock: FakeClock
) -> None:
    await claim(backend)
    waiter = await _waiter(backend, timeout=5.0)
    await until(lambda: clock.pending_sleepers > 0 or waiter.done())
    clock.advance(5.0)
    async with asyncio.timeout(2.0):
        assert (await waiter).state == "in_progress"


async def test_wait_returns_at_once_for_completed_and_conflicting_keys(backend: Backend) -> None:
    c = await claim(backend)
    await backend.complete("svc", None, KEY, c.token, b"ok", 60.0)
    assert (await backend.wait("svc", None, KEY, "fp-1", LEASE, 5.0)).stored == b"ok"
    assert (await backend.wait("svc", None, KEY, "fp-2", LEASE, 5.0)).state == "conflict"


# -- at most once (api.md rule 19): unknown outcomes, a dead owner, forget -------------------------

TTL = 600.0


async def armed(backend: Backend) -> Claim:
    """A claim for a call the vendor cannot deduplicate: its outcome can become unknown."""
    return await backend.claim("svc", None, KEY, "fp-1", LEASE, unknown_ttl=TTL)


async def test_mark_unknown_keeps_the_key_unknown_for_its_ttl(
    backend: Backend, clock: FakeClock
) -> None:
    c = await claim(backend)
    assert await backend.mark_unknown("svc", None, KEY, c.token, TTL) is True
    clock.advance(LEASE * 2)  # far past the lease: the key is not freed by time alone
    assert (await claim(backend)).state == "unknown"
    assert (await claim(backend, fp="fp-2")).state == "conflict"
    assert await backend.extend("svc", None, KEY, c.token, LEASE) is False
    clock.advance(TTL - LEASE * 2)
    assert (await claim(backend)).state == "acquired"


async def test_only_the_owner_of_a_live_key_may_mark_it_unknown(
    backend: Backend, clock: FakeClock
) -> None:
    c = await claim(backend)
    assert await backend.mark_unknown("svc", None, KEY, "not-the-token", TTL) is False
    assert await backend.complete("svc", None, KEY, c.token, b"ok", 60.0) is True
    assert await backend.mark_unknown("svc", None, KEY, c.token, TTL) is False
    assert (await claim(backend)).stored == b"ok"


async def test_a_dead_owners_at_most_once_claim_turns_unknown_not_free(
    backend: Backend, clock: FakeClock
) -> None:
    await armed(backend)
    clock.advance(LEASE - 0.001)
    assert (await armed(backend)).state == "in_progress"
    clock.advance(0.001)
    assert (await armed(backend)).state == "unknown"
    assert (await claim(backend)).state == "unknown"
    clock.advance(TTL - 0.001)
    assert (await armed(backend)).state == "unknown"
    clock.advance(0.001)
    assert (await armed(backend)).state == "acquired"


async def test_an_extended_at_most_once_claim_turns_unknown_after_its_last_lease(
    backend: Backend, clock: FakeClock
) -> None:
    c = await armed(backend)
    clock.advance(20.0)
    assert await backend.extend("svc", None, KEY, c.token, LEASE) is True
    clock.advance(LEASE - 0.5)
    assert (await claim(backend)).state == "in_progress"
    clock.advance(0.5)
    assert (await claim(backend)).state == "unknown"


async def test_a_late_owner_may_still_store_or_release_what_it_learned(
    backend: Backend, clock: FakeClock
) -> None:
    c = await armed(backend)
    clock.advance(LEASE)
    assert (await claim(backend)).state == "unknown"
    assert await backend.complete("svc", None, KEY, c.token, b"late answer", 60.0) is True
    assert (await claim(backend)).stored == b"late answer"
    other = await backend.claim("svc", None, "k2", "fp-1", LEASE, unknown_ttl=TTL)
    clock.advance(LEASE)
    await backend.release("svc", None, "k2", other.token)  # it learned nothing was processed
    assert (await backend.claim("svc", None, "k2", "fp-1", LEASE)).state == "acquired"


async def test_an_armed_claim_that_completes_or_releases_behaves_as_before(
    backend: Backend, clock: FakeClock
) -> None:
    c = await armed(backend)
    await backend.complete("svc", None, KEY, c.token, b"ok", 60.0)
    clock.advance(60.0)
    assert (await claim(backend)).state == "acquired"  # the result's ttl, not the unknown one
    d = await backend.claim("svc", None, "k2", "fp-1", LEASE, unknown_ttl=TTL)
    await backend.release("svc", None, "k2", d.token)
    assert (await backend.claim("svc", None, "k2", "fp-1", LEASE)).state == "acquired"


async def test_forget_frees_only_an_unknown_key(backend: Backend, clock: FakeClock) -> None:
    assert await backend.forget("svc", None, KEY) is False  # free: nothing to forget
    c = await claim(backend)
    assert await backend.forget("svc", None, KEY) is False  # in progress: untouched
    assert (await claim(backend)).state == "in_progress"
    await backend.mark_unknown("svc", None, KEY, c.token, TTL)
    assert await backend.forget("svc", None, KEY) is True
    fresh = await claim(backend)
    assert fresh.state == "acquired"
    await backend.complete("svc", None, KEY, fresh.token, b"ok", 60.0)
    assert await backend.forget("svc", None, KEY) is False  # completed: untouched
    assert (await claim(backend)).stored == b"ok"
    # A dead owner's unknown key is forgotten the same way.
    await backend.claim("svc", None, "k2", "fp-1", LEASE, unknown_ttl=TTL)
    clock.advance(LEASE)
    assert await backend.forget("svc", None, "k2") is True
    assert (await backend.claim("svc", None, "k2", "fp-1", LEASE)).state == "acquired"


async def test_wait_returns_at_once_for_an_unknown_key_and_wakes_on_mark_unknown(
    backend: Backend,
) -> None:
    c = await claim(backend)
    waiter = await _waiter(backend)
    await asyncio.sleep(0.01)
    assert not waiter.done()
    await backend.mark_unknown("svc", None, KEY, c.token, TTL)
    async with asyncio.timeout(2.0):
        assert (await waiter).state == "unknown"
    assert (await backend.wait("svc", None, KEY, "fp-1", LEASE, 5.0)).state == "unknown"


async def test_wait_sees_a_dead_owners_at_most_once_key_turn_unknown(
    backend: Backend, clock: FakeClock
) -> None:
    await armed(backend)
    waiter = asyncio.ensure_future(
        backend.wait("svc", None, KEY, "fp-1", LEASE, 60.0, unknown_ttl=TTL)
    )
    await until(lambda: clock.pending_sleepers > 0 or waiter.done())
    clock.advance(LEASE)
    async with asyncio.timeout(2.0):
        assert (await waiter).state == "unknown"
