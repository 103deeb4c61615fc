"""Stored results are trustworthy (api.md rule 29): corrupted or forged records are refused.

Against a real Redis: a record whose stored bytes are garbage raises `StoredRecordInvalid`
(never msgspec's raw error, never a replay); with `RedisBackend(result_key=...)` results are
sealed with AES-GCM, so a record altered, moved to another key or planted by anyone with
write access to Redis is refused too, and nothing is sent for it.
"""

from __future__ import annotations

import os

import pytest

from nexus_connector_async import (
    Connector,
    Endpoint,
    IdempotencyKey,
    InvalidRequest,
    RedisBackend,
    StoredRecordInvalid,
)
from tests._redis_servers import RedisServer

from ._stub import Stub

pytestmark = pytest.mark.redis
KEY = os.urandom(32)


async def pay(connector: Connector, stub: Stub, key: str) -> bytes:
    endpoint = Endpoint.create(stub.url(), "POST", idempotency_header="Idempotency-Key")
    response = await connector.execute(
        "vendor", endpoint, {"amount": 5}, idempotency_key=IdempotencyKey(key)
    )
    return response.body


async def overwrite_results(redis_server: RedisServer, value: bytes) -> int:
    backend = RedisBackend.from_url(redis_server.url)
    try:
        names = [n async for n in backend.client.scan_iter(match="*:idem:*")]
        records = [n for n in names if not n.endswith(b":n")]
        for name in records:
            await backend.client.hset(name, "result", value)
        return len(records)
    finally:
        await backend.aclose()


async def test_a_corrupted_record_raises_a_typed_error_and_is_not_replayed(
    redis_server: RedisServer, redis_flush: None, stub: Stub
) -> None:
    async with Connector(backend=RedisBackend.from_url(redis_server.url)) as c:
        await pay(c, stub, "order-1")
        assert await overwrite_results(redis_server, b"\xc1not msgpack") == 1
        with pytest.raises(StoredRecordInvalid, match="not replayed"):
            await pay(c, stub, "order-1")
    assert stub.count == 1


async def test_with_result_key_a_forged_record_is_refused_and_nothing_is_sent(
    redis_server: RedisServer, redis_flush: None, stub: Stub
) -> None:
    # A well-formed "completed" record, as someone with Redis write access could plant it:
    # taken from a real call without result_key, then planted for a key paid with one.
    async with Connector(backend=RedisBackend.from_url(redis_server.url, prefix="p")) as plain:
        await pay(plain, stub, "forged")
        client = plain.backend.client  # type: ignore[attr-defined]
        names = [n async for n in client.scan_iter(match="p:*:idem:*") if not n.endswith(b":n")]
        forged = await client.hget(names[0], "result")
    sealed = RedisBackend.from_url(redis_server.url, result_key=KEY)
    async with Connector(backend=sealed) as c:
        first = await pay(c, stub, "order-2")
        assert await pay(c, stub, "order-2") == first  # sealed results replay as usual
        raw = [
            n
            async for n in sealed.client.scan_iter(match="nexus:*:idem:*")
            if not n.endswith(b":n")
        ]
        assert first not in await sealed.client.hget(raw[0], "result")  # encrypted at rest
        assert await overwrite_results(redis_server, forged) == 2
        sent = stub.count
        with pytest.raises(StoredRecordInvalid):
            await pay(c, stub, "order-2")
        assert stub.count == sent


def test_a_result_key_must_be_an_aes_key() -> None:
    with pytest.raises(InvalidRequest, match="result_key"):
        RedisBackend.from_url("redis://127.0.0.1:1/0", result_key=b"short")
