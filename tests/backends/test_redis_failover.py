"""A Redis Cluster master killed under load: the replica takes over, the library follows.

Three masters with one replica each (`cluster-node-timeout` 1 s). Four worker processes pay
shared idempotency keys against a vendor without idempotency of its own while the master that
owns the service's slot is SIGKILLed; its replica is promoted, the old master comes back as a
replica. Asynchronous replication can lose a claim or stored result written just before the
failover; to make that window real rather than lucky, the replica is frozen (SIGSTOP) and its
link cut (CLIENT KILL TYPE replica) for a moment before the kill, so it misses the master's last
writes. Without durability the vendor then
sees keys twice. With ``durability="replica"`` every claim and stored result waits for a
replica's WAIT acknowledgement (a frozen replica means the claim fails, nothing is sent), and no
key reaches the vendor twice.
The counts of each run are printed (`-s`) and reported in docs/backends.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import web
from redis.asyncio import RedisCluster

from tests._multiproc import run_in_processes
from tests._redis_servers import RedisCluster3, RedisProcess
from tests.backends import _failover_workers

pytestmark = [pytest.mark.cluster, pytest.mark.multiprocess, pytest.mark.slow]

WORKERS = 4
SECONDS = 14.0
DEADLINE = 20.0


@pytest.fixture(scope="module")
def replicated_cluster() -> Iterator[RedisCluster3]:
    """3 masters + 3 replicas, private to this module (its nodes get killed)."""
    if os.environ.get("REDIS_URL"):
        pytest.skip("REDIS_URL is set: the suite does not start its own servers to kill")
    with RedisCluster3(replicas=1, node_timeout_ms=1000) as cluster:
        yield cluster


class PerKeyVendor:
    """Counts POSTs per order: a vendor without idempotency makes one charge per POST."""

    def __init__(self) -> None:
        self.posts: Counter[str] = Counter()
        self.url = ""

    async def pay(self, request: web.Request) -> web.Response:
        order = json.loads(await request.read())["order"]
        self.posts[order] += 1
        return web.json_response({"id": f"ch_{order}_{self.posts[order]}"})


@pytest.fixture
async def vendor() -> AsyncIterator[PerKeyVendor]:
    stub = PerKeyVendor()
    app = web.Application()
    app.router.add_post("/pay", stub.pay)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    stub.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    yield stub
    await runner.cleanup()


async def until(what: str, check: object, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = check() if callable(check) else check
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)  # poll interval, bounded by the deadline above


async def owner_of_service(cluster: RedisCluster3) -> RedisProcess:
    async with RedisCluster.from_url(cluster.url) as client:
        node = client.get_node_from_key(b"nexus:{vendor}:x")
    everyone = [*cluster.nodes, *cluster.replicas]
    return next(n for n in everyone if n.port == node.port)


def replica_of(cluster: RedisCluster3, master: RedisProcess) -> RedisProcess:
    with master.client(decode_responses=True) as client:
        port = int(client.info("replication")["slave0"]["port"])
    return next(n for n in [*cluster.nodes, *cluster.replicas] if n.port == port)


def role(node: RedisProcess) -> str | None:
    try:
        with node.client(decode_responses=True, socket_timeout=1) as client:
            return str(client.info("replication")["role"])
    except Exception:
        return None


@pytest.mark.parametrize("durability", ["primary", "replica"])
async def test_a_master_killed_under_load_fails_over_and_the_library_follows(
    replicated_cluster: RedisCluster3, vendor: PerKeyVendor, durability: str
) -> None:
    cluster = replicated_cluster
    cluster.flushall()
    victim = await owner_of_service(cluster)
    work = asyncio.ensure_future(
        asyncio.to_thread(
            run_in_processes,
            _failover_workers.pay_shared_keys,
            WORKERS,
            cluster.url,
            vendor.url,
            durability,
            SECONDS,
            timeout=60,
        )
    )
    await until("the workers are paying", lambda: sum(vendor.posts.values()) >= 50, 60.0)
    replica = replica_of(cluster, victim)
    assert replica.pid is not None
    os.kill(replica.pid, signal.SIGSTOP)  # it stops taking the master's writes
    try:
        with victim.client() as client:  # and what the master writes now never reaches it
            client.execute_command("CLIENT KILL TYPE replica")
        before = sum(vendor.posts.values())
        with contextlib.suppress(AssertionError):  # durable writes stall: nothing is sent
            await until(
                "writes the replica misses", lambda: sum(vendor.posts.values()) > before + 20, 1.0
            )
        victim.kill()
    finally:
        os.kill(replica.pid, signal.SIGCONT)
    survivors = [n for n in [*cluster.nodes, *cluster.replicas] if n is not victim]
    await until("a replica promoted", lambda: sum(role(n) == "master" for n in survivors) == 3)
    victim.start()  # comes back as a replica of its old replica
    await until("the old master rejoined as a replica", lambda: role(victim) == "slave")
    outcomes = [o.unwrap() for o in await work]
    totals: Counter[str] = Counter()
    for o in outcomes:
        totals.update(o)
    duplicates = sum(1 for n in vendor.posts.values() if n > 1)
    print(
        f"\nfailover durability={durability}: calls={sum(totals.values())} "
        f"outcomes={dict(totals)} keys_at_vendor={len(vendor.posts)} duplicates={duplicates}"
    )
    # The library followed the new topology by itself: calls succeed after the failover.
    assert totals["sent"] > 0
    assert totals["replayed"] > 0
    if durability == "replica":
        assert duplicates == 0, {k: n for k, n in vendor.posts.items() if n > 1}
    # The cluster is whole again for the next run: every replica follows its master.
    await until("cluster whole", lambda: all(role(n) in ("master", "slave") for n in survivors))
