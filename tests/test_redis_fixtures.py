"""The Redis test infrastructure works: servers, cluster, crash/restart and multiprocess runs."""

from __future__ import annotations

import asyncio
import multiprocessing

import pytest
import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests._multiproc import run_in_processes
from tests._redis_servers import CLUSTER_SLOTS, RedisCluster3, RedisProcess


async def test_single_server_answers_ping(redis_url: str) -> None:
    async with aioredis.Redis.from_url(redis_url) as client:
        assert await client.ping() is True


async def test_redis_flush_gives_each_test_an_empty_server(
    redis_url: str, redis_flush: None
) -> None:
    async with aioredis.Redis.from_url(redis_url) as client:
        assert await client.dbsize() == 0
        await client.set("left-behind", 1)  # the next test that flushes must not see this


async def test_cluster_is_ok_with_three_masters_covering_every_slot(
    redis_cluster_url: str,
) -> None:
    async with aioredis.RedisCluster.from_url(redis_cluster_url) as client:
        info = await client.cluster_info()
        assert len(client.get_primaries()) == 3
        assert {node.host for node in client.get_nodes()} == {"127.0.0.1"}
    assert info["cluster_state"] == "ok"
    assert int(info["cluster_size"]) == 3
    assert int(info["cluster_slots_assigned"]) == CLUSTER_SLOTS
    assert int(info["cluster_slots_ok"]) == CLUSTER_SLOTS


def _one_key_per_node(client: aioredis.RedisCluster) -> dict[str, str]:
    """Map each master's name to a key whose hash tag lands on that master."""
    keys: dict[str, str] = {}
    for n in range(1000):
        key = f"{{tag{n}}}:value"
        node = client.get_node_from_key(key)
        assert node is not None
        keys.setdefault(node.name, key)
        if len(keys) == 3:
            return keys
    raise AssertionError("no hash tag found for some master")


async def test_cluster_client_sets_and_gets_keys_on_every_node(
    redis_cluster: RedisCluster3, redis_cluster_flush: None
) -> None:
    # `async with` initializes the client (discovers the slot map) before any command.
    async with aioredis.RedisCluster.from_url(redis_cluster.url) as client:
        keys = _one_key_per_node(client)
        for node_name, key in keys.items():
            await client.set(key, node_name)
        assert [await client.get(key) for key in keys.values()] == [name.encode() for name in keys]

    # Each key really lives on the master it was routed to.
    for node in redis_cluster.nodes:
        with node.client() as direct:
            assert direct.dbsize() == 1
            assert direct.get(keys[f"127.0.0.1:{node.port}"]) == f"127.0.0.1:{node.port}".encode()


_ADD_AND_READ = """
-- KEYS[1] counter, KEYS[2] copy of the counter (same hash tag); ARGV[1] increment.
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], value)
return value
"""


async def test_cluster_runs_a_registered_lua_script_even_after_script_flush(
    redis_cluster_url: str, redis_cluster_flush: None
) -> None:
    async with aioredis.RedisCluster.from_url(redis_cluster_url) as client:
        add_and_read = client.register_script(_ADD_AND_READ)
        keys = ["{svc}:counter", "{svc}:copy"]
        assert await add_and_read(keys=keys, args=[5]) == 5
        await client.script_flush()  # every master forgets it: EVALSHA gets NOSCRIPT
        assert await add_and_read(keys=keys, args=[2]) == 7
        assert await client.get("{svc}:copy") == b"7"


async def test_initialized_cluster_client_runs_a_burst_of_incrs_exactly_once(
    redis_cluster_url: str, redis_cluster_flush: None
) -> None:
    # redis-py 8.1: a burst on a client that has not initialized yet can reset connections
    # mid-command, and the retry then runs some INCRs twice (seen: 11 instead of 10), with
    # no error raised. `async with` (or `await client.initialize()`) first avoids that. The
    # pool must also hold the burst: past max_connections (100 per node by default) commands
    # fail at once with MaxConnectionsError instead of waiting.
    async with aioredis.RedisCluster.from_url(redis_cluster_url, max_connections=300) as client:
        results = await asyncio.gather(*(client.incr(f"{{k{n % 30}}}") for n in range(300)))
        finals = [await client.get(f"{{k{n}}}") for n in range(30)]
    assert sorted(results) == sorted(list(range(1, 11)) * 30)
    assert finals == [b"10"] * 30


async def test_client_reconnects_after_private_server_is_killed_and_restarted(
    restartable_redis: RedisProcess,
) -> None:
    port, first_pid = restartable_redis.port, restartable_redis.pid
    no_retry = AsyncRetry(NoBackoff(), retries=0)  # fail at once while the server is down
    async with aioredis.Redis.from_url(restartable_redis.url, retry=no_retry) as client:
        await client.set("lost-in-the-crash", 1)

        restartable_redis.kill()
        assert not restartable_redis.is_running
        with pytest.raises(redis.ConnectionError):
            await client.ping()

        restartable_redis.start()
        assert (restartable_redis.port, restartable_redis.is_running) == (port, True)
        assert restartable_redis.pid != first_pid
        assert await client.ping() is True  # same client object, new connection
        assert await client.exists("lost-in-the-crash") == 0  # nothing is persisted


def test_stopped_private_server_leaves_no_process(restartable_redis: RedisProcess) -> None:
    restartable_redis.stop()
    assert restartable_redis.pid is None
    assert not restartable_redis.is_running
    no_retry = Retry(NoBackoff(), retries=0)
    with pytest.raises(redis.ConnectionError), restartable_redis.client(retry=no_retry) as client:
        client.ping()


# Targets for run_in_processes live at module level so that spawned children can import them.
async def _incr_counter(index: int, url: str, times: int) -> list[int]:
    async with aioredis.Redis.from_url(url) as client:
        return [await client.incr("shared-counter") for _ in range(times)]


async def _fail_in_worker_two(index: int) -> int:
    if index == 2:
        raise ValueError("worker two fails")
    return index


async def _hang(index: int) -> None:
    await asyncio.Event().wait()


@pytest.mark.multiprocess
def test_four_processes_incr_a_shared_counter_exactly_400_times(
    redis_url: str, redis_flush: None
) -> None:
    outcomes = run_in_processes(_incr_counter, 4, redis_url, 100, timeout=60)
    per_worker = [outcome.unwrap() for outcome in outcomes]

    assert [len(values) for values in per_worker] == [100] * 4
    # INCR is atomic: the 400 replies are exactly 1..400, shared out among the workers.
    assert sorted(value for values in per_worker for value in values) == list(range(1, 401))
    with redis.Redis.from_url(redis_url) as client:
        assert client.get("shared-counter") == b"400"


@pytest.mark.multiprocess
def test_run_in_processes_reports_each_workers_exception() -> None:
    outcomes = run_in_processes(_fail_in_worker_two, 3, timeout=60)

    assert [outcome.value for outcome in outcomes] == [0, 1, None]
    assert isinstance(outcomes[2].error, ValueError)
    assert "worker two fails" in outcomes[2].traceback
    with pytest.raises(ValueError, match="worker two fails"):
        outcomes[2].unwrap()


@pytest.mark.multiprocess
def test_run_in_processes_kills_workers_that_miss_the_deadline() -> None:
    with pytest.raises(TimeoutError, match=r"workers \[0, 1\]"):
        run_in_processes(_hang, 2, timeout=2)
    assert multiprocessing.active_children() == []
