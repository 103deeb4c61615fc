"""Token bucket: capacity, refill, reservations within max_wait, windows and scopes."""

from __future__ import annotations

from nexus_connector_async import CircuitBreakerConfig, RateLimitConfig
from nexus_connector_async.backends._base import ADMITTED, RATE_LIMITED, Admission, Backend
from nexus_connector_async.testing import FakeClock

CB = CircuitBreakerConfig()


async def take(
    backend: Backend,
    limit: RateLimitConfig | None,
    service: str = "svc",
    tenant: str | None = None,
) -> Admission:
    return await backend.admit(service, tenant, CB, limit, probe_lease=5.0)


async def count_admitted(backend: Backend, limit: RateLimitConfig, n: int, **kw: str) -> int:
    return sum([(await take(backend, limit, **kw)).reason == ADMITTED for _ in range(n)])


async def test_a_full_bucket_admits_capacity_calls_then_refuses(backend: Backend) -> None:
    limit = RateLimitConfig.per_second(5)
    assert await count_admitted(backend, limit, 5) == 5
    refused = await take(backend, limit)
    assert refused.reason == RATE_LIMITED
    assert isinstance(refused.wait, float)
    assert refused.wait == 0.2


async def test_the_bucket_refills_at_its_rate(backend: Backend, clock: FakeClock) -> None:
    limit = RateLimitConfig.per_second(5)
    await count_admitted(backend, limit, 5)
    clock.advance(0.4)
    assert await count_admitted(backend, limit, 3) == 2


async def test_refill_never_exceeds_capacity(backend: Backend, clock: FakeClock) -> None:
    limit = RateLimitConfig.per_second(5)
    await count_admitted(backend, limit, 5)
    clock.advance(100.0)
    assert await count_admitted(backend, limit, 10) == 5


async def test_burst_sets_capacity_independently_of_rate(
    backend: Backend, clock: FakeClock
) -> None:
    limit = RateLimitConfig.per_second(2, burst=6)
    assert await count_admitted(backend, limit, 10) == 6
    clock.advance(1.0)
    assert await count_admitted(backend, limit, 10) == 2


async def test_exact_count_over_ten_seconds_of_steady_demand(
    backend: Backend, clock: FakeClock
) -> None:
    limit = RateLimitConfig.per_second(16, burst=5)
    admitted = await count_admitted(backend, limit, 50)
    for _ in range(80):  # binary-exact steps: 2 tokens per 1/8 s, demand 3
        clock.advance(0.125)
        admitted += await count_admitted(backend, limit, 3)
    assert admitted == 5 + 16 * 10


async def test_max_wait_reserves_future_tokens_and_returns_the_wait(backend: Backend) -> None:
    limit = RateLimitConfig.per_second(2, max_wait=1.0)
    waits = [await take(backend, limit) for _ in range(5)]
    assert [a.reason for a in waits] == [ADMITTED] * 4 + [RATE_LIMITED]
    assert [a.wait for a in waits] == [0.0, 0.0, 0.5, 1.0, 1.5]


async def test_fail_fast_takes_nothing_when_refusing(backend: Backend, clock: FakeClock) -> None:
    limit = RateLimitConfig.per_second(1)
    assert (await take(backend, limit)).reason == ADMITTED
    for _ in range(5):
        assert (await take(backend, limit)).reason == RATE_LIMITED
    clock.advance(1.0)
    assert (await take(backend, limit)).reason == ADMITTED


async def test_per_minute_and_per_hour_windows(backend: Backend, clock: FakeClock) -> None:
    minute = RateLimitConfig.per_minute(3)
    hour = RateLimitConfig.per_hour(2)
    assert await count_admitted(backend, minute, 5, service="m") == 3
    assert await count_admitted(backend, hour, 5, service="h") == 2
    assert (await take(backend, minute, service="m")).wait == 20.0
    assert (await take(backend, hour, service="h")).wait == 1800.0
    clock.advance(20.0)
    assert await count_admitted(backend, minute, 5, service="m") == 1
    assert await count_admitted(backend, hour, 5, service="h") == 0


async def test_tenant_scope_gives_each_tenant_its_own_bucket(backend: Backend) -> None:
    limit = RateLimitConfig.per_second(2, scope="tenant")
    assert await count_admitted(backend, limit, 5, tenant="a") == 2
    assert await count_admitted(backend, limit, 5, tenant="b") == 2


async def test_service_scope_shares_one_bucket_among_tenants(backend: Backend) -> None:
    limit = RateLimitConfig.per_second(3)
    assert await count_admitted(backend, limit, 2, tenant="a") == 2
    assert await count_admitted(backend, limit, 5, tenant="b") == 1


async def test_services_do_not_share_buckets(backend: Backend) -> None:
    limit = RateLimitConfig.per_second(2)
    assert await count_admitted(backend, limit, 5, service="a") == 2
    assert await count_admitted(backend, limit, 5, service="b") == 2


async def test_no_rate_limit_takes_no_token(backend: Backend) -> None:
    for _ in range(10):
        assert (await take(backend, None)).reason == ADMITTED
    assert await count_admitted(backend, RateLimitConfig.per_second(3), 5) == 3


async def test_shadow_mode_reports_a_rate_limit_and_takes_nothing(
    backend: Backend, clock: FakeClock
) -> None:
    limit = RateLimitConfig.per_second(1)
    await take(backend, limit)
    adm = await backend.admit("svc", None, CB, limit, probe_lease=5.0, shadow=True)
    assert adm.reason == ADMITTED
    assert adm.would_block == RATE_LIMITED
    clock.advance(1.0)
    assert await count_admitted(backend, limit, 3) == 1


# -- one bucket per limit (api.md rule 21) ----------------------------------------------------


async def test_distinct_limits_of_one_service_get_distinct_buckets(backend: Backend) -> None:
    slow, fast = RateLimitConfig.per_minute(2), RateLimitConfig.per_second(50)
    admitted = 0
    for _ in range(20):  # interleaved: the fast limit must not refill the slow one's bucket
        admitted += (await take(backend, slow)).reason == ADMITTED
        assert (await take(backend, fast)).reason == ADMITTED
    assert admitted == 2


async def test_rate_period_and_burst_each_make_a_limit_distinct(backend: Backend) -> None:
    limits = [
        RateLimitConfig.per_second(2),
        RateLimitConfig.per_minute(2),
        RateLimitConfig.per_second(2, burst=3),
        RateLimitConfig.per_second(3, burst=2),
    ]
    for limit in limits:
        assert await count_admitted(backend, limit, 5) == limit.capacity


async def test_equal_limits_share_one_bucket(backend: Backend) -> None:
    a = RateLimitConfig.per_minute(3)
    b = RateLimitConfig(3.0, 60.0, 3.0, max_wait=0.0)  # the same limit, spelled otherwise
    assert await count_admitted(backend, a, 2) == 2
    assert await count_admitted(backend, b, 5) == 1


async def test_a_named_limit_is_one_bucket_whatever_its_numbers(backend: Backend) -> None:
    search = RateLimitConfig.per_minute(2, name="search")
    other = RateLimitConfig.per_second(50, name="search")
    assert await count_admitted(backend, search, 1) == 1
    assert await count_admitted(backend, other, 5) == 1  # the named bucket held 2
    unnamed = RateLimitConfig.per_minute(2)  # same numbers as `search`, but not that bucket
    assert await count_admitted(backend, unnamed, 5) == 2


async def test_tenant_buckets_are_per_limit_too(backend: Backend) -> None:
    slow = RateLimitConfig.per_minute(1, scope="tenant")
    fast = RateLimitConfig.per_second(50, scope="tenant")
    assert await count_admitted(backend, slow, 3, tenant="t:1") == 1
    assert await count_admitted(backend, fast, 3, tenant="t:1") == 3
    assert await count_admitted(backend, slow, 3, tenant="t:2") == 1
