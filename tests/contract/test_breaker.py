"""Circuit breaker: open after N failures, half-open probes, close, re-open; all shared state."""

from __future__ import annotations

from nexus_connector_async import CircuitBreakerConfig, RateLimitConfig
from nexus_connector_async.backends._base import (
    ADMITTED,
    CIRCUIT_OPEN,
    RATE_LIMITED,
    Admission,
    Backend,
)
from nexus_connector_async.testing import FakeClock

CB = CircuitBreakerConfig(failure_threshold=3, recovery_timeout=10.0)
LEASE = 5.0


async def admit(
    backend: Backend, cfg: CircuitBreakerConfig = CB, service: str = "svc"
) -> Admission:
    return await backend.admit(service, None, cfg, None, probe_lease=LEASE)


async def fail(
    backend: Backend, n: int, cfg: CircuitBreakerConfig = CB, service: str = "svc"
) -> list[str | None]:
    return [await backend.record(service, cfg, success=False) for _ in range(n)]


async def open_then_recover(
    backend: Backend, clock: FakeClock, cfg: CircuitBreakerConfig = CB
) -> None:
    await fail(backend, cfg.failure_threshold, cfg)
    clock.advance(cfg.recovery_timeout)


async def test_a_fresh_service_is_admitted_clean(backend: Backend) -> None:
    adm = await admit(backend)
    assert adm.reason == ADMITTED
    assert adm.wait == 0.0
    assert adm.probe == ""
    assert adm.clean is True


async def test_opens_after_failure_threshold_consecutive_failures(backend: Backend) -> None:
    assert await fail(backend, 3) == [None, None, "open"]
    adm = await admit(backend)
    assert adm.reason == CIRCUIT_OPEN
    assert isinstance(adm.wait, float)
    assert adm.wait == 10.0


async def test_a_success_resets_the_consecutive_failure_count(backend: Backend) -> None:
    await fail(backend, 2)
    assert (await admit(backend)).clean is False
    assert await backend.record("svc", CB, success=True) is None
    assert (await admit(backend)).clean is True
    assert await fail(backend, 2) == [None, None]
    assert (await admit(backend)).reason == ADMITTED


async def test_open_circuit_reports_the_remaining_recovery_time(
    backend: Backend, clock: FakeClock
) -> None:
    await fail(backend, 3)
    clock.advance(2.5)
    adm = await admit(backend)
    assert adm.reason == CIRCUIT_OPEN
    assert adm.wait == 7.5


async def test_after_recovery_exactly_half_open_max_calls_probes_go(
    backend: Backend, clock: FakeClock
) -> None:
    cfg = CircuitBreakerConfig(failure_threshold=1, recovery_timeout=10.0, half_open_max_calls=3)
    await open_then_recover(backend, clock, cfg)
    admissions = [await admit(backend, cfg) for _ in range(5)]
    probes = [a.probe for a in admissions if a.reason == ADMITTED]
    assert len(probes) == 3
    assert len(set(probes)) == 3
    assert all(a.clean is False for a in admissions)
    refused = admissions[3:]
    assert [a.reason for a in refused] == [CIRCUIT_OPEN, CIRCUIT_OPEN]
    assert refused[0].wait == LEASE  # the earliest permit frees at its lease end


async def test_success_threshold_probe_successes_close_the_circuit(
    backend: Backend, clock: FakeClock
) -> None:
    cfg = CircuitBreakerConfig(
        failure_threshold=1, recovery_timeout=10.0, half_open_max_calls=2, success_threshold=2
    )
    await open_then_recover(backend, clock, cfg)
    first, second = await admit(backend, cfg), await admit(backend, cfg)
    assert await backend.record("svc", cfg, success=True, probe=first.probe) is None
    assert await backend.record("svc", cfg, success=True, probe=second.probe) == "closed"
    adm = await admit(backend, cfg)
    assert adm.reason == ADMITTED
    assert adm.probe == ""
    assert adm.clean is True


async def test_a_failed_probe_reopens_for_a_full_recovery_timeout_from_the_failure(
    backend: Backend, clock: FakeClock
) -> None:
    await open_then_recover(backend, clock)
    probe = await admit(backend)
    clock.advance(3.0)
    assert await backend.record("svc", CB, success=False, probe=probe.probe) == "open"
    adm = await admit(backend)
    assert adm.reason == CIRCUIT_OPEN
    assert adm.wait == 10.0
    clock.advance(9.999)
    assert (await admit(backend)).reason == CIRCUIT_OPEN
    clock.advance(0.001)
    assert (await admit(backend)).probe != ""


async def test_a_probe_that_never_reports_frees_its_permit_when_its_lease_ends(
    backend: Backend, clock: FakeClock
) -> None:
    await open_then_recover(backend, clock)
    assert (await admit(backend)).probe != ""
    clock.advance(LEASE - 0.5)
    blocked = await admit(backend)
    assert blocked.reason == CIRCUIT_OPEN
    assert blocked.wait == 0.5
    clock.advance(0.5)
    assert (await admit(backend)).probe != ""


async def test_a_released_probe_permit_can_be_taken_again(
    backend: Backend, clock: FakeClock
) -> None:
    await open_then_recover(backend, clock)
    probe = await admit(backend)
    assert (await admit(backend)).reason == CIRCUIT_OPEN
    await backend.release_probe("svc", probe.probe)
    assert (await admit(backend)).probe != ""


async def test_a_stale_probe_from_an_earlier_half_open_round_changes_nothing(
    backend: Backend, clock: FakeClock
) -> None:
    await open_then_recover(backend, clock)
    stale = await admit(backend)
    clock.advance(LEASE)  # its lease ends; a new probe goes and fails
    fresh = await admit(backend)
    assert await backend.record("svc", CB, success=False, probe=fresh.probe) == "open"
    assert await backend.record("svc", CB, success=True, probe=stale.probe) is None
    assert (await admit(backend)).reason == CIRCUIT_OPEN


async def test_services_do_not_share_breakers(backend: Backend) -> None:
    await fail(backend, 3, service="a")
    assert (await admit(backend, service="a")).reason == CIRCUIT_OPEN
    adm = await admit(backend, service="b")
    assert adm.reason == ADMITTED
    assert adm.clean is True


async def test_the_breaker_belongs_to_the_service_not_the_tenant(backend: Backend) -> None:
    await fail(backend, 3)
    adm = await backend.admit("svc", "tenant-1", CB, None, probe_lease=LEASE)
    assert adm.reason == CIRCUIT_OPEN


async def test_pause_holds_off_every_call_of_the_service(
    backend: Backend, clock: FakeClock
) -> None:
    await backend.pause("svc", 2.0)
    adm = await admit(backend)
    assert adm.reason == RATE_LIMITED
    assert adm.wait == 2.0
    assert (await admit(backend, service="other")).reason == ADMITTED
    clock.advance(1.5)
    assert (await admit(backend)).wait == 0.5
    clock.advance(0.5)
    assert (await admit(backend)).reason == ADMITTED


async def test_a_shorter_pause_does_not_cut_a_longer_one(backend: Backend) -> None:
    await backend.pause("svc", 5.0)
    await backend.pause("svc", 1.0)
    assert (await admit(backend)).wait == 5.0


async def test_pause_becomes_a_wait_when_max_wait_allows(backend: Backend) -> None:
    limit = RateLimitConfig.per_second(10, max_wait=3.0)
    await backend.pause("svc", 2.0)
    adm = await backend.admit("svc", None, CB, limit, probe_lease=LEASE)
    assert adm.reason == ADMITTED
    assert adm.wait == 2.0


async def test_shadow_mode_reports_an_open_circuit_but_blocks_nothing(backend: Backend) -> None:
    await fail(backend, 3)
    adm = await backend.admit("svc", None, CB, None, probe_lease=LEASE, shadow=True)
    assert adm.reason == ADMITTED
    assert adm.would_block == CIRCUIT_OPEN
    assert adm.probe == ""
    assert adm.clean is False


async def test_exactly_one_admission_reports_the_move_to_half_open(
    backend: Backend, clock: FakeClock
) -> None:
    cfg = CircuitBreakerConfig(failure_threshold=3, recovery_timeout=10.0, half_open_max_calls=2)
    await fail(backend, 3, cfg)
    assert (await admit(backend, cfg)).half_opened is False  # still open
    clock.advance(10.0)
    first, second, third = [await admit(backend, cfg) for _ in range(3)]
    assert (first.half_opened, second.half_opened, third.half_opened) == (True, False, False)
    assert (first.reason, second.reason, third.reason) == (ADMITTED, ADMITTED, CIRCUIT_OPEN)
    assert await backend.record("svc", cfg, success=True, probe=first.probe) == "closed"
    assert (await admit(backend, cfg)).half_opened is False  # closed again: nothing to report


async def test_shadow_mode_still_reports_the_move_to_half_open(
    backend: Backend, clock: FakeClock
) -> None:
    await fail(backend, 3)
    clock.advance(10.0)
    adm = await backend.admit("svc", None, CB, None, probe_lease=LEASE, shadow=True)
    assert (adm.reason, adm.half_opened) == (ADMITTED, True)


# -- probe permits renewed before sending (api.md rule 25) ------------------------------------


async def test_a_renewed_probe_permit_keeps_its_slot_past_the_first_lease(
    backend: Backend, clock: FakeClock
) -> None:
    await open_then_recover(backend, clock)
    probe = (await admit(backend)).probe
    assert probe
    clock.advance(LEASE - 1.0)
    assert await backend.renew_probe("svc", probe, LEASE) is True
    clock.advance(3.0)  # past the admission's lease, within the renewed one
    assert (await admit(backend)).reason == CIRCUIT_OPEN
    clock.advance(LEASE)  # the renewed lease ends too: the slot is free again
    assert (await admit(backend)).probe


async def test_a_lapsed_probe_permit_cannot_be_renewed_once_its_slot_was_given_away(
    backend: Backend, clock: FakeClock
) -> None:
    await open_then_recover(backend, clock)
    first = (await admit(backend)).probe
    clock.advance(LEASE + 1.0)
    second = (await admit(backend)).probe  # prunes the lapsed permit, takes its slot
    assert second
    assert second != first
    assert await backend.renew_probe("svc", first, LEASE) is False
    assert await backend.renew_probe("svc", second, LEASE) is True


async def test_renewing_after_the_breaker_moved_on(backend: Backend, clock: FakeClock) -> None:
    await open_then_recover(backend, clock)
    closing = (await admit(backend)).probe
    assert await backend.record("svc", CB, success=True, probe=closing) == "closed"
    assert await backend.renew_probe("svc", closing, LEASE) is True  # closed: nothing to guard
    await open_then_recover(backend, clock)
    a = (await admit(backend)).probe
    assert await backend.record("svc", CB, success=False, probe=a) == "open"
    assert await backend.renew_probe("svc", a, LEASE) is False  # re-opened: do not send
