"""A local vendor stub (aiohttp) that counts requests, for tests that run workers against it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web


class Vendor:
    """Answers POST /pay with a unique JSON body; `hold` keeps requests hanging until set."""

    def __init__(self, delay: float = 0.0) -> None:
        self.count = 0
        self.delay = delay  # simulated vendor latency
        self.hang_first = False
        self.first_seen = asyncio.Event()
        self._release = asyncio.Event()
        self.url = ""

    async def pay(self, request: web.Request) -> web.Response:
        await request.read()
        self.count += 1
        if self.count == 1:
            self.first_seen.set()
            if self.hang_first:
                await self._release.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.json_response({"id": uuid.uuid4().hex, "n": self.count})

    async def seen(self, request: web.Request) -> web.Response:
        return web.json_response({"count": self.count})


@asynccontextmanager
async def running_vendor(delay: float = 0.0) -> AsyncIterator[Vendor]:
    """Serve a `Vendor` on a free loopback port for the duration of the block."""
    vendor = Vendor(delay)
    app = web.Application()
    app.router.add_post("/pay", vendor.pay)
    app.router.add_get("/seen", vendor.seen)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    vendor.url = f"http://127.0.0.1:{port}"
    try:
        yield vendor
    finally:
        vendor._release.set()
        await runner.cleanup()
