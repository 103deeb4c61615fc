"""Headers are checked whole (api.md 32): every control character in a header value or token is
refused with `InvalidRequest` before anything is sent, and an application's own Authorization
header is recognised whatever the case of its name."""

from __future__ import annotations

import pytest
from aiohttp import web

from nexus_connector_async import (
    Connector,
    CredentialRefreshError,
    Credentials,
    Endpoint,
    InvalidRequest,
    OAuth2CredentialProvider,
    StaticCredentialProvider,
)
from tests.faults._servers import serve

# Every control character aiohttp refuses on its own, and the ones it lets through (TAB, C1).
CONTROLS = ["\x01", "\x08", "\t", "\x0b", "\x1b", "\x1f", "\x7f", "\x85", "\x9b"]


class Seen:
    def __init__(self) -> None:
        self.auth: list[str | None] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.auth.append(request.headers.get("Authorization"))
        if request.path == "/oauth/token":
            return web.json_response({"access_token": "at\x01evil", "token_type": "Bearer"})
        return web.json_response({"ok": True})


@pytest.mark.parametrize("char", CONTROLS, ids=[f"{ord(c):#04x}" for c in CONTROLS])
async def test_a_control_character_in_a_header_is_refused_before_sending(char: str) -> None:
    seen = Seen()
    async with serve(seen.handle) as base, Connector() as c:
        with pytest.raises(InvalidRequest):
            await c.execute("svc", Endpoint(f"{base}/x"), headers={"X-Note": f"a{char}b"})
        with pytest.raises(InvalidRequest):
            Endpoint(f"{base}/x", headers={"X-Note": f"a{char}b"})
        with pytest.raises(InvalidRequest):
            Endpoint(f"{base}/x{char}")
    assert seen.auth == []


@pytest.mark.parametrize("char", CONTROLS, ids=[f"{ord(c):#04x}" for c in CONTROLS])
def test_a_control_character_in_a_token_is_refused(char: str) -> None:
    with pytest.raises(InvalidRequest):
        Credentials(f"tok{char}en")
    with pytest.raises(InvalidRequest):
        StaticCredentialProvider({"svc": f"tok{char}en"})


async def test_a_token_server_returning_a_control_character_gives_a_typed_error() -> None:
    seen = Seen()
    async with serve(seen.handle) as base:
        oauth = OAuth2CredentialProvider(f"{base}/oauth/token", "cid", "secret")
        async with Connector(credentials=oauth) as c:
            with pytest.raises(CredentialRefreshError) as info:
                await c.execute("svc", Endpoint(f"{base}/x"))
    assert info.value.error == "invalid_response"
    assert len(seen.auth) == 1  # the token request; the API call never went out


@pytest.mark.parametrize(
    "name", ["Authorization", "authorization", "AUTHORIZATION", "AuThOrIzAtIoN"]
)
async def test_the_applications_own_authorization_header_is_kept_in_any_case(name: str) -> None:
    seen = Seen()
    provider = StaticCredentialProvider({"svc": "provider-token"})
    async with serve(seen.handle) as base, Connector(credentials=provider) as c:
        await c.execute("svc", Endpoint(f"{base}/x"), headers={name: "Basic app-own"})
        await c.execute("svc", Endpoint(f"{base}/x", headers={name: "Basic app-own"}))
    assert seen.auth == ["Basic app-own", "Basic app-own"]
