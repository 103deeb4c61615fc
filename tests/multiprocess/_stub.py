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
async def _served(app: web.Application) -> AsyncIterator[str]:
    """Serve `app` on a free loopback port for the duration of the block; yields its URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def running_vendor(delay: float = 0.0) -> AsyncIterator[Vendor]:
    """Serve a `Vendor` on a free loopback port for the duration of the block."""
    vendor = Vendor(delay)
    app = web.Application()
    app.router.add_post("/pay", vendor.pay)
    app.router.add_get("/seen", vendor.seen)
    async with _served(app) as url:
        vendor.url = url
        try:
            yield vendor
        finally:
            vendor._release.set()  # let held requests go before the server stops


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
    async with _served(app) as url:
        vendor.url = url
        yield vendor


class SlotVendor:
    """Counts its requests in flight, for the concurrency-limit proofs.

    `POST /work` answers 200 after `delay` seconds, or 429 at once when more than
    `throttle_above` requests are in flight (itself included). Every change of the count is
    logged as `(time.monotonic(), in flight after it)` in `timeline`, every answer as
    `(time, status)` in `answers`. `POST /hang` never answers (until the stub stops);
    `GET /hanging` says how many hang.
    """

    def __init__(self, delay: float = 0.2, throttle_above: int | None = None) -> None:
        self.delay = delay
        self.throttle_above = throttle_above
        self.in_flight = 0
        self.peak = 0
        self.timeline: list[tuple[float, int]] = []
        self.answers: list[tuple[float, int]] = []
        self.hanging = 0
        self._release = asyncio.Event()
        self.url = ""

    async def work(self, request: web.Request) -> web.Response:
        await request.read()
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        self.timeline.append((time.monotonic(), self.in_flight))
        try:
            if self.throttle_above is not None and self.in_flight > self.throttle_above:
                status = 429
            else:
                await asyncio.sleep(self.delay)
                status = 200
        finally:
            self.in_flight -= 1
            now = time.monotonic()
            self.timeline.append((now, self.in_flight))
        self.answers.append((now, status))
        return web.json_response({"ok": status == 200}, status=status)

    async def hang(self, request: web.Request) -> web.Response:
        await request.read()
        self.hanging += 1
        await self._release.wait()
        return web.json_response({})

    async def count_hanging(self, request: web.Request) -> web.Response:
        return web.json_response({"hanging": self.hanging})

    def statuses(self) -> list[int]:
        return [status for _, status in self.answers]

    def utilisation(self, start: float, end: float, limit: int) -> float:
        """Mean requests in flight over [start, end], as a fraction of `limit`."""
        area, level, at = 0.0, 0, start
        for t, n in self.timeline:
            if t > end:
                break
            if t > at:
                area += level * (t - at)
                at = t
            level = n
        area += level * max(0.0, end - at)
        return area / (limit * (end - start))


@asynccontextmanager
async def running_slot_vendor(
    delay: float = 0.2, throttle_above: int | None = None
) -> AsyncIterator[SlotVendor]:
    """Serve a `SlotVendor` on a free loopback port for the duration of the block."""
    vendor = SlotVendor(delay, throttle_above)
    app = web.Application()
    app.router.add_post("/work", vendor.work)
    app.router.add_post("/hang", vendor.hang)
    app.router.add_get("/hanging", vendor.count_hanging)
    async with _served(app) as url:
        vendor.url = url
        try:
            yield vendor
        finally:
            vendor._release.set()  # let held requests go before the server stops
