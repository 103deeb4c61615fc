"""Names cannot collide or act as patterns (api.md 31): a service named `*` is only itself to the
CLI, and key names planted in a shared Redis cannot drive the operator's terminal or crash it."""

from __future__ import annotations

import asyncio
import contextlib
import io

import pytest
import redis.asyncio as aioredis
from aiohttp import web

from nexus_connector_async import Connector, Endpoint, RateLimitConfig, RedisBackend
from nexus_connector_async.__main__ import main
from tests._redis_servers import RedisServer


def run(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    return code, out.getvalue()


async def _tenant_buckets(url: str) -> None:
    """Services `*` and `stripe` each spend a token from tenant t1's bucket."""

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/ok", ok)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    limit = RateLimitConfig(rate=10, period=60.0, burst=10, scope="tenant")
    endpoint = Endpoint.create(f"{base}/ok", "GET").with_rate_limit(limit)
    try:
        async with Connector(backend=RedisBackend.from_url(url)) as c:
            for service in ("*", "stripe"):
                await c.execute(service, endpoint, tenant_id="t1")
    finally:
        await runner.cleanup()


async def _keys(url: str) -> set[bytes]:
    client = aioredis.Redis.from_url(url)
    try:
        return set(await client.keys("*"))
    finally:
        await client.aclose()


@pytest.mark.usefixtures("redis_flush")
def test_reset_of_a_service_named_star_leaves_every_other_service_alone(
    redis_server: RedisServer,
) -> None:
    asyncio.run(_tenant_buckets(redis_server.url))
    stripe = {k for k in asyncio.run(_keys(redis_server.url)) if b"{stripe}" in k}
    assert any(b":tbucket:" in k for k in stripe)
    code, text = run(["reset", "*", "--redis", redis_server.url, "--yes"])
    assert code == 0, text
    assert stripe <= asyncio.run(_keys(redis_server.url))


async def _plant(url: str) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        # A canonical escaped name that decodes to a terminal escape, a raw one, non-UTF-8 bytes.
        for name in (b"nexus:{%1B%5B2J%1B%5D0%3Bpwned%07}:cb", b"nexus:{\x1b[2J}:cb"):
            await client.hset(name, mapping={"state": "open", "failures": 1})
        await client.hset(b"nexus:{\xff\xfe}:cb", mapping={b"state": b"\xff", b"failures": b"x"})
    finally:
        await client.aclose()


@pytest.mark.usefixtures("redis_flush")
def test_status_escapes_planted_key_names_and_survives_non_utf8(
    redis_server: RedisServer,
) -> None:
    asyncio.run(_plant(redis_server.url))
    code, text = run(["status", "--redis", redis_server.url])
    assert code == 0, text
    assert "\x1b" not in text
    assert "\x07" not in text
    assert "\\x1b[2J\\x1b]0;pwned\\x07" in text
