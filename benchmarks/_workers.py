"""Worker processes: each runs one client variant at a time against the stub and measures it.

A worker is a long-lived spawned process that takes jobs from a pipe, so the interleaved rounds
do not pay for a fresh interpreter per measurement. Every job builds its client from scratch (a
new `Connector`, backend and aiohttp session, or a new peer stack) on a fresh event loop (asyncio
or uvloop) and closes it afterwards.

Variants:

- ``raw``: one aiohttp session, GET, read the body: the floor.
- ``nexus-memory`` / ``nexus-redis`` / ``nexus-cluster``: `Connector.execute` on that backend.
- ``peers-memory`` / ``peers-redis``: limits + purgatory + tenacity (see `_peers`).

Redis accounting: redis-py's connection class is wrapped so that each socket send is counted (a
pipelined batch is one send: one round trip) and each command redis-py packs; the library's
batcher packs its own commands, so for the nexus variants commands come from the backend's
`commands` counter. `INFO commandstats` is read from every Redis node at the edges of the
measured window.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.util
import itertools
import json
import logging
import os
import sys
import time
import traceback
import uuid
from array import array
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

__all__ = ["Job", "worker_main"]

# Commands packed and socket sends made by redis-py in this process (see install_redis_counters).
_REDIS_COUNTS = [0, 0]
# The idempotent POST's payload, and the same bytes for raw aiohttp's POST.
POST_PAYLOAD = {"amount": 1999, "currency": "usd", "description": "bench"}
POST_BODY = json.dumps(POST_PAYLOAD, separators=(",", ":")).encode()
# The harness's own INFO reads (its client skips CLIENT SETINFO, so it adds nothing else).
_IGNORED_COMMANDS = frozenset({"cmdstat_info"})


@dataclass
class Job:
    """One measurement for one worker; times are `time.monotonic()` (shared by processes)."""

    kind: str  # "throughput" | "accuracy" | "breaker"
    variant: str
    loop: str  # "asyncio" | "uvloop"
    concurrency: int
    url: str
    service: str
    prefix: str
    redis_url: str | None = None
    cluster: bool = False
    info_urls: list[str] = field(default_factory=list)  # every node, for INFO commandstats
    warmup: float = 0.3
    duration: float = 1.0
    start_at: float | None = None  # wait until then (multi-worker jobs start together)
    limit: int = 1_000_000  # calls per second: far above the load unless measuring accuracy
    burst: int | None = None
    max_wait: float = 0.0
    failure_threshold: int = 5
    recovery_timeout: float = 30.0
    max_attempts: int = 3
    base_delay: float = 0.1
    connections: int = 100


class RawStatusError(Exception):
    """The raw variant's non-2xx answer."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def probe_job(variant: str, url: str, redis_url: str | None, concurrency: int) -> Job:
    """A throughput job for a one-off probe client (`bench_instructions`, `bench_gc`): service
    and key names of its own, so no state of an earlier run is met."""
    tag = uuid.uuid4().hex[:8]
    return Job(
        kind="throughput",
        variant=variant,
        loop="asyncio",
        concurrency=concurrency,
        url=url,
        service=f"vendor{tag}",
        prefix=f"bench{tag}",
        redis_url=redis_url,
    )


async def make_calls(call: Callable[[], Awaitable[Any]], calls: int, concurrency: int) -> int:
    """About `calls` calls from `concurrency` workers, at least one each; how many were made."""
    each = max(1, calls // concurrency)

    async def worker() -> None:
        for _ in range(each):
            await call()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return each * concurrency


def install_redis_counters() -> None:
    """Count commands and round trips (socket sends) of every redis-py asyncio connection."""
    from redis.asyncio import connection  # noqa: PLC0415

    cls = connection.AbstractConnection
    if getattr(cls, "_bench_counted", False):
        return
    pack = cls.pack_command
    send = cls.send_packed_command
    counts = _REDIS_COUNTS

    def pack_command(self: Any, *args: Any) -> Any:
        counts[0] += 1
        return pack(self, *args)

    async def send_packed_command(self: Any, command: Any, check_health: bool = True) -> None:
        counts[1] += 1
        await send(self, command, check_health)

    cls.pack_command = pack_command  # type: ignore[method-assign]
    cls.send_packed_command = send_packed_command  # type: ignore[method-assign]
    cls._bench_counted = True  # type: ignore[attr-defined]


def _commandstats(urls: list[str]) -> dict[str, int]:
    """Calls per command, summed over the nodes (a short blocking read at a window edge)."""
    import redis  # noqa: PLC0415

    total: Counter[str] = Counter()
    for url in urls:
        with redis.Redis.from_url(url, socket_timeout=2, lib_name=None, lib_version=None) as client:
            for name, stats in client.info("commandstats").items():
                total[name] += int(stats["calls"])
    return dict(total)


def _classify(exc: BaseException) -> str:
    from nexus_connector_async import (  # noqa: PLC0415
        CircuitOpenError,
        HttpStatusError,
        RateLimitExceeded,
    )

    from ._peers import PeerCircuitOpen, PeerRateLimited, PeerStatusError  # noqa: PLC0415

    if isinstance(exc, RateLimitExceeded | PeerRateLimited):
        return "rate_limited"
    if isinstance(exc, CircuitOpenError | PeerCircuitOpen):
        return "circuit_open"
    if isinstance(exc, HttpStatusError):
        return f"http_{exc.response.status}"
    if isinstance(exc, PeerStatusError | RawStatusError):
        return f"http_{exc.status}"
    return type(exc).__name__


@contextlib.asynccontextmanager
async def open_client(job: Job) -> AsyncIterator[Callable[[], Awaitable[Any]]]:
    """The variant's "make one call" function, built fresh for this job."""
    base, _, mode = job.variant.partition("+")
    set_up_logging(mode or "default")
    if job.variant in ("raw", "raw-post"):  # raw-post: the idempotent POST's floor, by hand
        import aiohttp  # noqa: PLC0415

        timeout = aiohttp.ClientTimeout(total=10.0, sock_connect=5.0)
        keys = itertools.count()
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=job.connections),
            skip_auto_headers=("User-Agent",),
        ) as session:

            async def raw_call() -> bytes:
                async with session.get(job.url, timeout=timeout) as resp:
                    body = await resp.read()
                    if resp.status >= 400:
                        raise RawStatusError(resp.status)
                    return body

            async def raw_post() -> bytes:
                headers = {
                    "Content-Type": "application/json",
                    "Idempotency-Key": f"{job.prefix}:{os.getpid()}:{next(keys)}",
                }
                async with session.post(
                    job.url, data=POST_BODY, headers=headers, timeout=timeout
                ) as resp:
                    body = await resp.read()
                    if resp.status >= 400:
                        raise RawStatusError(resp.status)
                    return body

            yield raw_call if job.variant == "raw" else raw_post
        return
    if job.variant.startswith("peers-"):
        from ._peers import PeerStack  # noqa: PLC0415

        stack = PeerStack(
            job.url,
            job.service,
            redis_url=job.redis_url if job.variant == "peers-redis" else None,
            limit_per_second=job.limit,
            failure_threshold=job.failure_threshold,
            recovery_timeout=job.recovery_timeout,
            max_attempts=job.max_attempts,
            base_delay=job.base_delay,
            connections=job.connections,
        )
        async with stack:
            yield stack.call
        return
    from nexus_connector_async import (  # noqa: PLC0415
        CircuitBreakerConfig,
        Connector,
        Endpoint,
        IdempotencyKey,
        MemoryBackend,
        RateLimitConfig,
        RetryPolicy,
        Timeouts,
    )

    backend: Any
    if base == "nexus-memory":
        backend = MemoryBackend()
    elif base in ("nexus-redis", "nexus-redis-idem", "nexus-cluster"):
        from nexus_connector_async.backends.redis import RedisBackend  # noqa: PLC0415

        assert job.redis_url is not None
        backend = RedisBackend.from_url(
            job.redis_url, cluster=base == "nexus-cluster", prefix=job.prefix
        )
    else:
        raise ValueError(f"unknown variant {job.variant!r}")
    keys = itertools.count()
    keyed = base == "nexus-redis-idem"  # an idempotent POST: claim + admission, then the result
    endpoint = (
        Endpoint.create(
            job.url,
            "POST" if keyed else "GET",
            idempotency_header="Idempotency-Key" if keyed else None,
        )
        .with_timeout(Timeouts(total=10.0, connect=5.0))
        .with_rate_limit(RateLimitConfig.per_second(job.limit, job.burst, max_wait=job.max_wait))
        .with_circuit_breaker(
            CircuitBreakerConfig(
                failure_threshold=job.failure_threshold, recovery_timeout=job.recovery_timeout
            )
        )
        .with_retry(RetryPolicy(max_attempts=job.max_attempts, base_delay=job.base_delay))
    )
    async with Connector(backend=backend) as connector:

        def nexus_call() -> Awaitable[Any]:
            if keyed:
                key = IdempotencyKey(f"{job.prefix}:{os.getpid()}:{next(keys)}")
                return connector.execute(job.service, endpoint, POST_PAYLOAD, idempotency_key=key)
            return connector.execute(job.service, endpoint)

        nexus_call.backend = backend if hasattr(backend, "commands") else None  # type: ignore[attr-defined]
        yield nexus_call


class _Window:
    """What happens inside the measured window: latencies, outcomes, CPU and Redis counts."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.measuring = False
        self.stop = False
        self.latencies_us = array("q")
        self.outcomes: Counter[str] = Counter()
        self.first_open: float | None = None
        self._start: dict[str, Any] = {}
        self.result: dict[str, Any] = {}
        self.backend: Any = None  # a RedisBackend, whose own counters we read

    def _redis_counts(self) -> list[int]:
        commands, sends = _REDIS_COUNTS
        if self.backend is not None:
            commands = self.backend.commands
        return [commands, sends]

    def _snapshot(self) -> dict[str, Any]:
        return {
            "wall": time.perf_counter(),
            "cpu": time.process_time(),
            "redis": self._redis_counts(),
            "info": _commandstats(self.job.info_urls) if self.job.info_urls else {},
        }

    def begin(self) -> None:
        self._start = self._snapshot()
        self.measuring = True

    def end(self) -> None:
        if self.result:
            return  # already closed (a multi-worker job may stop before its timer fires)
        self.measuring = False
        self.stop = True
        snap = self._snapshot()
        start = self._start
        calls = sum(self.outcomes.values())
        elapsed = snap["wall"] - start["wall"]
        info_delta = {
            name: n - start["info"].get(name, 0)
            for name, n in snap["info"].items()
            if name not in _IGNORED_COMMANDS and n - start["info"].get(name, 0) > 0
        }
        self.result = {
            "calls": calls,
            "elapsed": elapsed,
            "calls_per_s": calls / elapsed if elapsed > 0 else 0.0,
            "cpu_s": snap["cpu"] - start["cpu"],
            "outcomes": dict(self.outcomes),
            "client_commands": snap["redis"][0] - start["redis"][0],
            "client_round_trips": snap["redis"][1] - start["redis"][1],
            "commandstats": info_delta,
        }


async def _run_calls(job: Job, call: Callable[[], Awaitable[Any]], window: _Window) -> None:
    """`job.concurrency` tasks calling in a loop until the window closes (bounded in time)."""
    loop = asyncio.get_running_loop()
    hard_stop = loop.time() + job.warmup + job.duration + 30.0
    stop_on_open = job.kind == "breaker"
    perf_ns = time.perf_counter_ns
    latencies = window.latencies_us
    outcomes = window.outcomes

    async def one_task() -> None:
        while not window.stop and loop.time() < hard_stop:
            began = perf_ns()
            try:
                await call()
                kind = "ok"
            except Exception as exc:
                kind = _classify(exc)
            if window.measuring:
                latencies.append((perf_ns() - began) // 1000)
                outcomes[kind] += 1
            if kind == "circuit_open" and stop_on_open:
                if window.first_open is None:
                    window.first_open = time.monotonic()
                window.stop = True
            elif kind == "rate_limited":
                await asyncio.sleep(0.01)  # both stacks back off alike when refused

    tasks = [asyncio.ensure_future(one_task()) for _ in range(job.concurrency)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _run_job(job: Job) -> dict[str, Any]:
    window = _Window(job)
    loop = asyncio.get_running_loop()
    async with open_client(job) as call:
        window.backend = getattr(call, "backend", None)
        if job.start_at is not None:
            await asyncio.sleep(max(0.0, job.start_at - time.monotonic()))
        if job.kind == "throughput":
            loop.call_later(job.warmup, window.begin)
            loop.call_later(job.warmup + job.duration, window.end)
        else:  # multi-worker jobs measure from the common start
            window.begin()
            loop.call_later(job.duration, window.end)
        await _run_calls(job, call, window)
        window.end()
    result = window.result
    result["first_open"] = window.first_open
    result["latency_hist"] = _encode_latencies(window.latencies_us)
    result["pid"] = os.getpid()
    return result


def _encode_latencies(values: array[int]) -> str:
    """An HDR histogram (1 us .. 60 s, 3 significant digits), encoded for the parent."""
    from hdrh.histogram import HdrHistogram  # noqa: PLC0415

    hist = HdrHistogram(1, 60_000_000, 3)
    for value in values:
        hist.record_value(max(1, min(value, 60_000_000)))
    encoded: bytes = hist.encode()
    return encoded.decode()


def run_job(job: Job) -> dict[str, Any]:
    """Run one job on a fresh event loop of the job's kind."""
    factory = None
    if job.loop == "uvloop":
        import uvloop  # noqa: PLC0415

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_run_job(job))


_DEVNULL: list[Any] = []


def _json_recipe() -> Any:
    """docs/operations.md's JSON audit-log recipe, imported from the file the docs include."""
    path = Path(__file__).resolve().parent.parent / "docs" / "examples" / "json_audit_log.py"
    spec = importlib.util.spec_from_file_location("bench_json_audit_log", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def set_up_logging(mode: str) -> None:
    """One of the benchmarked logging set-ups, for everything this process logs from now on.

    default: what a new user gets (structlog not configured: stdlib logging, silent);
    warn: structlog filtered at WARNING; json: the JSON audit-log recipe, one line per call,
    written to /dev/null (the encoding is measured, not the disk).
    """
    import structlog  # noqa: PLC0415

    structlog.reset_defaults()
    logging.getLogger().setLevel(logging.WARNING)
    if mode == "warn":
        structlog.configure(
            wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
            logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        )
    elif mode == "json":
        if not _DEVNULL:
            _DEVNULL.append(open(os.devnull, "wb"))  # noqa: SIM115 - lives as long as the worker
        _json_recipe().configure_json_audit_log(_DEVNULL[0])
    elif mode != "default":
        raise ValueError(f"unknown logging set-up {mode!r}")


def worker_main(conn: Connection, index: int) -> None:
    """Process entry point: take jobs until None, answer each with its result (or error)."""
    set_up_logging("default")
    install_redis_counters()
    # Import what every variant needs up front, so the first job does not pay for it.
    import aiohttp  # noqa: F401, PLC0415

    import nexus_connector_async  # noqa: F401, PLC0415

    conn.send(("ready", index))
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        try:
            result: Any = run_job(job)
        except Exception:
            result = {"error": traceback.format_exc()}
        gc.collect()
        conn.send(result)
