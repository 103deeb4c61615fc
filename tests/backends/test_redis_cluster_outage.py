"""A Redis Cluster master killed (SIGKILL) and restarted mid-run: each mode does what it documents.

The tests share a private 3-master cluster (`private_cluster`, restored whole after each test;
the session cluster is never killed), with a 1 s node timeout so the survivors notice the death
quickly. What happens:

- The service whose `{service}` slot lives on the dead master: its admissions follow
  `on_unavailable` at once (fail_closed raises `BackendUnavailable`, fail_open admits, local
  applies the in-process limiter); its idempotency claims raise `BackendUnavailable` in every
  mode; no call waits more than about a second, and no raw redis-py error escapes.
- Services on the surviving masters: the backend keeps one health state for the whole cluster,
  so after the first failure they fall back too, except for the one trial per backoff window,
  which may reach a live master and succeed. Once the survivors mark the dead master as failed
  (`cluster_state:fail`: `cluster-require-full-coverage` is on by default) they answer
  CLUSTERDOWN, and from then on every service follows `on_unavailable`, deterministically.
- After a restart on the same port (the node keeps its nodes.conf, so its slots, but has no
  scripts), once every node reports `cluster_state:ok` the backend reconnects within a backoff
  window (at most 2 s), reloads its scripts on that node and admits and claims again by itself.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Any, TypeVar

import pytest
from redis.crc import key_slot

from nexus_connector_async import (
    BackendUnavailable,
    CircuitBreakerConfig,
    RateLimitConfig,
    RedisBackend,
)
from nexus_connector_async.backends._base import ADMITTED, RATE_LIMITED
from nexus_connector_async.backends.redis._backend import OnUnavailable
from nexus_connector_async.backends.redis._keys import key
from tests._redis_servers import CLUSTER_SLOTS, RedisCluster3, RedisProcess

pytestmark = [pytest.mark.redis, pytest.mark.cluster]

T = TypeVar("T")
CB = CircuitBreakerConfig()
LIMIT = RateLimitConfig.per_second(2)
MAX_CALL = 1.5  # "about a second"
NODE_TIMEOUT_MS = 1000
DEADLINE = 10.0  # for every poll below; each poll step is itself bounded


@pytest.fixture(scope="module")
def _module_cluster() -> Iterator[RedisCluster3]:
    """A 3-master cluster for this module alone (never the session's), stopped at teardown."""
    if os.environ.get("REDIS_URL"):
        pytest.skip("REDIS_URL is set: the suite does not start its own servers to kill")
    with RedisCluster3(node_timeout_ms=NODE_TIMEOUT_MS) as cluster:
        yield cluster


@pytest.fixture
async def private_cluster(_module_cluster: RedisCluster3) -> AsyncIterator[RedisCluster3]:
    """The module's cluster, whole and empty; whatever a test killed is restarted after it."""
    yield _module_cluster
    for node in _module_cluster.nodes:
        node.start()  # no-op when running
    await until(
        "cluster_state:ok on every node", lambda: cluster_states(_module_cluster.nodes) == {"ok"}
    )
    _module_cluster.flushall()


def owner(cluster: RedisCluster3, service: str) -> int:
    """Index of the master whose slot range holds the `{service}` hash tag."""
    slot = key_slot(f"{{{service}}}".encode())
    n = len(cluster.nodes)
    return next(
        i for i in range(n) if CLUSTER_SLOTS * i // n <= slot < CLUSTER_SLOTS * (i + 1) // n
    )


def services(cluster: RedisCluster3, victim: int) -> tuple[str, str]:
    """A service on the master we kill, and one on a master that survives."""
    names = [f"svc{i}" for i in range(100)]
    dead = next(s for s in names if owner(cluster, s) == victim)
    alive = next(s for s in names if owner(cluster, s) != victim)
    return dead, alive


def cluster_states(nodes: list[RedisProcess]) -> set[str]:
    states = set()
    for node in nodes:
        with node.client(decode_responses=True, socket_timeout=1) as client:
            states.add(client.execute_command("CLUSTER INFO")["cluster_state"])
    return states


async def until(what: str, check: Any) -> None:
    """Poll `check()` (sync or async) until it is true, failing after `DEADLINE`."""
    deadline = time.monotonic() + DEADLINE
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)  # poll interval, bounded by the deadline above


async def timed(aw: Awaitable[T]) -> T:
    """Await `aw`, failing if it took longer than a dead master may cost a call."""
    start = time.monotonic()
    try:
        return await aw
    finally:
        assert time.monotonic() - start < MAX_CALL


async def admit(b: RedisBackend, service: str) -> int:
    return (await timed(b.admit(service, None, CB, LIMIT, probe_lease=5.0))).reason


async def fallback_admit(b: RedisBackend, service: str) -> int | None:
    """An admission during the outage: None if it raised `BackendUnavailable`."""
    try:
        return await admit(b, service)
    except BackendUnavailable:
        return None


def expected_fallback(mode: OnUnavailable) -> int | None:
    """What a fresh service's first admission gets while Redis cannot answer for it."""
    return None if mode == "fail_closed" else ADMITTED


async def raises_unavailable(aw: Awaitable[Any]) -> None:
    with pytest.raises(BackendUnavailable):
        await timed(aw)


@pytest.mark.parametrize("mode", ["fail_closed", "fail_open", "local"])
async def test_a_dead_master_then_its_restart(
    private_cluster: RedisCluster3, mode: OnUnavailable
) -> None:
    victim = 1  # not the URL the client was built from: it must find the others by itself
    dead, alive = services(private_cluster, victim)
    node = private_cluster.nodes[victim]
    survivors = [n for i, n in enumerate(private_cluster.nodes) if i != victim]
    b = RedisBackend.from_url(private_cluster.url, cluster=True, on_unavailable=mode)
    try:
        assert await admit(b, dead) == ADMITTED
        assert await admit(b, alive) == ADMITTED

        node.kill()

        # The dead master's service follows the mode at once, whatever the survivors think yet.
        if mode == "fail_closed":
            for _ in range(5):
                await raises_unavailable(b.admit(dead, None, CB, LIMIT, probe_lease=5.0))
        elif mode == "fail_open":
            assert [await admit(b, dead) for _ in range(5)] == [ADMITTED] * 5
        else:  # the in-process limiter (2 a second, a fresh bucket) takes over
            assert [await admit(b, dead) for _ in range(4)] == [
                ADMITTED,
                ADMITTED,
                RATE_LIMITED,
                RATE_LIMITED,
            ]
        await raises_unavailable(b.claim(dead, None, "d1", "fp", 30.0))
        assert not b.available
        # Health follows the slot's node: a service on a live master keeps working.
        assert await admit(b, alive) in (ADMITTED, RATE_LIMITED)

        # Once the survivors declare the cluster down, every service follows the mode.
        await until(
            "cluster_state:fail on the survivors", lambda: cluster_states(survivors) == {"fail"}
        )
        # Fresh services (a fresh local bucket each) on the surviving masters.
        others = [f"other{i}" for i in range(100)]
        others = [s for s in others if owner(private_cluster, s) != victim][:3]
        for other in others:
            assert await fallback_admit(b, other) == expected_fallback(mode)
            await raises_unavailable(b.claim(alive, None, "d2", "fp", 30.0))
            await raises_unavailable(b.claim(dead, None, "d2", "fp", 30.0))
        assert not b.available

        # Back on the same port, with its slots (nodes.conf) but no scripts.
        node.start()
        with node.client() as direct:
            assert direct.script_exists(b._scripts.admit.sha) == [False]
        await until(
            "cluster_state:ok on every node",
            lambda: cluster_states(private_cluster.nodes) == {"ok"},
        )

        async def recovered() -> bool:
            try:  # every master answers again (health is learnt per node, by talking to it)
                for service in (dead, alive, *others):
                    await admit(b, service)
            except BackendUnavailable:
                return False
            return b.available

        await until("the backend to recover by itself", recovered)
        assert await admit(b, alive) in (ADMITTED, RATE_LIMITED)
        claim = await timed(b.claim(dead, None, "d3", "fp", 30.0))
        assert claim.state == "acquired"
        with node.client() as direct:
            shas = (b._scripts.admit.sha, b._scripts.idem_claim.sha)
            assert direct.script_exists(*shas) == [True, True]
            assert direct.exists(key("nexus", "bucket", dead, LIMIT.bucket_id)) == 1
    finally:
        await b.aclose()
