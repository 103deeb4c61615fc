"""The loopback HTTP server under the vendor simulators, with request recording and fault hooks."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections import deque
from collections.abc import Mapping
from typing import Any, NamedTuple, Self
from urllib.parse import parse_qsl

import msgspec
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from .._logging import get_logger, redact_text

__all__ = ["Fault", "SimulatedRequest", "VendorServer", "parse_brackets", "rejection_reason"]

_log = get_logger("nexus_connector_async.testing")
# Answers that are a normal outcome of a well-formed request (a declined card, a throttle, an
# injected outage): logged at INFO. Any other 4xx means the request itself was refused.
_OUTCOMES = frozenset({402, 429})


class SimulatedRequest(NamedTuple):
    """One request a simulator received, exactly as it arrived."""

    method: str
    path: str
    query: str
    headers: CIMultiDictProxy[str]
    body: bytes


class Fault(NamedTuple):
    """An injected answer: status, JSON body and extra headers."""

    status: int
    body: Any
    headers: Mapping[str, str]


class VendorServer:
    """An aiohttp server on 127.0.0.1 (a free port) that records every request.

    Use `async with Simulator() as sim:` or `await sim.start()` / `await sim.close()`; `url` is
    the base URL to give the adapter. Subclasses implement `handle`. `hold(event)` keeps
    requests "being processed" until the event is set (`held` counts those waiting), to play a
    slow vendor and concurrent duplicates.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._faults: deque[Fault] = deque()
        self._gate: asyncio.Event | None = None
        self._held_changed = asyncio.Condition()
        self.requests: list[SimulatedRequest] = []
        self.held = 0
        self.url = ""

    async def start(self) -> Self:
        """Start listening; returns the simulator so `sim = await Sim().start()` reads well."""
        if self._runner is not None:
            return self
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        await site.start()
        self._runner = runner
        port = runner.addresses[0][1]
        self.url = f"http://{self._host}:{port}"
        return self

    async def close(self) -> None:
        """Stop the server. Idempotent."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def inject(
        self,
        status: int,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        *,
        times: int = 1,
    ) -> None:
        """Answer the next `times` well-formed requests with this status and JSON body."""
        for _ in range(times):
            self._faults.append(Fault(status, body if body is not None else {}, headers or {}))

    def hold(self, gate: asyncio.Event | None) -> None:
        """Process requests only once `gate` is set (None: at once), after the strict checks."""
        self._gate = gate

    async def until_held(self, count: int = 1) -> None:
        """Wait until `count` requests wait at the `hold` gate (no polling, no sleeps)."""
        async with self._held_changed:
            await self._held_changed.wait_for(lambda: self.held >= count)

    async def processing(self) -> None:
        """Where a subclass executes a request: waits while `hold` keeps the gate closed."""
        gate = self._gate
        if gate is None or gate.is_set():
            return
        async with self._held_changed:
            self.held += 1
            self._held_changed.notify_all()
        try:
            await gate.wait()
        finally:
            self.held -= 1

    def count(self, method: str | None = None, path: str | None = None) -> int:
        """How many requests arrived (optionally only those with this method and path)."""
        return sum(
            1
            for r in self.requests
            if (method is None or r.method == method) and (path is None or r.path == path)
        )

    def take_fault(self) -> Fault | None:
        """The next injected fault, if any (called once a request passed the strict checks)."""
        return self._faults.popleft() if self._faults else None

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        recorded = SimulatedRequest(
            request.method,
            request.path,
            request.query_string,
            CIMultiDictProxy(CIMultiDict(request.headers)),
            body,
        )
        self.requests.append(recorded)
        response = await self.handle(recorded)
        if response.status >= 400:
            self._log_rejection(recorded, response)
        return response

    def _log_rejection(self, request: SimulatedRequest, response: web.StreamResponse) -> None:
        """Say why the simulator refused a request, where the test's logs will show it."""
        refused = response.status < 500 and response.status not in _OUTCOMES
        log = _log.warning if refused else _log.info
        body = response.body if isinstance(response, web.Response) else None
        log(
            "nexus.simulator.rejected",
            simulator=type(self).__name__,
            method=request.method,
            path=request.path,
            status=response.status,
            reason=rejection_reason(body if isinstance(body, bytes) else b""),
        )

    async def handle(self, request: SimulatedRequest) -> web.StreamResponse:
        """Answer one recorded request (subclasses)."""
        raise NotImplementedError


def rejection_reason(body: bytes) -> str | None:
    """The vendor-style reason in an error body (Stripe, PayPal, Twilio shapes), shortened."""
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    found: Any = None
    if isinstance(error, dict):  # Stripe: {"error": {"message": ..., "code": ...}}
        found = error.get("message") or error.get("code")
    if not found:  # PayPal and Twilio: a top-level message; OAuth: error_description
        details = data.get("details")
        issue = details[0].get("issue") if isinstance(details, list) and details else None
        found = data.get("message") or data.get("error_description") or issue or error
    if not isinstance(found, str | int) or isinstance(found, bool):
        return None
    text = redact_text(str(found))
    return text if len(text) <= 200 else text[:197] + "..."


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    """A JSON response (msgspec-encoded)."""
    return web.Response(
        status=status,
        body=msgspec.json.encode(body),
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def new_id(prefix: str, size: int = 12) -> str:
    """A random vendor-looking id: `prefix` + hex."""
    return prefix + secrets.token_hex(size)


_KEY = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")


def parse_brackets(body: str) -> dict[str, Any]:
    """Decode a bracket-notation form (`a[b][0]=x`) into nested dicts and lists.

    Raises `ValueError` for keys that are not well-formed bracket notation.
    """
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True, strict_parsing=bool(body)):
        match = _KEY.fullmatch(key)
        if match is None:
            raise ValueError(f"malformed parameter name {key!r}")
        parts = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        node = root
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"parameter {key!r} mixes a value and a hash")
            node = child
        if parts[-1] in node:
            raise ValueError(f"parameter {key!r} given twice")
        node[parts[-1]] = value
    parsed: dict[str, Any] = _listify(root)
    return parsed


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    items = {k: _listify(v) for k, v in node.items()}
    if items and all(k.isdigit() for k in items):
        indexes = sorted(int(k) for k in items)
        if indexes == list(range(len(items))):
            return [items[str(i)] for i in indexes]
    return items
