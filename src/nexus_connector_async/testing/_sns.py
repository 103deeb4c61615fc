"""`SnsSimulator`: moto's real SNS server behind a recording, fault-injecting front on 127.0.0.1.

moto answers the AWS Query protocol like SNS; the front records every request's `Action`,
parameters (so tests see the message attributes on the wire) and signing access key id, and
can answer instead of moto with AWS error documents (throttling, 5xx, typed errors) or hold
moto's answer back. moto (`moto[server]`) is a test dependency, imported only when used.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, NamedTuple, Self

import aiohttp

from ._vendor_server import Answer, Answered, SimulatedRequest, VendorServer

__all__ = ["MotoServer", "Seen", "SnsSimulator", "error_document", "moto_published", "moto_reset"]

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
_HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection"}
_XML = {"Content-Type": "text/xml"}


class MotoServer:
    """`moto.server.ThreadedMotoServer` on a free loopback port; `url` once started."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer  # noqa: PLC0415 - a test-only dependency

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.url = ""

    def __enter__(self) -> Self:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()


class Seen(NamedTuple):
    """One SNS call as it arrived; `access_key` is the SigV4 `Credential=` key id."""

    action: str
    params: dict[str, str]
    access_key: str = ""


def error_document(code: str, message: str, request_id: str = "proxy-req-1") -> bytes:
    """An SNS (Query protocol) error body."""
    return (
        '<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">'
        f"<Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
        f"<RequestId>{request_id}</RequestId></ErrorResponse>"
    ).encode()


def _seen(request: SimulatedRequest) -> Seen:
    signed = _CREDENTIAL.search(request.headers.get("Authorization", ""))
    params = dict(request.form)
    return Seen(params.get("Action", ""), params, signed.group(1) if signed else "")


class SnsSimulator(VendorServer):
    """SNS on 127.0.0.1: forwards to moto unless a fault is queued; `url` is the endpoint.

    Give `moto_url` to share one moto between simulators (it is slow to start); without it the
    simulator starts and stops a moto of its own. `fail(action, code)` answers that action with
    an AWS error, `reject_number(number, code)` every Publish to a number; `hold(event)` lets
    moto act but answers only once the event is set. `seen` lists the calls.
    """

    #: moto acts at once; `hold` delays only the answer.
    hold_before_route = False

    def __init__(self, moto_url: str = "", **server: Any) -> None:
        super().__init__(**server)
        self.moto_url = moto_url
        self._moto: MotoServer | None = None
        self._session: aiohttp.ClientSession | None = None
        self._rejected: dict[str, Answer] = {}

    @property
    def seen(self) -> list[Seen]:
        """Every call received, oldest first."""
        return [_seen(r) for r in self.requests]

    def actions(self, action: str) -> list[Seen]:
        """The calls of one `Action` (e.g. `Publish`)."""
        return [s for s in self.seen if s.action == action]

    def fail(
        self, action: str, code: str, *, status: int = 400, message: str = "x", times: int = 1
    ) -> None:
        """Answer the next `times` requests of `action` with this AWS error."""
        body = error_document(code, message)
        self.inject(status, body, _XML, times=times, match=lambda r: _seen(r).action == action)

    def reject_number(self, number: str, code: str, message: str = "x", status: int = 400) -> None:
        """Answer every Publish to `number` with this AWS error."""
        self._rejected[number] = Answer(status, error_document(code, message), _XML)

    async def published(self) -> list[dict[str, Any]]:
        """The SMS moto accepted, oldest first (`phone_number`, `message`, `message_id`)."""
        return await moto_published(self.moto_url)

    async def start(self) -> Self:
        """Start moto (unless given) and the front."""
        if not self.moto_url:
            self._moto = MotoServer()
            await asyncio.to_thread(self._moto.__enter__)
            self.moto_url = self._moto.url
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return await super().start()

    async def close(self) -> None:
        """Answer what is held, stop the front and the moto it started. Idempotent."""
        if self._gate is not None:
            self._gate.set()
        await super().close()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._moto is not None:
            moto, self._moto = self._moto, None
            await asyncio.to_thread(moto.__exit__)
            self.moto_url = ""

    async def route(self, request: SimulatedRequest, parsed: Any) -> Answer:
        """A rejected number's error, else moto's answer (once `hold` lets it go)."""
        call = _seen(request)
        if call.action == "Publish" and call.params.get("PhoneNumber") in self._rejected:
            raise Answered(self._rejected[call.params["PhoneNumber"]])
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        url = self.moto_url + (request.raw_path or request.path)  # raw_path keeps the query
        async with self._session.request(
            request.method, url, headers=headers, data=request.body
        ) as upstream:
            data = await upstream.read()
            answer = Answer(
                upstream.status,
                data,
                {"Content-Type": upstream.headers.get("Content-Type", "text/xml")},
            )
        await self.processing()
        return answer


async def moto_published(moto_url: str) -> list[dict[str, Any]]:
    """The SMS a moto server accepted, oldest first."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{moto_url}/moto-api/data.json") as resp,
    ):
        data = await resp.json(content_type=None)  # moto labels it application/javascript
    return list(data.get("sns", {}).get("SMS", []))  # nothing until SNS was first used


async def moto_reset(moto_url: str) -> None:
    """Forget everything a moto server holds (messages, SMS attributes)."""
    async with aiohttp.ClientSession() as session, session.post(f"{moto_url}/moto-api/reset"):
        pass
