"""A scriptable vendor stub on 127.0.0.1 for the pipeline tests (real HTTP, no mocks)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

Action = tuple[int, dict[str, str], bytes] | Callable[[web.Request], Awaitable[web.StreamResponse]]


class Stub:
    """Answers with queued actions (status, headers, body) or coroutines; records requests."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: deque[Action] = deque()
        self.default: Action = (200, {"Content-Type": "application/json"}, b'{"ok":true}')
        self.base = ""
        self.arrived = asyncio.Event()

    def queue(self, *actions: Action) -> None:
        self.script.extend(actions)

    def url(self, path: str = "/v1/things") -> str:
        return self.base + path

    @property
    def count(self) -> int:
        return len(self.requests)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            {
                "method": request.method,
                "path": request.path_qs,
                "headers": dict(request.headers),
                "body": body,
            }
        )
        self.arrived.set()
        action = self.script.popleft() if self.script else self.default
        if callable(action):
            return await action(request)
        status, headers, payload = action
        return web.Response(status=status, headers=headers, body=payload)


def status(code: int, body: bytes = b"{}", **headers: str) -> Action:
    return (code, {"Content-Type": "application/json", **headers}, body)


def held(gate: asyncio.Event, action: Action | None = None) -> Action:
    """An action that waits for `gate` before answering (200 by default)."""

    async def run(request: web.Request) -> web.StreamResponse:
        await gate.wait()
        if callable(action):
            return await action(request)
        code, headers, body = action or status(200, b'{"held":true}')
        return web.Response(status=code, headers=headers, body=body)

    return run
