"""Refresh-token rotation is never lost (api.md rule 23), on memory and on a real Redis.

A token reply slower than the refresh lock's lease must not let a second worker spend the same
refresh token (the lock is extended while the request runs), and a late reply must never
overwrite a newer refresh token (the pair is stored with compare-and-set).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from nexus_connector_async import Backend, MemoryBackend, OAuth2CredentialProvider, RedisBackend

from ._oauth_server import OAuthServer, TokenRequest

LEASE = 0.2


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    b: Backend
    if request.param == "memory":
        b = MemoryBackend()
    else:
        server = request.getfixturevalue("redis_server")
        server.flush()
        b = RedisBackend.from_url(server.url)
    yield b
    await b.aclose()


def worker(server: OAuthServer, backend: Backend, **kw: Any) -> OAuth2CredentialProvider:
    """One worker's provider (each has its own in-process single flight)."""
    return OAuth2CredentialProvider(
        server.token_url,
        "client-1",
        "secret-1",
        grant_type="refresh_token",
        refresh_token="rt-0",
        backend=backend,
        lock_lease=LEASE,
        wait_timeout=10.0,
        **kw,
    )


async def test_a_token_reply_slower_than_the_lock_lease_is_not_raced_by_another_worker(
    oauth_server: OAuthServer, backend: Backend
) -> None:
    oauth_server.rotate = True
    oauth_server.hold = asyncio.Event()
    a = asyncio.ensure_future(worker(oauth_server, backend).get_credentials("paypal"))
    await asyncio.wait_for(oauth_server.received.wait(), 5)
    await asyncio.sleep(LEASE * 3)  # the fault: the token endpoint is slower than the lease
    b = asyncio.ensure_future(worker(oauth_server, backend).get_credentials("paypal"))
    await asyncio.sleep(LEASE)  # b polls the cache meanwhile; it must not ask the endpoint
    assert oauth_server.count == 1
    oauth_server.hold.set()
    first, second = await asyncio.gather(a, b)
    assert first is not None
    assert second is not None
    assert first.access_token == second.access_token == "at-1"
    assert oauth_server.count == 1  # rt-0 was spent once; the chain continues with rt-1
    assert first.refresh_token == "rt-1"


async def test_a_late_reply_never_overwrites_a_newer_refresh_token(
    oauth_server: OAuthServer, backend: Backend
) -> None:
    late = asyncio.Event()

    async def respond(req: TokenRequest) -> web.Response:
        if oauth_server.count == 1:  # the first worker's request: answered last
            await late.wait()
            return web.json_response(
                {"access_token": "at-old", "refresh_token": "rt-old", "expires_in": 3600}
            )
        return web.json_response(
            {"access_token": "at-new", "refresh_token": "rt-new", "expires_in": 3600}
        )

    oauth_server.respond = respond
    slow = worker(oauth_server, backend)
    a = asyncio.ensure_future(slow.get_credentials("paypal"))
    await asyncio.wait_for(oauth_server.received.wait(), 5)
    # The slow worker's lock is lost (say its lease ran out during a backend outage).
    await backend.delete(slow._key("paypal", None) + ":lock")
    newer = await worker(oauth_server, backend).get_credentials("paypal")
    assert newer is not None
    assert newer.access_token == "at-new"
    late.set()
    await a  # the late worker still gets its (valid) token ...
    # ... but the shared chain keeps the newer pair.
    again = await worker(oauth_server, backend).get_credentials("paypal")
    assert again is not None
    assert (again.access_token, again.refresh_token) == ("at-new", "rt-new")
    assert oauth_server.count == 2


async def test_compare_and_set_and_extend_lock(backend: Backend) -> None:
    assert await backend.compare_and_set("k", None, b"v1")
    assert not await backend.compare_and_set("k", None, b"v2")
    assert not await backend.compare_and_set("k", b"other", b"v2")
    assert await backend.compare_and_set("k", b"v1", b"v2", ttl=60)
    assert await backend.get("k") == b"v2"
    assert await backend.acquire_lock("lock", "me", 5.0)
    assert await backend.extend_lock("lock", "me", 5.0)
    assert not await backend.extend_lock("lock", "someone-else", 5.0)
    await backend.release_lock("lock", "me")
    assert not await backend.extend_lock("lock", "me", 5.0)
