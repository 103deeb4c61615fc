"""Each Lua script against a real Redis: it runs, survives SCRIPT FLUSH; keys are laid out right."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.cluster import key_slot

from nexus_connector_async import (
    CircuitBreakerConfig,
    InvalidRequest,
    RateLimitConfig,
    RedisBackend,
    RetryPolicy,
)
from nexus_connector_async.backends.redis._keys import key
from nexus_connector_async.backends.redis._scripts import SCRIPT_NAMES, source
from nexus_connector_async.typing import AdmitAsk
from tests._redis_servers import RedisCluster3, RedisProcess

CB = CircuitBreakerConfig(failure_threshold=1, recovery_timeout=0.001)
LIMIT = RateLimitConfig.per_second(100, scope="tenant")
DIGEST = "00112233445566778899aabb"

pytestmark = pytest.mark.redis


@pytest.fixture
async def backend(redis_server: RedisProcess, redis_flush: None) -> AsyncIterator[RedisBackend]:
    b = RedisBackend.from_url(redis_server.url, prefix="t")
    yield b
    await b.aclose()


async def _claimed(b: RedisBackend) -> str:
    return (await b.claim("svc", "ten", DIGEST, "fp", 30.0)).token


async def _complete(b: RedisBackend) -> bool:
    return await b.complete("svc", "ten", DIGEST, await _claimed(b), b"r", 60.0)


async def _release(b: RedisBackend) -> None:
    await b.release("svc", "ten", DIGEST, await _claimed(b))


async def _extend(b: RedisBackend) -> bool:
    return await b.extend("svc", "ten", DIGEST, await _claimed(b), 30.0)


async def _mark_unknown(b: RedisBackend) -> bool:
    return await b.mark_unknown("svc", "ten", DIGEST, await _claimed(b), 60.0)


# One call per script, each returning something that proves the script ran.
CALLS: dict[str, Callable[[RedisBackend], Awaitable[Any]]] = {
    "admit": lambda b: b.admit(
        "svc", "ten", CB, LIMIT, probe_lease=5.0, budget=RetryPolicy(budget_ratio=0.1)
    ),
    "record": lambda b: b.record("svc", CB, success=False),
    "pause": lambda b: b.pause("svc", 0.001),
    "idem_claim": lambda b: b.claim("svc", "ten", "other", "fp", 30.0),
    "idem_claim_admit": lambda b: b.claim_admit(
        "svc", "ten", "ca", "fp", 30.0, AdmitAsk(CB, LIMIT, 5.0)
    ),
    "idem_complete": _complete,
    "idem_release": _release,
    "idem_extend": _extend,
    "idem_mark_unknown": _mark_unknown,
    "idem_forget": lambda b: b.forget("svc", "ten", DIGEST),
    "kv_get": lambda b: b.get("k"),
    "kv_set": lambda b: b.set("k", b"v", 60.0),
    "kv_add": lambda b: b.add("n", 1, limit=10, ttl=60.0),
    "lock_acquire": lambda b: b.acquire_lock("lock", "t", 60.0),
    "lock_release": lambda b: b.release_lock("lock", "t"),
    "kv_cas": lambda b: b.compare_and_set("cas", None, b"v", 60.0),
    "lock_extend": lambda b: b.extend_lock("lock", "t", 5.0),
    "slots": lambda b: b.slot_usage("svc", None, 3),
    "renew_probe": lambda b: b.renew_probe("svc", "r1", 5.0),
}


def test_every_script_has_a_header_naming_keys_argv_and_return() -> None:
    assert set(CALLS) == set(SCRIPT_NAMES)
    for name in SCRIPT_NAMES:
        body = source(name).split("\n-- " + name + ".lua", 1)[1]
        header = body.split("\n\n", 1)[0]
        assert "KEYS[1]" in header, name
        assert "ARGV[1]" in header, name
        assert "Returns" in header, name


@pytest.mark.parametrize("name", SCRIPT_NAMES)
async def test_script_runs_and_reloads_itself_after_script_flush(
    backend: RedisBackend, name: str
) -> None:
    call = CALLS[name]
    await call(backend)
    sha = getattr(backend._scripts, name).sha
    assert await backend.client.script_exists(sha) == [True]
    await backend.client.script_flush()
    assert await backend.client.script_exists(sha) == [False]
    await backend.client.flushdb()
    await call(backend)
    assert await backend.client.script_exists(sha) == [True]


async def test_a_whole_batch_survives_script_flush_in_one_reload(backend: RedisBackend) -> None:
    limit = RateLimitConfig.per_second(1000)
    await backend.admit("svc", None, CB, limit, probe_lease=5.0)
    await backend.client.script_flush()
    before = backend.round_trips
    results = await asyncio.gather(
        *(backend.admit("svc", None, CB, limit, probe_lease=5.0) for _ in range(50))
    )
    assert all(r.admitted for r in results)
    assert backend.round_trips - before == 3  # batch (NOSCRIPT), SCRIPT LOAD, batch again


async def test_every_key_of_a_service_shares_one_hash_slot(backend: RedisBackend) -> None:
    names = [
        key("t", "cb", "svc"),
        key("t", "probes", "svc"),
        key("t", "bucket", "svc", LIMIT.bucket_id),
        key("t", "tbucket", "svc", LIMIT.bucket_id, "tenant:with:colons"),
        key("t", "idem", "svc", DIGEST),
        key("t", "tidem", "svc", "ten", DIGEST),
        key("t", "tidem", "svc", "ten", DIGEST, "n"),
        *(key("t", kind, "svc") for kind in ("slots", "slotq", "slotm", "slotw")),
        key("t", "slots", "svc", "t", "ten"),  # a tenant's slots, in the admission's slot too
    ]
    assert len({key_slot(n.encode()) for n in names}) == 1
    assert all(n.startswith("t:{svc}:") for n in names)


async def test_redis_holds_only_hashed_idempotency_keys_under_the_prefix(
    backend: RedisBackend,
) -> None:
    await backend.claim("svc", "ten", DIGEST, "fp", 30.0)
    await backend.admit("svc", "ten", CB, LIMIT, probe_lease=5.0)
    names = sorted(k.decode() for k in await backend.client.keys("*"))
    bucket = key("t", "tbucket", "svc", LIMIT.bucket_id, "ten")  # one bucket per limit (rule 21)
    assert names == [bucket, f"t:{{svc}}:tidem:ten:{DIGEST}"]


async def test_a_clean_admission_without_a_limit_writes_nothing(backend: RedisBackend) -> None:
    for _ in range(3):
        assert (await backend.admit("svc", None, CB, None, probe_lease=5.0)).clean
    assert await backend.client.dbsize() == 0


async def test_idle_keys_expire_about_when_they_stop_mattering(backend: RedisBackend) -> None:
    c = backend.client
    await backend.admit("svc", None, CB, RateLimitConfig.per_second(10), probe_lease=5.0)
    # One token taken: full again after 0.1 s, plus a second of margin.
    assert 1000 < await c.pttl(key("t", "bucket", "svc", "10.0/1.0/10.0")) <= 1100
    await backend.admit("svc", None, CB, RateLimitConfig.per_minute(60), probe_lease=5.0)
    await backend.claim("svc", None, DIGEST, "fp", 30.0)
    assert 30000 < await c.pttl(f"t:{{svc}}:idem:{DIGEST}") <= 31000
    # At most once: the record outlives its lease by its unknown ttl, then goes.
    await backend.claim("svc", None, "amo", "fp", 30.0, unknown_ttl=600.0)
    assert 630_000 < await c.pttl("t:{svc}:idem:amo") <= 631_000
    await backend.record("svc", CB, success=False)
    assert 3599_000 < await c.pttl("t:{svc}:cb") <= 3601_000
    await backend.set("k", b"v", 60.0)
    assert 60000 < await c.pttl("t:kv:k") <= 61000


async def _server_calls(backend: RedisBackend) -> dict[str, int]:
    stats = await backend.client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


@pytest.mark.parametrize("unknown_ttl", [None, 600.0])
async def test_each_write_of_an_idempotency_record_is_one_hset_and_a_claim_reads_time_once(
    backend: RedisBackend, unknown_ttl: float | None
) -> None:
    # Redis runs every script's commands on its one thread, for every worker: a claim and a
    # completion write their record's fields with one HSET each, not one per field.
    before = await _server_calls(backend)
    token = (await backend.claim("svc", None, DIGEST, "fp", 30.0, unknown_ttl=unknown_ttl)).token
    claimed = await _server_calls(backend)
    assert await backend.complete("svc", None, DIGEST, token, b"r", 60.0)
    completed = await _server_calls(backend)
    assert claimed["hset"] - before.get("hset", 0) == 1
    assert completed["hset"] - claimed["hset"] == 1
    # The claim's fencing token is the script's own reading of Redis's clock: TIME runs once.
    assert claimed["time"] - before.get("time", 0) == 1
    record = await backend.client.hgetall(f"t:{{svc}}:idem:{DIGEST}")
    assert {k.decode() for k in record} == {"fp", "token", "expires", "result"} | (
        set() if unknown_ttl is None else {"amo"}
    )


async def test_refuses_a_client_that_decodes_responses(redis_server: RedisProcess) -> None:
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    with pytest.raises(InvalidRequest):
        RedisBackend(client)
    await client.aclose()


@pytest.mark.cluster
async def test_cluster_scripts_reload_on_every_node_after_script_flush(
    redis_cluster: RedisCluster3,
) -> None:
    redis_cluster.flushall()
    b = RedisBackend.from_url(redis_cluster.url, cluster=True)
    try:
        services = [f"svc{i}" for i in range(12)]  # spread over all three masters
        limit = RateLimitConfig.per_second(10)
        first = await asyncio.gather(
            *(b.admit(s, None, CB, limit, probe_lease=5.0) for s in services)
        )
        assert all(a.admitted for a in first)
        for node in redis_cluster.nodes:
            with node.client() as direct:
                direct.script_flush()
        again = await asyncio.gather(
            *(b.admit(s, None, CB, limit, probe_lease=5.0) for s in services)
        )
        assert all(a.admitted for a in again)
    finally:
        await b.aclose()
