"""A local OAuth2 token server and a vendor API stub on 127.0.0.1, counting what they see."""

from __future__ import annotations

import asyncio
import base64
import itertools
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

import pytest
from aiohttp import web


@dataclass
class TokenRequest:
    """What the token endpoint received."""

    headers: dict[str, str]
    form: dict[str, str]

    @property
    def basic(self) -> tuple[str, str] | None:
        """(client_id, client_secret) from HTTP Basic, if sent."""
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Basic "):
            return None
        user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        return unquote_plus(user), unquote_plus(password)


Responder = Callable[[TokenRequest], Awaitable[web.Response] | web.Response]


@dataclass
class OAuthServer:
    """Token endpoint at `token_url`, API stub at `api_url` accepting only issued tokens.

    By default it issues `at-1`, `at-2`... with `expires_in`; with `rotate=True` it also issues
    `rt-1`, `rt-2`... and accepts each refresh token once (`rt-0` is the seed), like a server
    with refresh-token rotation. `respond` replaces the issuer; `hold` (an Event) delays token
    replies until set; `api_barrier` makes the API stub answer only once that many requests wait.
    """

    base: str = ""
    expires_in: float | str | None = 3600
    rotate: bool = False
    token_type: str = "Bearer"
    respond: Responder | None = None
    hold: asyncio.Event | None = None
    requests: list[TokenRequest] = field(default_factory=list)
    received: asyncio.Event = field(default_factory=asyncio.Event)
    valid_tokens: set[str] = field(default_factory=set)
    valid_refresh: set[str] = field(default_factory=lambda: {"rt-0"})
    api_seen: list[str | None] = field(default_factory=list)
    api_barrier: int = 0
    _api_waiting: int = 0
    _api_go: asyncio.Event = field(default_factory=asyncio.Event)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    arrivals: int = 0
    arrivals_needed: int = 0
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def token_url(self) -> str:
        return f"{self.base}/oauth2/token"

    @property
    def api_url(self) -> str:
        return f"{self.base}/api/thing"

    @property
    def count(self) -> int:
        """How many token requests arrived."""
        return len(self.requests)

    def issue(self, req: TokenRequest) -> web.Response:
        if req.form.get("grant_type") == "refresh_token" and self.rotate:
            used = req.form.get("refresh_token", "")
            if used not in self.valid_refresh:
                return web.json_response(
                    {"error": "invalid_grant", "error_description": "refresh token not valid"},
                    status=400,
                )
            self.valid_refresh.discard(used)
        n = next(self._ids)
        body: dict[str, Any] = {"access_token": f"at-{n}", "token_type": self.token_type}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        if self.rotate:
            body["refresh_token"] = f"rt-{n}"
            self.valid_refresh.add(f"rt-{n}")
        self.valid_tokens.add(f"at-{n}")
        return web.json_response(body)

    def revoke_all(self) -> None:
        """Make the API stub reject every token issued so far."""
        self.valid_tokens.clear()

    async def _token(self, request: web.Request) -> web.StreamResponse:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        req = TokenRequest(dict(request.headers), form)
        self.requests.append(req)
        self.received.set()
        if self.arrivals_needed:
            await self._arrived.wait()
        if self.hold is not None:
            await self.hold.wait()
        if self.respond is not None:
            result = self.respond(req)
            return await result if isinstance(result, Awaitable) else result
        return self.issue(req)

    async def _api(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization")
        self.api_seen.append(auth)
        if self.api_barrier:
            self._api_waiting += 1
            if self._api_waiting >= self.api_barrier:
                self.api_barrier = 0
                self._api_go.set()
            await self._api_go.wait()
        token = auth[7:] if auth and auth.startswith("Bearer ") else None
        if token not in self.valid_tokens:
            return web.json_response(
                {"error": "invalid_token", "error_description": "Access Token not found"},
                status=401,
            )
        return web.json_response({"ok": True, "token": token})

    async def _arrive(self, request: web.Request) -> web.StreamResponse:
        self.arrivals += 1
        if self.arrivals >= self.arrivals_needed:
            self._arrived.set()
        return web.json_response({"arrived": self.arrivals})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/oauth2/token", self._token)
        app.router.add_route("*", "/api/thing", self._api)
        app.router.add_get("/arrive", self._arrive)
        return app


@pytest.fixture
async def oauth_server() -> AsyncIterator[OAuthServer]:
    """A fresh token server and API stub on a free loopback port."""
    server = OAuthServer()
    runner = web.AppRunner(server.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    server.base = f"http://{host}:{port}"
    try:
        yield server
    finally:
        if server.hold is not None:
            server.hold.set()
        server._arrived.set()
        await runner.cleanup()


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/oauth2/token"
