"""moto's real SNS server on 127.0.0.1, and a fault-injecting proxy in front of it.

moto answers the AWS Query protocol like SNS; the proxy records every request's `Action`,
parameters (so tests see the message attributes on the wire) and signing access key id, and
can answer instead of moto with AWS error documents (throttling, 5xx, typed errors) or hold
moto's answer back.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import web

ACCOUNT = "123456789012"
_HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection"}


class MotoServer:
    """`moto.server.ThreadedMotoServer` on a free loopback port."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer  # noqa: PLC0415

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.url = ""

    def __enter__(self) -> MotoServer:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()


def moto_server() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


class Seen(NamedTuple):
    """One request the proxy received; `access_key` is the SigV4 `Credential=` key id."""

    action: str
    params: dict[str, str]
    access_key: str = ""


_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")


class _Fault(NamedTuple):
    status: int
    code: str
    message: str


def error_document(code: str, message: str, request_id: str = "proxy-req-1") -> bytes:
    """An SNS (Query protocol) error body."""
    return (
        '<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">'
        f"<Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
        f"<RequestId>{request_id}</RequestId></ErrorResponse>"
    ).encode()


class FaultProxy:
    """Forwards to moto unless a fault is queued for the action; records what it saw."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.url = ""
        self.seen: list[Seen] = []
        self.in_flight: dict[str, int] = {}  # requests of each action not answered yet
        self.peak: dict[str, int] = {}  # the most of each action ever in flight at once
        self._faults: dict[str, list[_Fault]] = {}
        self._rejected: dict[str, _Fault] = {}
        self._hold: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    def actions(self, action: str) -> list[Seen]:
        return [s for s in self.seen if s.action == action]

    def fail(
        self, action: str, code: str, *, status: int = 400, message: str = "x", times: int = 1
    ) -> None:
        """Answer the next `times` requests of `action` with this AWS error."""
        self._faults.setdefault(action, []).extend([_Fault(status, code, message)] * times)

    def reject_number(self, number: str, code: str, message: str = "x", status: int = 400) -> None:
        """Answer every Publish to `number` with this AWS error."""
        self._rejected[number] = _Fault(status, code, message)

    def hold(self, gate: asyncio.Event | None) -> None:
        """Let moto handle requests but answer only once `gate` is set."""
        self._hold = gate

    async def __aenter__(self) -> FaultProxy:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._hold is not None:
            self._hold.set()
        assert self._runner is not None
        assert self._session is not None
        await self._runner.cleanup()
        await self._session.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        params = dict(parse_qsl(body.decode(), keep_blank_values=True))
        action = params.get("Action", "")
        self.in_flight[action] = now = self.in_flight.get(action, 0) + 1
        self.peak[action] = max(self.peak.get(action, 0), now)
        try:
            return await self._answer(request, body, params, action)
        finally:
            self.in_flight[action] -= 1

    async def _answer(
        self, request: web.Request, body: bytes, params: dict[str, str], action: str
    ) -> web.StreamResponse:
        signed = _CREDENTIAL.search(request.headers.get("Authorization", ""))
        self.seen.append(Seen(action, params, signed.group(1) if signed else ""))
        fault = None
        if self._faults.get(action):
            fault = self._faults[action].pop(0)
        elif action == "Publish" and params.get("PhoneNumber") in self._rejected:
            fault = self._rejected[params["PhoneNumber"]]
        if fault is not None:
            return web.Response(
                status=fault.status,
                body=error_document(fault.code, fault.message),
                content_type="text/xml",
            )
        return await self._forward(request, body)

    async def _forward(self, request: web.Request, body: bytes) -> web.StreamResponse:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        async with self._session.request(
            request.method, self.upstream + request.path_qs, headers=headers, data=body
        ) as upstream:
            data = await upstream.read()
            status = upstream.status
            content_type = upstream.headers.get("Content-Type", "text/xml")
        if self._hold is not None:
            await self._hold.wait()
        return web.Response(status=status, body=data, headers={"Content-Type": content_type})


async def published(moto_url: str) -> list[dict[str, Any]]:
    """The SMS moto accepted, oldest first (`phone_number`, `message`, `message_id`)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{moto_url}/moto-api/data.json") as resp,
    ):
        data = await resp.json(content_type=None)  # moto labels it application/javascript
    return list(data["sns"]["SMS"])


async def reset(moto_url: str) -> None:
    """Forget everything moto holds (messages, SMS attributes)."""
    async with aiohttp.ClientSession() as session, session.post(f"{moto_url}/moto-api/reset"):
        pass


def attributes(seen: Seen) -> dict[str, tuple[str, str]]:
    """A Publish's `MessageAttributes` as {name: (DataType, StringValue)}."""
    out: dict[str, tuple[str, str]] = {}
    i = 1
    while f"MessageAttributes.entry.{i}.Name" in seen.params:
        prefix = f"MessageAttributes.entry.{i}"
        out[seen.params[f"{prefix}.Name"]] = (
            seen.params[f"{prefix}.Value.DataType"],
            seen.params[f"{prefix}.Value.StringValue"],
        )
        i += 1
    return out
