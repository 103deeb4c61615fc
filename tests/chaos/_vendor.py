"""A payment vendor stub with seeded faults, that logs every side effect it makes.

Two lanes: ``/dedup`` deduplicates by its ``Idempotency-Key`` header as Stripe does (a repeat
returns the first answer and makes no new charge), ``/plain`` does not (every POST it processes
is a charge). Faults, drawn per request from a seeded RNG:

- ``503``, ``429``, ``409``: answered before processing (no charge), "not processed";
- ``timeout``: the charge is made, the answer comes after the client gave up (outcome unknown);
- ``reset``: the charge is made, the connection is cut before the answer (outcome unknown).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web

FAULTS = (("503", 0.06), ("429", 0.04), ("409", 0.03), ("timeout", 0.03), ("reset", 0.03))


@dataclass
class Effect:
    lane: str
    key: str
    charge: str
    at: float


@dataclass
class ChaosVendor:
    seed: int
    slow: float = 1.5  # a "timeout" answer comes this late: past the client's read timeout
    faults_on: bool = True
    effects: list[Effect] = field(default_factory=list)
    arrivals: dict[str, list[float]] = field(default_factory=lambda: {"dedup": [], "plain": []})
    injected: Counter[str] = field(default_factory=Counter)
    url: str = ""

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._answers: dict[str, dict[str, str]] = {}
        self._runner: web.AppRunner | None = None

    def _fault(self) -> str | None:
        if not self.faults_on:
            return None
        roll = self._rng.random()
        for name, p in FAULTS:
            if roll < p:
                return name
            roll -= p
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        lane = request.match_info["lane"]
        self.arrivals[lane].append(time.monotonic())
        key = json.loads(await request.read())["order"]
        header = request.headers.get("Idempotency-Key")
        if lane == "dedup" and header in self._answers:
            return web.json_response(self._answers[header])  # the vendor's own replay
        fault = self._fault()
        if fault in ("503", "429", "409"):
            self.injected[f"vendor {fault}"] += 1
            return web.json_response({"error": fault}, status=int(fault))
        charge = f"ch_{len(self.effects) + 1}"
        self.effects.append(Effect(lane, key, charge, time.monotonic()))
        answer = {"id": charge, "order": key}
        if lane == "dedup" and header:
            self._answers[header] = answer
        if fault == "timeout":
            self.injected["vendor timeout after charging"] += 1
            await asyncio.sleep(self.slow)  # the fault itself: an answer too late
        elif fault == "reset":
            self.injected["vendor reset after charging"] += 1
            assert request.transport is not None
            request.transport.abort()
            raise asyncio.CancelledError
        return web.json_response(answer)

    async def start(self) -> ChaosVendor:
        app = web.Application()
        app.router.add_post("/{lane}", self.handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        return self

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
