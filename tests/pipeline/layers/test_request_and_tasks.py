"""Request building and the shielded write with undo."""

from __future__ import annotations

import asyncio

import pytest

from nexus_connector_async import Endpoint, IdempotencyKey, InvalidRequest
from nexus_connector_async.pipeline._request import build, check_names, scoped_key

from ._wiring import Parts


def test_a_get_payload_goes_into_the_query_and_sends_no_body() -> None:
    method, url, body, _ = build(Endpoint("https://v.test/x", "GET"), {"a": 1}, None, None)
    assert (method, url, body) == ("GET", "https://v.test/x?a=1", None)


def test_a_keyed_post_carries_the_key_in_the_vendors_idempotency_header() -> None:
    endpoint = Endpoint("https://v.test/x", idempotency_header="Idempotency-Key")
    key = IdempotencyKey("k-1")
    _, _, body, headers = build(endpoint, {"a": 1}, None, key)
    assert body == b'{"a":1}'
    assert headers["Idempotency-Key"] == key.value
    assert headers["Content-Type"] == "application/json"


def test_names_that_cannot_be_part_of_a_storage_key_are_refused() -> None:
    with pytest.raises(InvalidRequest):
        check_names("bad{name}", None)
    with pytest.raises(InvalidRequest):
        check_names("svc", "a tenant")


def test_a_key_without_tenant_or_account_passes_unchanged() -> None:
    key = IdempotencyKey("k-2")
    assert scoped_key(key, None, "svc", None) is key
    assert scoped_key(key, None, "svc", "t1") != key


async def test_a_cancelled_write_still_lands_and_is_undone() -> None:
    parts = Parts()
    landed = asyncio.Event()
    undone: list[str] = []

    async def write() -> str:
        await asyncio.sleep(0)
        landed.set()
        return "token"

    async def undo_it(token: str) -> None:
        undone.append(token)

    task = asyncio.create_task(parts.tasks.shielded(write(), undo_it))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await landed.wait()
    await parts.tasks.drain()
    assert undone == ["token"]
