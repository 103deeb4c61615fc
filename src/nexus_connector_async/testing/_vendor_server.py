"""The one base of every vendor simulator: a loopback HTTP server that records each request and
answers it through one pipeline, authenticate -> parse -> fault -> replay -> route -> remember.

A simulator fills in the steps it needs (`authenticate`, `parse`, `route`, and for vendors with
idempotency `replay_key`); the lifecycle, the request record, fault injection (`inject`), the
replay store, `hold` and the log line that says why a request was refused live here once.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple, Self
from urllib.parse import parse_qsl

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from .._logging import get_logger
from ._wire import json_response, new_id, parse_brackets, rejection_reason

__all__ = [
    "Answer",
    "Answered",
    "Fault",
    "SimulatedRequest",
    "VendorServer",
    "json_response",
    "new_id",
    "parse_brackets",
    "rejection_reason",
]

_log = get_logger("nexus_connector_async.testing")
# Answers that are a normal outcome of a well-formed request (a declined card, a throttle, an
# injected outage): logged at INFO. Any other 4xx means the request itself was refused.
_OUTCOMES = frozenset({402, 429})
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


class SimulatedRequest(NamedTuple):
    """One request a simulator received, exactly as it arrived (`raw_path` still encoded)."""

    method: str
    path: str
    query: str
    headers: CIMultiDictProxy[str]
    body: bytes
    raw_path: str = ""

    @property
    def query_params(self) -> list[tuple[str, str]]:
        """The query string's pairs in order, repeated keys kept."""
        return parse_qsl(self.query, keep_blank_values=True)

    @property
    def form(self) -> list[tuple[str, str]]:
        """The body read as a form: its pairs in order, repeated keys kept."""
        return parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True)


class Answer(NamedTuple):
    """What a simulator answers: a status, a body (JSON-encoded unless bytes) and headers."""

    status: int
    body: Any = None
    headers: Mapping[str, str] = _NO_HEADERS


class Answered(Exception):
    """Raised by any pipeline step to answer `answer` at once (a refusal, a token, ...)."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.status)
        self.answer = answer


class Fault(NamedTuple):
    """An injected answer; `match` picks the requests it is for; with `processed` the request
    is executed first (the vendor did the work but the answer was lost or failed)."""

    answer: Answer
    match: Callable[[SimulatedRequest], bool] | None = None
    processed: bool = False


@dataclass(slots=True)
class _Queued:
    """An injected fault and how many more requests it answers (None: all)."""

    fault: Fault
    remaining: int | None


class _Stored(NamedTuple):
    fingerprint: str
    answer: Answer


class VendorServer:
    """An aiohttp server on 127.0.0.1 (a free port) that records every request.

    Use `async with Simulator() as sim:` or `await sim.start()` / `await sim.close()`; `url` is
    the base URL to give the adapter. `requests` lists what arrived, `by_status` counts the
    answers. `inject()` queues faults; `hold(event)` keeps requests "being processed" until the
    event is set (`held` counts those waiting), to play a slow vendor and concurrent duplicates.
    """

    #: Whether the `hold` gate is passed before `route` (False: the route passes it itself).
    hold_before_route: ClassVar[bool] = True

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._faults: list[_Queued] = []
        self._replays: dict[Hashable, _Stored] = {}
        self._in_flight: set[Hashable] = set()
        self._gate: asyncio.Event | None = None
        self._held_changed = asyncio.Condition()
        self.requests: list[SimulatedRequest] = []
        self.by_status: Counter[int] = Counter()
        self.on_request: Callable[[SimulatedRequest], None] | None = None
        self.held = 0
        self.url = ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self.url!r}, requests={len(self.requests)})"

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> Self:
        """Start listening; returns the simulator so `sim = await Sim().start()` reads well."""
        if self._runner is not None:
            return self
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1, access_log=None)
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

    # -- scripting -----------------------------------------------------------------------------

    def inject(
        self,
        status: int,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        *,
        times: int | None = 1,
        match: Callable[[SimulatedRequest], bool] | None = None,
        processed: bool = False,
    ) -> None:
        """Answer the next `times` (None: every) well-formed requests that `match` accepts
        with this status and body (JSON unless bytes); `processed` executes them first."""
        answer = Answer(status, body if body is not None else {}, headers or {})
        self._faults.append(_Queued(Fault(answer, match, processed), times))

    def hold(self, gate: asyncio.Event | None) -> None:
        """Process requests only once `gate` is set (None: at once), after the strict checks."""
        self._gate = gate

    async def until_held(self, count: int = 1) -> None:
        """Wait until `count` requests wait at the `hold` gate (no polling, no sleeps)."""
        async with self._held_changed:
            await self._held_changed.wait_for(lambda: self.held >= count)

    async def processing(self) -> None:
        """Where a request is executed: waits while `hold` keeps the gate closed."""
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

    def take_fault(self, request: SimulatedRequest) -> Fault | None:
        """The next injected fault for `request`, if any (once it passed the strict checks)."""
        for queued in self._faults:
            if queued.fault.match is None or queued.fault.match(request):
                if queued.remaining is not None:
                    queued.remaining -= 1
                    if queued.remaining <= 0:
                        self._faults.remove(queued)
                return queued.fault
        return None

    # -- the pipeline --------------------------------------------------------------------------

    async def handle(self, request: SimulatedRequest) -> web.StreamResponse:
        """Answer one recorded request: authenticate -> parse -> fault -> replay -> route ->
        remember. Any step may raise `Answered` to answer at once."""
        try:
            self.authenticate(request)
            parsed = await self.parse(request)
            fault = self.take_fault(request)
            if fault is not None and not fault.processed:
                return self.render(fault.answer)
            key = self.replay_key(request)
            stored = self._replays.get(key) if key is not None else None
            if stored is not None:
                if stored.fingerprint != self.fingerprint(request, parsed):
                    raise Answered(self.key_reused(request))
                answer = self.replayed(stored.answer)
            else:
                answer = await self._execute(request, parsed, key)
            if fault is not None:  # processed: the work is done, the answer is the fault
                return self.render(fault.answer)
            return self.render(self.finish(request, answer))
        except Answered as exc:
            return self.render(exc.answer)

    async def _execute(
        self, request: SimulatedRequest, parsed: Any, key: Hashable | None
    ) -> Answer:
        """Route the request once `hold` lets it, and remember its answer under its key."""
        if key is not None:
            if key in self._in_flight:
                busy = self.in_progress(request)
                if busy is not None:
                    raise Answered(busy)
            self._in_flight.add(key)
        try:
            if self.hold_before_route:
                await self.processing()
            answer = await self.route(request, parsed)
            if key is not None and self.remembers(answer):
                self._replays[key] = _Stored(self.fingerprint(request, parsed), answer)
            return answer
        finally:
            if key is not None:
                self._in_flight.discard(key)

    # -- the steps a simulator fills in ----------------------------------------------------------

    def authenticate(self, request: SimulatedRequest) -> None:
        """Raise `Answered` (a 401) unless the request carries valid credentials."""

    async def parse(self, request: SimulatedRequest) -> Any:
        """Check the request is well-formed (else raise `Answered`); return what `route` uses."""
        return None

    def replay_key(self, request: SimulatedRequest) -> Hashable | None:
        """The idempotency key whose first answer a repeat gets again (None: no replay)."""
        return None

    def fingerprint(self, request: SimulatedRequest, parsed: Any) -> str:
        """What a reused key must match (vendors that refuse a key reused for another request)."""
        return ""

    def key_reused(self, request: SimulatedRequest) -> Answer:
        """The answer to a key reused with other parameters."""
        return Answer(400, {"error": {"message": "idempotency key reused"}})

    def in_progress(self, request: SimulatedRequest) -> Answer | None:
        """The answer while the key's first request runs (None: run the duplicate too)."""
        return None

    def replayed(self, answer: Answer) -> Answer:
        """How a remembered answer is sent again."""
        return answer

    def remembers(self, answer: Answer) -> bool:
        """Whether a routed answer is stored under its idempotency key."""
        return True

    async def route(self, request: SimulatedRequest, parsed: Any) -> Answer:
        """Execute the request: the vendor's own behaviour."""
        raise Answered(Answer(404, {"error": {"message": f"no route for {request.path}"}}))

    def finish(self, request: SimulatedRequest, answer: Answer) -> Answer:
        """Adjust a routed or replayed answer before it is sent (vendor headers, `Prefer`)."""
        return answer

    def render(self, answer: Answer) -> web.Response:
        """The HTTP response for `answer` (counted in `by_status`)."""
        self.by_status[answer.status] += 1
        if isinstance(answer.body, bytes):
            return web.Response(status=answer.status, body=answer.body, headers=answer.headers)
        return json_response(answer.status, answer.body, answer.headers)

    # -- recording -----------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        recorded = SimulatedRequest(
            request.method,
            request.path,
            request.query_string,
            CIMultiDictProxy(CIMultiDict(request.headers)),
            await request.read(),
            request.raw_path,
        )
        self.requests.append(recorded)
        if self.on_request is not None:
            self.on_request(recorded)
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
