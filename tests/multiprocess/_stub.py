"""A local vendor stub (aiohttp) that counts requests, for tests that run workers against it."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
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


Answer = Callable[[str, int], tuple[int, dict[str, str]]]


class ScriptedVendor:
    """Answers any request to `/<lane>` from `answer(lane, n)` (n counts that lane's requests).

    Every request is logged per lane as `(arrived, served, status)` in this process's
    `time.monotonic()`: `served` is taken after the response has been written to the socket.
    `POST /_flag/<name>` adds `name` to `flags`, so workers can change the script mid-test.
    """

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.log: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
        self.flags: set[str] = set()
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        await request.read()
        lane = request.match_info["lane"]
        n = len(self.log[lane]) + 1
        self.log[lane].append((arrived, arrived, 0))  # reserve slot n before any await
        status, headers = self.answer(lane, n)
        response = web.Response(status=status, headers=headers, body=b"{}")
        response.content_type = "application/json"
        await response.prepare(request)
        await response.write_eof()
        self.log[lane][n - 1] = (arrived, time.monotonic(), status)
        return response

    async def flag(self, request: web.Request) -> web.Response:
        self.flags.add(request.match_info["name"])
        return web.json_response({})

    def statuses(self, lane: str) -> list[int]:
        """The statuses served on `lane`, in arrival order."""
        return [status for _, _, status in self.log[lane]]


@asynccontextmanager
async def running_scripted_vendor(answer: Answer) -> AsyncIterator[ScriptedVendor]:
    """Serve a `ScriptedVendor` on a free loopback port for the duration of the block."""
    vendor = ScriptedVendor(answer)
    app = web.Application()
    app.router.add_post("/_flag/{name}", vendor.flag)
    app.router.add_route("*", "/{lane}", vendor.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    vendor.url = f"http://127.0.0.1:{port}"
    try:
        yield vendor
    finally:
        await runner.cleanup()
