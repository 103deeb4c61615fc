"""The stub vendor: a minimal HTTP/1.1 keep-alive server in its own process, on 127.0.0.1.

It is a bare `asyncio.Protocol` (on uvloop when installed) rather than an aiohttp app so that it
stays far cheaper per request than any client variant: on a 2-core machine the stub must not be
what limits throughput. Faults (latency, 5xx, 429 with Retry-After, "every request fails from
time T") are set by the parent through a pipe, which also reads its counters: arrivals per
status and per 100 ms bucket, from which the parent computes admitted-per-second.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import random
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["StubHandle", "StubSettings", "start_stub"]

BUCKET = 0.1  # seconds per arrival bucket
_MAX_BUCKETS = 36_000  # one hour of buckets: arrivals after that are only counted in totals
_BODY = b'{"id":"ch_000001","object":"charge","status":"succeeded"}'
_ERR = b'{"error":{"type":"api_error"}}'
_THROTTLED = b'{"error":{"type":"rate_limit_error","code":"rate_limit"}}'


def _response(status: str, body: bytes, extra: str = "") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


_OK = _response("200 OK", _BODY)
_E500 = _response("500 Internal Server Error", _ERR)
_E503 = _response("503 Service Unavailable", _ERR)


@dataclass
class StubSettings:
    """The fault mix: latency range (seconds), 5xx and 429 fractions, and an outage start."""

    latency: tuple[float, float] = (0.0, 0.0)
    error_rate: float = 0.0
    throttle_rate: float = 0.0
    retry_after: float = 1.0
    fail_from: float | None = None  # time.monotonic() from which every request gets 503
    ok_body: bytes | None = None  # the 200 answer's JSON body (None: a Stripe-like charge)


@dataclass
class _Counters:
    started: float = field(default_factory=time.monotonic)
    total: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    buckets: list[int] = field(default_factory=list)
    first: float | None = None
    last: float | None = None
    after_fail: int = 0
    connections: int = 0


class _Stub:
    def __init__(self, settings: StubSettings, seed: int) -> None:
        self.settings = settings
        self.random = random.Random(seed)
        self.counters = _Counters()
        self.configure(settings)

    def configure(self, settings: StubSettings) -> None:
        self.settings = settings
        self._throttle = _response(
            "429 Too Many Requests", _THROTTLED, f"Retry-After: {settings.retry_after:g}\r\n"
        )
        self._ok = _OK if settings.ok_body is None else _response("200 OK", settings.ok_body)

    def reset(self, started: float) -> None:
        self.counters = _Counters(started=started)

    def answer(self) -> tuple[int, bytes]:
        """Pick this request's answer and count its arrival."""
        now = time.monotonic()
        s, c = self.settings, self.counters
        if s.fail_from is not None and now >= s.fail_from:
            status, reply = 503, _E503
            c.after_fail += 1
        else:
            roll = self.random.random() if (s.error_rate or s.throttle_rate) else 1.0
            if roll < s.throttle_rate:
                status, reply = 429, self._throttle
            elif roll < s.throttle_rate + s.error_rate:
                status, reply = 500, _E500
            else:
                status, reply = 200, self._ok
        c.total += 1
        c.by_status[status] = c.by_status.get(status, 0) + 1
        if c.first is None:
            c.first = now
        c.last = now
        index = int((now - c.started) / BUCKET)
        if 0 <= index < _MAX_BUCKETS:
            buckets = c.buckets
            if index >= len(buckets):
                buckets.extend([0] * (index + 1 - len(buckets)))
            buckets[index] += 1
        return status, reply

    def stats(self) -> dict[str, Any]:
        c = self.counters
        return {
            "started": c.started,
            "total": c.total,
            "by_status": dict(c.by_status),
            "buckets": list(c.buckets),
            "bucket_seconds": BUCKET,
            "first": c.first,
            "last": c.last,
            "after_fail": c.after_fail,
            "connections": c.connections,
        }


class _HttpProtocol(asyncio.Protocol):
    """Just enough HTTP/1.1: read a head, skip Content-Length bytes of body, answer."""

    def __init__(self, stub: _Stub) -> None:
        self.stub = stub
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.stub.counters.connections += 1

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            length = 0
            lower = buffer[:end].lower()
            at = lower.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = lower.find(b"\r\n", at + 2)
                length = int(lower[at + 17 : stop if stop >= 0 else end])
            if len(buffer) < end + 4 + length:
                break
            buffer = buffer[end + 4 + length :]
            self._respond()
        self.buffer = buffer

    def _respond(self) -> None:
        _, reply = self.stub.answer()
        low, high = self.stub.settings.latency
        transport = self.transport
        assert transport is not None
        if high > 0:
            delay = low if high <= low else self.stub.random.uniform(low, high)
            asyncio.get_running_loop().call_later(delay, self._write_late, reply)
        else:
            transport.write(reply)

    def _write_late(self, reply: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def _serve(conn: Connection, settings: StubSettings, seed: int) -> None:
    loop = asyncio.get_running_loop()
    stub = _Stub(settings, seed)
    server = await loop.create_server(lambda: _HttpProtocol(stub), "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    done = loop.create_future()

    def on_control() -> None:
        try:
            command, arg = conn.recv()
        except (EOFError, OSError):
            if not done.done():
                done.set_result(None)
            return
        if command == "configure":
            stub.configure(arg)
            conn.send(True)
        elif command == "reset":
            stub.reset(arg if arg is not None else time.monotonic())
            conn.send(True)
        elif command == "stats":
            conn.send(stub.stats())
        elif command == "stop":
            conn.send(True)
            if not done.done():
                done.set_result(None)

    loop.add_reader(conn.fileno(), on_control)
    conn.send(port)
    try:
        await done
    finally:
        loop.remove_reader(conn.fileno())
        server.close()
        await server.wait_closed()


def _stub_main(conn: Connection, settings: StubSettings, seed: int) -> None:
    try:
        import uvloop  # noqa: PLC0415

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        runner.run(_serve(conn, settings, seed))


class StubHandle:
    """The parent's side: the stub's base URL, and a synchronous control channel."""

    def __init__(self, process: multiprocessing.process.BaseProcess, conn: Connection) -> None:
        self.process = process
        self._conn = conn
        if not conn.poll(30):
            raise RuntimeError("the stub vendor did not start within 30 s")
        self.port: int = conn.recv()
        self.base = f"http://127.0.0.1:{self.port}"

    def _ask(self, command: str, arg: Any = None) -> Any:
        self._conn.send((command, arg))
        if not self._conn.poll(10):
            raise RuntimeError(f"the stub vendor did not answer {command!r}")
        return self._conn.recv()

    def configure(self, settings: StubSettings) -> None:
        """Replace the fault mix."""
        self._ask("configure", settings)

    def reset(self, started: float | None = None) -> None:
        """Zero the counters; buckets count from `started` (time.monotonic())."""
        self._ask("reset", started)

    def stats(self) -> dict[str, Any]:
        """Arrivals so far: totals, by status, per 100 ms bucket, after the outage began."""
        result: dict[str, Any] = self._ask("stats")
        return result

    def close(self) -> None:
        """Stop the stub and reap its process."""
        with contextlib.suppress(Exception):
            self._ask("stop")
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self._conn.close()


def start_stub(settings: StubSettings | None = None, seed: int = 7) -> StubHandle:
    """Spawn the stub process and return once it listens."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(
        target=_stub_main, args=(child, settings or StubSettings(), seed), daemon=True
    )
    process.start()
    child.close()
    return StubHandle(process, parent)
