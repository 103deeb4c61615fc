"""Redis killed, hung and restarted mid-run: each `on_unavailable` mode does what it documents.

A private server per test (`restartable_redis`). No call may wait on a dead Redis for more than
about a second, and after a restart (the new server knows no scripts) the backend reconnects and
reloads its scripts by itself.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import pytest

from nexus_connector_async import (
    BackendUnavailable,
    BackendUnavailableEvent,
    CircuitBreakerConfig,
    Connector,
    Endpoint,
    Event,
    RateLimitConfig,
    RedisBackend,
    Response,
)
from nexus_connector_async.backends._base import ADMITTED, RATE_LIMITED
from nexus_connector_async.backends.redis._backend import OnUnavailable
from nexus_connector_async.backends.redis._keys import key
from nexus_connector_async.testing import MockTransport, RecordedRequest
from tests._redis_servers import RedisProcess

pytestmark = pytest.mark.redis

T = TypeVar("T")
CB = CircuitBreakerConfig()
LIMIT = RateLimitConfig.per_second(2)
MAX_CALL = 1.3  # "about a second"


@pytest.fixture
async def make(restartable_redis: RedisProcess) -> AsyncIterator[Any]:
    backends: list[RedisBackend] = []

    def factory(mode: OnUnavailable) -> RedisBackend:
        b = RedisBackend.from_url(restartable_redis.url, on_unavailable=mode)
        backends.append(b)
        return b

    yield factory
    for b in backends:
        await b.aclose()


async def timed(aw: Awaitable[T]) -> T:
    """Await `aw`, failing if it took longer than a dead Redis may cost a call."""
    start = time.monotonic()
    try:
        return await aw
    finally:
        assert time.monotonic() - start < MAX_CALL


async def raises_unavailable(aw: Awaitable[Any]) -> None:
    with pytest.raises(BackendUnavailable):
        await timed(aw)


async def admit(b: RedisBackend, limit: RateLimitConfig | None = LIMIT) -> int:
    return (await timed(b.admit("svc", None, CB, limit, probe_lease=5.0))).reason


async def until_back(b: RedisBackend) -> None:
    """Poll (with a deadline) until the backend talks to Redis again; each try is bounded."""
    deadline = time.monotonic() + 10.0
    while True:
        try:
            await timed(b.set("probe", b"1"))
            if b.available and await timed(b.get("probe")) == b"1":
                return
        except BackendUnavailable:
            pass
        assert time.monotonic() < deadline, "backend did not reconnect"
        await asyncio.sleep(0.02)


async def test_fail_closed_raises_backend_unavailable_for_every_call(
    make: Any, restartable_redis: RedisProcess
) -> None:
    b = make("fail_closed")
    assert await admit(b) == ADMITTED
    restartable_redis.kill()
    await raises_unavailable(b.admit("svc", None, CB, LIMIT, probe_lease=5.0))
    # In backoff now: later calls fail at once, without touching a socket.
    start = time.monotonic()
    for _ in range(20):
        await raises_unavailable(b.admit("svc", None, CB, None, probe_lease=5.0))
        await raises_unavailable(b.record("svc", CB, success=False))
        await raises_unavailable(b.get("k"))
        await raises_unavailable(b.claim("svc", None, "d", "fp", 30.0))
    assert time.monotonic() - start < 0.5
    assert not b.available


async def test_fail_open_admits_everything_but_never_idempotency(
    make: Any, restartable_redis: RedisProcess
) -> None:
    b = make("fail_open")
    await admit(b)
    await admit(b)
    assert await admit(b) == RATE_LIMITED
    restartable_redis.kill()
    assert [await admit(b) for _ in range(10)] == [ADMITTED] * 10
    assert await timed(b.record("svc", CB, success=False)) is None
    await raises_unavailable(b.claim("svc", None, "d", "fp", 30.0))
    await raises_unavailable(b.wait("svc", None, "d", "fp", 30.0, 5.0))
    assert await timed(b.acquire_lock("lock", "t", 5.0)) is True  # process-local meanwhile


async def test_local_mode_limits_and_breaks_in_process_meanwhile(
    make: Any, restartable_redis: RedisProcess
) -> None:
    b = make("local")
    await admit(b)
    restartable_redis.kill()
    assert [await admit(b) for _ in range(4)] == [ADMITTED, ADMITTED, RATE_LIMITED, RATE_LIMITED]
    cfg = CircuitBreakerConfig(failure_threshold=2)
    for _ in range(2):
        await timed(b.record("local-svc", cfg, success=False))
    adm = await timed(b.admit("local-svc", None, cfg, None, probe_lease=5.0))
    assert not adm.admitted
    await raises_unavailable(b.claim("svc", None, "d", "fp", 30.0))


@pytest.mark.parametrize("mode", ["fail_closed", "fail_open", "local"])
async def test_after_a_restart_it_reconnects_and_reloads_its_scripts(
    make: Any, restartable_redis: RedisProcess, mode: OnUnavailable
) -> None:
    b = make(mode)
    assert await admit(b) == ADMITTED
    restartable_redis.kill()
    for _ in range(3):
        try:
            await admit(b)
        except BackendUnavailable:
            assert mode == "fail_closed"
    restartable_redis.start()
    with restartable_redis.client() as direct:
        assert direct.script_exists(b._scripts.admit.sha) == [False]
    await until_back(b)
    assert await admit(b) == ADMITTED
    assert (await timed(b.claim("svc", None, "d", "fp", 30.0))).state == "acquired"
    with restartable_redis.client() as direct:
        assert direct.script_exists(b._scripts.admit.sha) == [True]
        assert direct.exists(key("nexus", "bucket", "svc", LIMIT.bucket_id)) == 1


async def test_a_hung_redis_costs_a_call_about_a_second_then_nothing(
    make: Any, restartable_redis: RedisProcess
) -> None:
    b = make("fail_closed")
    await admit(b)
    pid = restartable_redis.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        await raises_unavailable(b.admit("svc", None, CB, LIMIT, probe_lease=5.0))
        start = time.monotonic()
        await raises_unavailable(b.admit("svc", None, CB, LIMIT, probe_lease=5.0))
        assert time.monotonic() - start < 0.1
    finally:
        os.kill(pid, signal.SIGCONT)
    await until_back(b)
    assert await admit(b) in (ADMITTED, RATE_LIMITED)


async def test_the_connector_surfaces_backend_unavailable_not_a_redis_error(
    make: Any, restartable_redis: RedisProcess
) -> None:
    def ok(request: RecordedRequest) -> Response:
        return Response(200, {}, b"{}")

    endpoint = Endpoint.create("http://127.0.0.1:9/pay").with_rate_limit(LIMIT)
    closed = Connector(backend=make("fail_closed"), http=MockTransport(ok))
    opened = Connector(backend=make("fail_open"), http=MockTransport(ok))
    assert (await closed.execute("svc", endpoint, {})).status == 200
    restartable_redis.kill()
    await raises_unavailable(closed.execute("svc", endpoint, {}))
    for _ in range(5):
        assert (await timed(opened.execute("svc", endpoint, {}))).status == 200
    await raises_unavailable(opened.execute("svc", endpoint, {}, idempotency_key="order-1"))


async def test_an_outage_is_reported_to_the_connectors_event_hooks(
    make: Any, restartable_redis: RedisProcess
) -> None:
    def ok(request: RecordedRequest) -> Response:
        return Response(200, {}, b"{}")

    seen: list[Event] = []
    endpoint = Endpoint.create("http://127.0.0.1:9/pay").with_rate_limit(LIMIT)
    c = Connector(backend=make("local"), http=MockTransport(ok), events=[seen.append])
    assert (await c.execute("svc", endpoint, {})).status == 200
    restartable_redis.kill()
    assert (await timed(c.execute("svc", endpoint, {}))).status == 200  # local mode goes on
    outages = [e for e in seen if isinstance(e, BackendUnavailableEvent)]
    assert [(e.backend, e.mode) for e in outages] == [("redis", "local")]
