"""Scale curves: how each cost of the pipeline grows, beside raw aiohttp against the same stub.

    python -m benchmarks.bench_scale [--quick] [--save] [--phases ...] [--profile]
    python -m benchmarks scale [...]          (the same, through the harness)

The stub vendor (`_stub`, a bare asyncio server) runs in its own process and a private
`redis-server` is started unless `--redis-url` is given. Every measurement runs in a spawned
worker process with structlog filtered to WARNING (`_workers.set_up_logging("warn")`), builds its
client from scratch, warms up, then measures a window. Phases (`--phases`, default all):

- **concurrency**: calls/s and p50/p99 at 1 / 10 / 100 / 1,000 in-flight calls: raw aiohttp, the
  connector on `MemoryBackend` and on `RedisBackend` (GET, retries, breaker, a limit far above
  the load).
- **services**: Redis, calls spread round robin over 1 / 10 / 100 services (each its own breaker
  and bucket keys, so per-service batching has less to coalesce).
- **tenants**: Redis, one service, `RateLimitConfig(..., scope="tenant")`, calls spread round
  robin over 1 / 1,000 / 100,000 tenants (every call to a tenant not seen yet creates a bucket).
  Redis memory per tenant from `INFO memory` (used_memory delta / tenant keys) and `MEMORY USAGE`
  of sampled keys; then the idle TTL of the keys (PTTL), the key count after it has passed, and
  the time until every tenant key is gone and used_memory is back near its baseline.
- **fleet**: 1 to 4 worker processes on one Redis and one shared service, started together:
  fleet calls/s (sum over workers) and Redis CPU (`INFO cpu` deltas over the common window), next
  to as many raw aiohttp processes.
- **bulk**: `TwilioSmsAdapter.send_bulk` (memory and Redis backends) against raw aiohttp POSTing
  the same form bodies with the same Basic auth at the same concurrency; the stub answers with a
  Twilio message resource.
- **monitor**: Redis commands the client sends per call, counted with `MONITOR` between two
  `ECHO` markers (plain GET and idempotent POST, at 1 and 100 in-flight calls), the commands
  scripts run inside Redis, and the backend's round trips per call.
- **slots**: the cost of a fleet-wide `ConcurrencyLimit` (api.md 26) on Redis: the plain GET
  beside the same GET with a limit far above the load (fixed, and adaptive), and with a limit
  of half the load (callers wait for slots), at 1 and 100 in flight, in interleaved rounds
  (median calls/s, ratio to the plain Redis call); then the MONITOR count of the plain and
  the limited GET.

`--profile` adds a cProfile of the Redis hot path (100 in-flight GETs, in this process) and
prints the top functions by own time (`scale_profile.txt`). pyinstrument is not used: it is not
in the bench environment.

Results: `scale.json`, `scale.md` and `scale_*.png` in `benchmarks/results/latest/` (`--save`:
`benchmarks/results/`, the committed folder; `--out DIR` anywhere).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import cProfile
import io
import itertools
import json
import logging
import multiprocessing
import os
import platform
import pstats
import random
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ._stub import StubHandle, StubSettings, start_stub

__all__ = ["Options", "main", "parse_args", "run"]

_ROOT = Path(__file__).resolve().parent.parent
SAVED = _ROOT / "benchmarks" / "results"
LATEST = SAVED / "latest"
PHASES = ("concurrency", "services", "tenants", "fleet", "bulk", "monitor", "slots")
#: A limit far above any load: the bucket is consulted on every call but never refuses.
_UNLIMITED = 1e9
SID = "AC" + "0" * 32
TOKEN = "bench-token"
FROM = "+14155550100"
_TWILIO_BODY = json.dumps(
    {
        "sid": "SM" + "0" * 32,
        "status": "queued",
        "to": "+14155550199",
        "from": FROM,
        "body": "Your code is 000000",
        "num_segments": "1",
        "num_media": "0",
        "price": None,
        "price_unit": "USD",
        "error_code": None,
        "error_message": None,
        "date_created": "Thu, 26 Nov 2026 12:00:00 +0000",
    }
).encode()


@dataclass(frozen=True)
class Options:
    """Everything a run needs, after --quick defaults are filled in."""

    phases: tuple[str, ...]
    concurrency: tuple[int, ...]
    services: tuple[int, ...]
    tenants: tuple[int, ...]
    fleet: tuple[int, ...]
    bulk_messages: int
    bulk_concurrency: int
    monitor_calls: int
    slot_rounds: int
    warmup: float
    duration: float
    profile: bool
    profile_calls: int
    plots: bool
    redis_url: str | None
    out: Path
    seed: int
    quick: bool


def build_parser() -> argparse.ArgumentParser:
    """The `python -m benchmarks.bench_scale` command line."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_scale",
        description="Scale curves of nexus_connector_async beside raw aiohttp (JSON, md, PNGs).",
    )
    p.add_argument("--quick", action="store_true", help="a smoke run of well under a minute")
    p.add_argument("--phases", default=None, help=f"{','.join(PHASES)} (default: all)")
    p.add_argument("--concurrency", default=None, help="in-flight calls, e.g. 1,10,100,1000")
    p.add_argument("--services", default=None, help="services, e.g. 1,10,100")
    p.add_argument("--tenants", default=None, help="tenants, e.g. 1,1000,100000")
    p.add_argument("--fleet", default=None, help="worker processes, e.g. 1,2,3,4")
    p.add_argument("--bulk-messages", type=int, default=None, help="messages per bulk run")
    p.add_argument("--bulk-concurrency", type=int, default=50)
    p.add_argument("--monitor-calls", type=int, default=None, help="calls per MONITOR count")
    p.add_argument("--slot-rounds", type=int, default=None, help="interleaved rounds (slots)")
    p.add_argument("--warmup", type=float, default=None, help="seconds before each window")
    p.add_argument("--duration", type=float, default=None, help="seconds per window")
    p.add_argument("--profile", action="store_true", help="cProfile the Redis hot path")
    p.add_argument("--profile-calls", type=int, default=None)
    p.add_argument("--no-plots", action="store_true", help="skip the PNGs")
    p.add_argument("--redis-url", default=None, help="use this Redis instead of starting one")
    p.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/latest/")
    p.add_argument("--save", action="store_true", help="write to benchmarks/results/")
    p.add_argument("--seed", type=int, default=1)
    return p


def _ints(text: str | None, default: tuple[int, ...]) -> tuple[int, ...]:
    if not text:
        return default
    return tuple(int(p) for p in text.split(",") if p.strip())


def parse_args(argv: Sequence[str] | None = None) -> Options:
    """Parse the command line and fill in the defaults of a full or --quick run."""
    a = build_parser().parse_args(argv)
    q = a.quick
    phases = tuple(p.strip() for p in a.phases.split(",") if p.strip()) if a.phases else PHASES
    for name in phases:
        if name not in PHASES:
            raise SystemExit(f"unknown phase {name!r}; choose from {', '.join(PHASES)}")
    if a.out is not None and a.save:
        raise SystemExit("--out and --save: choose one")
    return Options(
        phases=phases,
        concurrency=_ints(a.concurrency, (1, 10, 100, 1000)),
        services=_ints(a.services, (1, 10, 100)),
        tenants=_ints(a.tenants, (1, 1000, 100_000)),
        fleet=_ints(a.fleet, (1, 2) if q else (1, 2, 3, 4)),
        bulk_messages=a.bulk_messages or (300 if q else 20_000),
        bulk_concurrency=a.bulk_concurrency,
        monitor_calls=a.monitor_calls or (20 if q else 200),
        slot_rounds=a.slot_rounds or (2 if q else 5),
        warmup=a.warmup if a.warmup is not None else (0.15 if q else 0.5),
        duration=a.duration if a.duration is not None else (0.4 if q else 3.0),
        profile=a.profile,
        profile_calls=a.profile_calls or (1000 if q else 20_000),
        plots=not a.no_plots,
        redis_url=a.redis_url,
        out=a.out if a.out is not None else (SAVED if a.save else LATEST),
        seed=a.seed,
        quick=q,
    )


# -- the worker side -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CallJob:
    """One measured window of one client variant: "raw", "memory" or "redis"."""

    variant: str
    concurrency: int
    url: str
    prefix: str
    redis_url: str | None = None
    services: int = 1
    tenants: int = 0  # 0: no tenant and a per-service limit; N: scope="tenant", N tenants
    slots: int = 0  # 0: no concurrency limit; N: ConcurrencyLimit(N, max_wait=30)
    adaptive: bool = False  # the concurrency limit is adaptive (AIMD)
    warmup: float = 0.3
    duration: float = 1.0
    start_at: float | None = None  # time.monotonic() to start at (fleet jobs start together)
    seed: int = 1


@dataclass(frozen=True)
class BulkJob:
    """One bulk SMS run: "raw", "memory" or "redis" (the adapter's `send_bulk`)."""

    variant: str
    base: str
    messages: int
    concurrency: int
    prefix: str
    redis_url: str | None = None


def _percentile(sorted_ns: list[int], q: float) -> float | None:
    if not sorted_ns:
        return None
    return sorted_ns[min(len(sorted_ns) - 1, int(q * (len(sorted_ns) - 1)))] / 1e6


def _endpoint(
    url: str, *, tenant_scope: bool, method: str = "GET", slots: int = 0, adaptive: bool = False
) -> Any:
    from nexus_connector_async import (  # noqa: PLC0415
        CircuitBreakerConfig,
        ConcurrencyLimit,
        Endpoint,
        RateLimitConfig,
        RetryPolicy,
        Timeouts,
    )

    scope = "tenant" if tenant_scope else "service"
    endpoint = (
        Endpoint.create(url, method)
        .with_timeout(Timeouts(total=10.0, connect=5.0))
        .with_rate_limit(RateLimitConfig.per_second(_UNLIMITED, scope=scope))
        .with_circuit_breaker(CircuitBreakerConfig(failure_threshold=5, recovery_timeout=30.0))
        .with_retry(RetryPolicy(max_attempts=3, base_delay=0.1))
    )
    if slots:
        limit = ConcurrencyLimit(slots, max_wait=30.0, adaptive=adaptive)
        endpoint = endpoint.with_concurrency_limit(limit)
    return endpoint


def _backend(variant: str, redis_url: str | None, prefix: str) -> Any:
    from nexus_connector_async import MemoryBackend  # noqa: PLC0415

    if variant == "memory":
        return MemoryBackend()
    if variant == "redis":
        from nexus_connector_async.backends.redis import RedisBackend  # noqa: PLC0415

        assert redis_url is not None
        return RedisBackend.from_url(redis_url, prefix=prefix)
    raise ValueError(f"unknown variant {variant!r}")


@contextlib.asynccontextmanager
async def _caller(job: CallJob) -> AsyncIterator[tuple[Callable[[int], Awaitable[Any]], Any]]:
    """`call(i)` for the variant (call i: service i % S, tenant i % T) and its backend."""
    import aiohttp  # noqa: PLC0415

    if job.variant == "raw":
        timeout = aiohttp.ClientTimeout(total=10.0, sock_connect=5.0)
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=100), skip_auto_headers=("User-Agent",)
        ) as session:

            async def raw_call(_: int) -> bytes:
                async with session.get(job.url, timeout=timeout) as resp:
                    body = await resp.read()
                    resp.raise_for_status()
                    return body

            yield raw_call, None
        return
    from nexus_connector_async import Connector  # noqa: PLC0415

    backend = _backend(job.variant, job.redis_url, job.prefix)
    endpoint = _endpoint(
        job.url, tenant_scope=job.tenants > 0, slots=job.slots, adaptive=job.adaptive
    )
    services = [f"svc{i}" for i in range(job.services)]
    tenants = job.tenants
    async with Connector(backend=backend) as connector:
        if len(services) == 1 and not tenants:
            name = services[0]

            def one(i: int) -> Awaitable[Any]:
                return connector.execute(name, endpoint)

        else:
            n = len(services)

            def one(i: int) -> Awaitable[Any]:
                tenant = f"t{i % tenants}" if tenants else None
                return connector.execute(services[i % n], endpoint, tenant_id=tenant)

        yield one, backend


async def _measure(job: CallJob) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    latencies: list[int] = []
    outcomes: Counter[str] = Counter()
    state = {"measuring": False, "stop": False}
    snaps: dict[str, tuple[float, float, int, int]] = {}
    async with _caller(job) as (call, backend):
        await call(0)  # connections open and scripts loaded before anything is timed

        def snap() -> tuple[float, float, int, int]:
            commands = getattr(backend, "commands", 0) if backend is not None else 0
            trips = getattr(backend, "round_trips", 0) if backend is not None else 0
            return time.perf_counter(), time.process_time(), commands, trips

        def begin() -> None:
            snaps["begin"] = snap()
            state["measuring"] = True

        def end() -> None:
            if "end" not in snaps:
                snaps["end"] = snap()
            state["measuring"] = False
            state["stop"] = True

        if job.start_at is not None:
            await asyncio.sleep(max(0.0, job.start_at - time.monotonic()))
        counter = itertools.count(random.Random(job.seed).randrange(1 << 20))
        perf_ns = time.perf_counter_ns
        hard_stop = loop.time() + job.warmup + job.duration + 30.0

        async def task() -> None:
            while not state["stop"] and loop.time() < hard_stop:
                began = perf_ns()
                try:
                    await call(next(counter))
                    kind = "ok"
                except Exception as exc:
                    kind = type(exc).__name__
                if state["measuring"]:
                    latencies.append(perf_ns() - began)
                    outcomes[kind] += 1
                if kind != "ok":
                    await asyncio.sleep(0.01)

        loop.call_later(job.warmup, begin)
        loop.call_later(job.warmup + job.duration, end)
        tasks = [asyncio.ensure_future(task()) for _ in range(job.concurrency)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        end()
        total_calls = next(counter)
    b, e = snaps["begin"], snaps["end"]
    calls = sum(outcomes.values())
    elapsed = e[0] - b[0]
    latencies.sort()
    return {
        "calls": calls,
        "elapsed_s": round(elapsed, 4),
        "calls_per_s": round(calls / elapsed, 1) if elapsed > 0 else 0.0,
        "p50_ms": _percentile(latencies, 0.50),
        "p99_ms": _percentile(latencies, 0.99),
        "cpu_us_per_call": round((e[1] - b[1]) / calls * 1e6, 1) if calls else None,
        "client_commands_per_call": round((e[2] - b[2]) / calls, 3) if calls else None,
        "round_trips_per_call": round((e[3] - b[3]) / calls, 3) if calls else None,
        "outcomes": dict(outcomes),
        "calls_started_total": total_calls,
    }


def _sms_messages(n: int) -> Iterator[tuple[str, str]]:
    for i in range(n):
        yield f"+1415555{i % 10000:04d}", f"Your code is {i:06d}"


async def _bulk(job: BulkJob) -> dict[str, Any]:
    import aiohttp  # noqa: PLC0415

    cpu0 = time.process_time()
    if job.variant == "raw":
        url = f"{job.base}/2010-04-01/Accounts/{SID}/Messages.json"
        auth = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode("ascii")
        headers = {"Authorization": auth}
        failed = 0
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=100), skip_auto_headers=("User-Agent",)
        ) as session:
            messages = _sms_messages(job.messages)

            async def sender() -> None:
                nonlocal failed
                for to, body in messages:
                    form = {"To": to, "From": FROM, "Body": body}
                    try:
                        async with session.post(url, data=form, headers=headers) as resp:
                            json.loads(await resp.read())
                            failed += resp.status >= 400
                    except (aiohttp.ClientError, ValueError):
                        failed += 1

            started = time.perf_counter()
            await asyncio.gather(*(sender() for _ in range(job.concurrency)))
            elapsed = time.perf_counter() - started
    else:
        from nexus_connector_async import Connector  # noqa: PLC0415
        from nexus_connector_async.adapters import TwilioSmsAdapter  # noqa: PLC0415

        backend = _backend(job.variant, job.redis_url, job.prefix)
        async with Connector(backend=backend) as connector:
            adapter = TwilioSmsAdapter(connector, SID, TOKEN, FROM, base_url=job.base)
            await adapter.send("+14155550199", "warm-up")
            started = time.perf_counter()
            results = await adapter.send_bulk(
                _sms_messages(job.messages), concurrency=job.concurrency
            )
            elapsed = time.perf_counter() - started
            failed = sum(r.error is not None for r in results)
    cpu = time.process_time() - cpu0
    return {
        "variant": job.variant,
        "messages": job.messages,
        "concurrency": job.concurrency,
        "failed": failed,
        "seconds": round(elapsed, 3),
        "messages_per_s": round(job.messages / elapsed, 1),
        "cpu_us_per_message": round(cpu / job.messages * 1e6, 1),
    }


def _worker_main(conn: Connection, index: int) -> None:
    """Process entry point: run jobs until None; answer each with its result (or an error)."""
    from ._workers import set_up_logging  # noqa: PLC0415

    set_up_logging("warn")
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
            coro = _bulk(job) if isinstance(job, BulkJob) else _measure(job)
            result: Any = asyncio.run(coro)
        except Exception:
            result = {"error": traceback.format_exc()}
        conn.send(result)


class _Pool:
    """N spawned worker processes; job i goes to worker i."""

    def __init__(self, count: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs: list[Any] = []
        for index in range(count):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker_main, args=(child, index), daemon=True)
            proc.start()
            child.close()
            self.pipes.append(parent)
            self.procs.append(proc)
        for pipe in self.pipes:
            if not pipe.poll(60):
                raise RuntimeError("a scale worker did not start within 60 s")
            pipe.recv()

    def run(self, jobs: Sequence[CallJob | BulkJob], timeout: float) -> list[dict[str, Any]]:
        for pipe, job in zip(self.pipes, jobs, strict=False):
            pipe.send(job)
        deadline = time.monotonic() + timeout
        out = []
        for pipe, job in zip(self.pipes, jobs, strict=False):
            if not pipe.poll(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"a worker did not finish {job.variant} in time")
            result = pipe.recv()
            if "error" in result:
                raise RuntimeError(f"{job.variant} failed:\n{result['error']}")
            out.append(result)
        return out

    def one(self, job: CallJob | BulkJob, timeout: float = 120.0) -> dict[str, Any]:
        (result,) = self.run([job], timeout)
        return result

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(Exception):
                pipe.send(None)
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join(5)


# -- the parent side -----------------------------------------------------------------------------


def _sync_redis(url: str) -> Any:
    import redis  # noqa: PLC0415

    # No CLIENT SETINFO on connect: the MONITOR counts must only see the library's commands.
    return redis.Redis.from_url(url, socket_timeout=5, lib_name=None, lib_version=None)


def _redis_cpu(url: str) -> float:
    with _sync_redis(url) as r:
        info = r.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def _used_memory(url: str) -> int:
    with _sync_redis(url) as r:
        return int(r.info("memory")["used_memory"])


def _keys(url: str, prefix: str) -> list[bytes]:
    with _sync_redis(url) as r:
        return list(r.scan_iter(match=f"{prefix}:*", count=1000))


@dataclass
class _Ctx:
    opts: Options
    stub: StubHandle
    pool: _Pool
    redis_url: str
    log: list[str] = field(default_factory=list)

    def job(self, variant: str, **kw: Any) -> CallJob:
        tag = uuid.uuid4().hex[:8]
        base = CallJob(
            variant=variant,
            concurrency=100,
            url=f"{self.stub.base}/v1/charges/ch_1",
            prefix=f"scale{tag}",
            redis_url=self.redis_url if variant == "redis" else None,
            warmup=self.opts.warmup,
            duration=self.opts.duration,
            seed=self.opts.seed,
        )
        return replace(base, **kw)

    def step(self, label: str) -> None:
        print(f"  {label}", file=sys.stderr, flush=True)


def _with_ratio(row: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
    row["raw_calls_per_s"] = raw["calls_per_s"]
    row["raw_p99_ms"] = raw["p99_ms"]
    row["ratio_to_raw"] = round(row["calls_per_s"] / raw["calls_per_s"], 3) if raw else None
    return row


def _phase_concurrency(ctx: _Ctx) -> list[dict[str, Any]]:
    rows = []
    for conc in ctx.opts.concurrency:
        raw = ctx.pool.one(ctx.job("raw", concurrency=conc))
        rows.append({"variant": "raw", "concurrency": conc, **raw, "ratio_to_raw": 1.0})
        for variant in ("memory", "redis"):
            result = ctx.pool.one(ctx.job(variant, concurrency=conc))
            rows.append(_with_ratio({"variant": variant, "concurrency": conc, **result}, raw))
        ctx.step(f"concurrency {conc}")
    return rows


def _phase_services(ctx: _Ctx) -> list[dict[str, Any]]:
    rows = []
    for n in ctx.opts.services:
        raw = ctx.pool.one(ctx.job("raw"))
        result = ctx.pool.one(ctx.job("redis", services=n))
        rows.append(_with_ratio({"variant": "redis", "services": n, **result}, raw))
        ctx.step(f"services {n}")
    return rows


def _wait_for_expiry(url: str, prefix: str, deadline_s: float) -> float | None:
    """Seconds until no key of `prefix` is left (None if some outlive `deadline_s`)."""
    began = time.monotonic()
    while time.monotonic() - began < deadline_s:
        if not _keys(url, prefix):
            return round(time.monotonic() - began, 2)
        time.sleep(0.1)
    return None


def _phase_tenants(ctx: _Ctx) -> list[dict[str, Any]]:
    rows = []
    url = ctx.redis_url
    for n in ctx.opts.tenants:
        raw = ctx.pool.one(ctx.job("raw"))
        job = ctx.job("redis", tenants=n)
        mem0 = _used_memory(url)
        result = ctx.pool.one(job)
        mem1 = _used_memory(url)
        keys = _keys(url, job.prefix)
        tenant_keys = [k for k in keys if b":tbucket:" in k] or keys
        with _sync_redis(url) as r:
            sample = random.Random(ctx.opts.seed).sample(tenant_keys, min(200, len(tenant_keys)))
            usage = [int(r.memory_usage(k, samples=0) or 0) for k in sample]
            pttl = [int(r.pttl(k)) for k in sample]
        idle_ttl_s = max((p for p in pttl if p > 0), default=0) / 1000.0
        # The TTL counts from the last call; wait it out (plus the scan's own time), then count.
        time.sleep(idle_ttl_s + 0.3)
        wanted = set(tenant_keys)
        left_after_ttl = sum(k in wanted for k in _keys(url, job.prefix))
        gone_in = _wait_for_expiry(url, job.prefix, 10.0)
        mem2 = _used_memory(url)
        row = _with_ratio({"variant": "redis", "tenants": n, **result}, raw)
        row.update(
            tenants_touched=min(n, result["calls_started_total"]),
            tenant_keys=len(tenant_keys),
            keys=len(keys),
            used_memory_delta_bytes=mem1 - mem0,
            bytes_per_tenant_info=round((mem1 - mem0) / len(tenant_keys), 1)
            if tenant_keys
            else None,
            bytes_per_tenant_memory_usage=round(sum(usage) / len(usage), 1) if usage else None,
            idle_ttl_s=idle_ttl_s,
            tenant_keys_after_idle_ttl=left_after_ttl,
            all_keys_gone_after_s=None if gone_in is None else round(idle_ttl_s + 0.3 + gone_in, 2),
            used_memory_after_expiry_delta_bytes=mem2 - mem0,
        )
        rows.append(row)
        ctx.step(f"tenants {n}: {len(tenant_keys)} keys, {left_after_ttl} left after idle TTL")
    return rows


def _phase_fleet(ctx: _Ctx) -> list[dict[str, Any]]:
    rows = []
    url = ctx.redis_url
    for n in ctx.opts.fleet:
        for variant in ("raw", "redis"):
            start_at = time.monotonic() + 1.0
            base = ctx.job(variant, start_at=start_at)  # one prefix: one shared service
            jobs = [replace(base, seed=ctx.opts.seed + i) for i in range(n)]
            cpu: list[float] = []

            def sample(at: float, base_job: CallJob = base, cpu: list[float] = cpu) -> None:
                time.sleep(max(0.0, at - time.monotonic()))
                cpu.append(_redis_cpu(url))
                time.sleep(max(0.0, at + base_job.duration - time.monotonic()))
                cpu.append(_redis_cpu(url))

            # The workers warm up from start_at; the window opens warmup later in each of them.
            sampler = threading.Thread(target=sample, args=(start_at + base.warmup,), daemon=True)
            sampler.start()
            results = ctx.pool.run(jobs, timeout=base.warmup + base.duration + 120)
            sampler.join(30)
            calls = sum(r["calls"] for r in results)
            window = base.duration
            redis_cpu = cpu[1] - cpu[0] if len(cpu) == 2 else None
            rows.append(
                {
                    "variant": variant,
                    "workers": n,
                    "fleet_calls_per_s": round(sum(r["calls_per_s"] for r in results), 1),
                    "per_worker_calls_per_s": [r["calls_per_s"] for r in results],
                    "p99_ms_max": max((r["p99_ms"] or 0) for r in results),
                    "redis_cpu_s": None if redis_cpu is None else round(redis_cpu, 4),
                    "redis_cpu_pct_of_core": None
                    if redis_cpu is None
                    else round(redis_cpu / window * 100, 1),
                    "redis_cpu_us_per_call": round(redis_cpu / calls * 1e6, 2)
                    if redis_cpu is not None and calls and variant == "redis"
                    else None,
                }
            )
        raw_row, redis_row = rows[-2], rows[-1]
        if raw_row["fleet_calls_per_s"]:
            redis_row["ratio_to_raw"] = round(
                redis_row["fleet_calls_per_s"] / raw_row["fleet_calls_per_s"], 3
            )
        ctx.step(f"fleet {n} workers")
    return rows


def _phase_bulk(ctx: _Ctx) -> list[dict[str, Any]]:
    ctx.stub.configure(StubSettings(ok_body=_TWILIO_BODY))
    try:
        rows = []
        for variant in ("raw", "memory", "redis"):
            tag = uuid.uuid4().hex[:8]
            job = BulkJob(
                variant=variant,
                base=ctx.stub.base,
                messages=ctx.opts.bulk_messages,
                concurrency=ctx.opts.bulk_concurrency,
                prefix=f"scale{tag}",
                redis_url=ctx.redis_url if variant == "redis" else None,
            )
            rows.append(ctx.pool.one(job, timeout=600))
        raw = rows[0]["messages_per_s"]
        for row in rows:
            row["ratio_to_raw"] = round(row["messages_per_s"] / raw, 3) if raw else None
        ctx.step("bulk sms")
        return rows
    finally:
        ctx.stub.configure(StubSettings())


class _Monitor:
    """MONITOR on its own connection, in a thread: records every command between two markers."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.marker = f"nexus-scale-{uuid.uuid4().hex}"
        self.events: list[dict[str, Any]] = []
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._error: BaseException | None = None

    def _listen(self) -> None:
        try:
            with _sync_redis(self.url) as r, r.monitor() as m:
                self._ready.set()
                inside = False
                for event in m.listen():
                    command = event["command"]
                    if command == f"ECHO {self.marker}-begin":
                        inside = True
                    elif command == f"ECHO {self.marker}-end":
                        return
                    elif inside:
                        self.events.append(event)
        except BaseException as exc:  # reported by the caller
            self._error = exc
            self._ready.set()

    def __enter__(self) -> _Monitor:
        self._thread.start()
        if not self._ready.wait(10) or self._error is not None:
            raise RuntimeError(f"MONITOR did not start: {self._error!r}")
        with _sync_redis(self.url) as r:
            r.echo(f"{self.marker}-begin")
        return self

    def __exit__(self, *exc: object) -> None:
        with _sync_redis(self.url) as r:
            r.echo(f"{self.marker}-end")
        self._thread.join(20)


async def _monitored(
    redis_url: str, url: str, calls: int, concurrency: int, *, idempotent: bool, slots: int = 0
) -> dict[str, Any]:
    from nexus_connector_async import Connector, IdempotencyKey  # noqa: PLC0415

    backend = _backend("redis", redis_url, f"scale{uuid.uuid4().hex[:8]}")
    method = "POST" if idempotent else "GET"
    endpoint = _endpoint(url, tenant_scope=False, method=method, slots=slots)
    run = uuid.uuid4().hex[:12]
    payload = {"amount": 42, "currency": "usd"} if idempotent else None
    async with Connector(backend=backend) as connector:

        async def one(i: int) -> None:
            key = IdempotencyKey(f"{run}-{i}") if idempotent else None
            await connector.execute("svc", endpoint, payload, idempotency_key=key)

        await one(-1)  # connection, scripts and keys exist before the count starts
        trips0, sent0 = backend.round_trips, backend.commands
        numbers = iter(range(calls))

        async def task() -> None:
            for i in numbers:
                await one(i)

        with _Monitor(redis_url) as monitor:
            await asyncio.gather(*(task() for _ in range(concurrency)))
            # Releases of concurrency slots are queued, not awaited: let the last ones land
            # before the end marker (closing waits for them).
            await connector.close()
        trips, sent = backend.round_trips - trips0, backend.commands - sent0
    client = Counter(
        e["command"].split(" ", 1)[0].upper() for e in monitor.events if e["client_type"] != "lua"
    )
    inside = Counter(
        e["command"].split(" ", 1)[0].upper() for e in monitor.events if e["client_type"] == "lua"
    )
    name = "idempotent POST" if idempotent else "plain GET"
    return {
        "call": f"{name}, concurrency limit {slots}" if slots else name,
        "concurrency": concurrency,
        "calls": calls,
        "client_commands_per_call": round(sum(client.values()) / calls, 3),
        "client_commands": dict(client),
        "commands_in_scripts_per_call": round(sum(inside.values()) / calls, 3),
        "round_trips_per_call": round(trips / calls, 3),
        "backend_commands_per_call": round(sent / calls, 3),
    }


def _phase_monitor(ctx: _Ctx) -> list[dict[str, Any]]:
    url = f"{ctx.stub.base}/v1/charges"
    rows = [
        asyncio.run(_monitored(ctx.redis_url, url, calls, conc, idempotent=idem))
        for conc, calls in ((1, ctx.opts.monitor_calls), (100, ctx.opts.monitor_calls * 10))
        for idem in (False, True)
    ]
    ctx.step("monitor")
    return rows


#: The variants of the slots phase: (name, slots, adaptive); slots -1 is half the load.
_SLOT_VARIANTS = (
    ("raw", 0, False),
    ("redis", 0, False),
    ("redis + limit", 10_000, False),
    ("redis + adaptive limit", 10_000, True),
    ("redis + limit of half the load", -1, False),
)


def _phase_slots(ctx: _Ctx) -> list[dict[str, Any]]:
    """A limited call beside the plain one, same stub, interleaved rounds; then MONITOR counts."""
    rng = random.Random(ctx.opts.seed)
    rows = []
    for conc in (1, 100):
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in _SLOT_VARIANTS}
        for _ in range(ctx.opts.slot_rounds):
            order = list(_SLOT_VARIANTS)
            rng.shuffle(order)
            for name, slots, adaptive in order:
                if slots == -1 and conc == 1:
                    continue  # one call in flight cannot wait for another
                variant = "raw" if name == "raw" else "redis"
                n = max(1, conc // 2) if slots == -1 else slots
                job = ctx.job(variant, concurrency=conc, slots=n, adaptive=adaptive)
                runs[name].append(ctx.pool.one(job))
        by_name = {}
        for name, results in runs.items():
            if not results:
                continue
            results.sort(key=lambda r: r["calls_per_s"])
            median = results[len(results) // 2]
            by_name[name] = {
                "phase": "throughput",
                "variant": name,
                "concurrency": conc,
                "rounds": len(results),
                **median,
                "calls_per_s_all": [r["calls_per_s"] for r in results],
            }
        for row in by_name.values():
            for base in ("raw", "redis"):
                ref = by_name[base]["calls_per_s"]
                row[f"ratio_to_{base}"] = round(row["calls_per_s"] / ref, 3) if ref else None
            rows.append(row)
        ctx.step(f"slots, {conc} in flight")
    url = f"{ctx.stub.base}/v1/charges"
    for conc, calls in ((1, ctx.opts.monitor_calls), (100, ctx.opts.monitor_calls * 10)):
        for slots in (0, 10_000):
            counted = asyncio.run(
                _monitored(ctx.redis_url, url, calls, conc, idempotent=False, slots=slots)
            )
            rows.append({"phase": "monitor", **counted})
    ctx.step("slots, MONITOR")
    return rows


def _profile(ctx: _Ctx) -> str:
    """cProfile of `profile_calls` Redis GETs at 100 in flight, in this process."""
    from nexus_connector_async import Connector  # noqa: PLC0415

    async def drive() -> float:
        backend = _backend("redis", ctx.redis_url, f"scale{uuid.uuid4().hex[:8]}")
        endpoint = _endpoint(f"{ctx.stub.base}/v1/charges/ch_1", tenant_scope=False)
        async with Connector(backend=backend) as connector:
            await connector.execute("svc", endpoint)
            numbers = iter(range(ctx.opts.profile_calls))

            async def task() -> None:
                for _ in numbers:
                    await connector.execute("svc", endpoint)

            profiler.enable()
            began = time.perf_counter()
            await asyncio.gather(*(task() for _ in range(100)))
            elapsed = time.perf_counter() - began
            profiler.disable()
        return elapsed

    profiler = cProfile.Profile()
    elapsed = asyncio.run(drive())
    buf = io.StringIO()
    stats = pstats.Stats(profiler, stream=buf)
    total = stats.total_tt  # type: ignore[attr-defined]
    calls = ctx.opts.profile_calls
    buf.write(
        f"cProfile, Redis backend, {calls} GETs at 100 in flight, {elapsed:.2f} s under the "
        f"profiler ({total / calls * 1e6:.0f} us of profiled CPU per call; the profiler "
        "inflates every figure, read the shares)\n"
    )
    stats.sort_stats("tottime").print_stats(30)
    ctx.step("profile")
    return buf.getvalue()


# -- the run -------------------------------------------------------------------------------------


@contextlib.contextmanager
def _redis(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    sys.path.insert(0, str(_ROOT))
    try:
        from tests._redis_servers import RedisProcess  # noqa: PLC0415
    finally:
        sys.path.remove(str(_ROOT))
    server = RedisProcess().start()
    try:
        yield server.url
    finally:
        server.close()


def _set_up_parent_logging() -> None:
    import structlog  # noqa: PLC0415

    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


def run(opts: Options) -> dict[str, Any]:
    """Run the chosen phases and return the results document (also written to `opts.out`)."""
    _set_up_parent_logging()
    began = time.time()
    load0 = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    doc: dict[str, Any] = {}
    workers = max(opts.fleet) if "fleet" in opts.phases else 1
    with _redis(opts.redis_url) as redis_url:
        stub = start_stub(StubSettings(), seed=opts.seed)
        try:
            pool = _Pool(workers)
            try:
                ctx = _Ctx(opts, stub, pool, redis_url)
                phases: dict[str, Callable[[_Ctx], list[dict[str, Any]]]] = {
                    "concurrency": _phase_concurrency,
                    "services": _phase_services,
                    "tenants": _phase_tenants,
                    "fleet": _phase_fleet,
                    "bulk": _phase_bulk,
                    "monitor": _phase_monitor,
                    "slots": _phase_slots,
                }
                for name in opts.phases:
                    doc[name] = phases[name](ctx)
                if opts.profile:
                    doc["profile"] = _profile(ctx)
            finally:
                pool.close()
        finally:
            stub.close()
    options = asdict(opts)
    options["out"] = str(opts.out)
    doc["meta"] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(began)),
        "wall_s": round(time.time() - began, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load1_start": load0,
        "load1_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "options": options,
        "quick": opts.quick,
    }
    write(doc, opts.out, plots=opts.plots)
    return doc


# -- the report ----------------------------------------------------------------------------------


def _f(value: Any, spec: str = ",.0f") -> str:
    if value is None:
        return "-"
    if isinstance(value, float | int):
        return format(value, spec)
    return str(value)


def markdown(doc: dict[str, Any]) -> str:
    """The tables of every phase that ran."""
    meta = doc["meta"]
    out = [
        "# Scale curves"
        + (" (quick smoke run: figures are NOT representative)" if meta["quick"] else ""),
        "",
        f"{meta['started']}, {meta['platform']}, {meta['cpus']} CPUs, load "
        f"{_f(meta['load1_start'], '.2f')} to {_f(meta['load1_end'], '.2f')}, "
        f"{meta['wall_s']} s. One client process per measurement unless said; structlog at "
        "WARNING.",
        "",
    ]
    if doc.get("concurrency"):
        out += [
            "## Calls/s and latency against concurrency",
            "",
            "| variant | in flight | calls/s | x raw | p50 ms | p99 ms | CPU us/call "
            "| sent/call | round trips/call |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        out += [
            f"| {r['variant']} | {r['concurrency']:,} | {_f(r['calls_per_s'])} "
            f"| {_f(r['ratio_to_raw'], '.2f')} | {_f(r['p50_ms'], '.2f')} "
            f"| {_f(r['p99_ms'], '.2f')} | {_f(r['cpu_us_per_call'])} "
            f"| {_f(r['client_commands_per_call'] if r['variant'] == 'redis' else None, '.2f')} "
            f"| {_f(r['round_trips_per_call'] if r['variant'] == 'redis' else None, '.2f')} |"
            for r in doc["concurrency"]
        ]
        out.append("")
    if doc.get("services"):
        out += [
            "## Redis: number of services (100 in flight, calls round robin)",
            "",
            "| services | calls/s | x raw | p99 ms | raw p99 ms | sent/call | round trips/call |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        out += [
            f"| {r['services']:,} | {_f(r['calls_per_s'])} | {_f(r['ratio_to_raw'], '.2f')} "
            f"| {_f(r['p99_ms'], '.2f')} | {_f(r['raw_p99_ms'], '.2f')} "
            f"| {_f(r['client_commands_per_call'], '.2f')} "
            f"| {_f(r['round_trips_per_call'], '.2f')} |"
            for r in doc["services"]
        ]
        out.append("")
    if doc.get("tenants"):
        out += [
            '## Redis: number of tenants, `scope="tenant"` (100 in flight, round robin)',
            "",
            "| tenants | touched | calls/s | x raw | p99 ms | tenant keys | bytes/tenant (INFO) "
            "| bytes/tenant (MEMORY USAGE) | idle TTL s | keys left after it | all gone after s "
            "| memory left bytes |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        out += [
            f"| {r['tenants']:,} | {r['tenants_touched']:,} | {_f(r['calls_per_s'])} "
            f"| {_f(r['ratio_to_raw'], '.2f')} | {_f(r['p99_ms'], '.2f')} "
            f"| {r['tenant_keys']:,} | {_f(r['bytes_per_tenant_info'])} "
            f"| {_f(r['bytes_per_tenant_memory_usage'])} | {_f(r['idle_ttl_s'], '.2f')} "
            f"| {r['tenant_keys_after_idle_ttl']:,} | {_f(r['all_keys_gone_after_s'], '.1f')} "
            f"| {_f(r['used_memory_after_expiry_delta_bytes'])} |"
            for r in doc["tenants"]
        ]
        out += [
            "",
            "*touched*: distinct tenants the window's calls reached (a call to a tenant not "
            "seen yet creates its bucket); *memory left*: used_memory after expiry minus before "
            "the run.",
            "",
        ]
    if doc.get("fleet"):
        out += [
            "## Fleet: worker processes on one Redis (100 in flight each, one shared service)",
            "",
            "| variant | workers | fleet calls/s | x raw | p99 ms (worst) | Redis CPU % of a core "
            "| Redis CPU us/call |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        out += [
            f"| {r['variant']} | {r['workers']} | {_f(r['fleet_calls_per_s'])} "
            f"| {_f(r.get('ratio_to_raw'), '.2f')} | {_f(r['p99_ms_max'], '.2f')} "
            f"| {_f(r['redis_cpu_pct_of_core'], '.1f')} | {_f(r['redis_cpu_us_per_call'], '.1f')} |"
            for r in doc["fleet"]
        ]
        out.append("")
    if doc.get("bulk"):
        out += [
            "## Bulk SMS: `TwilioSmsAdapter.send_bulk` against raw aiohttp, same requests",
            "",
            "| variant | messages | concurrency | messages/s | x raw | CPU us/message | failed |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        out += [
            f"| {r['variant']} | {r['messages']:,} | {r['concurrency']} "
            f"| {_f(r['messages_per_s'])} | {_f(r['ratio_to_raw'], '.2f')} "
            f"| {_f(r['cpu_us_per_message'])} | {r['failed']} |"
            for r in doc["bulk"]
        ]
        out.append("")
    if doc.get("monitor"):
        out += [
            "## Redis commands per call (MONITOR between two markers)",
            "",
            "| call | in flight | calls | client commands/call | in scripts/call "
            "| round trips/call | sent (client) |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        out += [
            f"| {r['call']} | {r['concurrency']} | {r['calls']:,} "
            f"| {_f(r['client_commands_per_call'], '.2f')} "
            f"| {_f(r['commands_in_scripts_per_call'], '.2f')} "
            f"| {_f(r['round_trips_per_call'], '.2f')} "
            f"| {', '.join(f'{k} {v}' for k, v in sorted(r['client_commands'].items()))} |"
            for r in doc["monitor"]
        ]
        out.append("")
    if doc.get("slots"):
        out += [
            "## Concurrency limit on Redis: cost against the plain call (median of rounds)",
            "",
            "| variant | in flight | calls/s | x redis | x raw | p50 ms | p99 ms "
            "| sent/call | round trips/call |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        out += [
            f"| {r['variant']} | {r['concurrency']} | {_f(r['calls_per_s'])} "
            f"| {_f(r['ratio_to_redis'], '.2f')} | {_f(r['ratio_to_raw'], '.2f')} "
            f"| {_f(r['p50_ms'], '.2f')} | {_f(r['p99_ms'], '.2f')} "
            f"| {_f(r['client_commands_per_call'] if r['variant'] != 'raw' else None, '.2f')} "
            f"| {_f(r['round_trips_per_call'] if r['variant'] != 'raw' else None, '.2f')} |"
            for r in doc["slots"]
            if r["phase"] == "throughput"
        ]
        out += [
            "",
            "| call (MONITOR) | in flight | calls | client commands/call | in scripts/call "
            "| round trips/call | sent (client) |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        out += [
            f"| {r['call']} | {r['concurrency']} | {r['calls']:,} "
            f"| {_f(r['client_commands_per_call'], '.2f')} "
            f"| {_f(r['commands_in_scripts_per_call'], '.2f')} "
            f"| {_f(r['round_trips_per_call'], '.2f')} "
            f"| {', '.join(f'{k} {v}' for k, v in sorted(r['client_commands'].items()))} |"
            for r in doc["slots"]
            if r["phase"] == "monitor"
        ]
        out.append("")
    if doc.get("profile"):
        out += [
            "## Client CPU profile (Redis hot path)",
            "",
            "```",
            doc["profile"].rstrip(),
            "```",
            "",
        ]
    return "\n".join(out)


def write(doc: dict[str, Any], out: Path, *, plots: bool = True) -> None:
    """scale.json, scale.md (and unless `plots` is False the scale_*.png) into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "scale.json").write_text(json.dumps(doc, indent=1) + "\n")
    (out / "scale.md").write_text(markdown(doc))
    if doc.get("profile"):
        (out / "scale_profile.txt").write_text(doc["profile"])
    if plots:
        _plots(doc, out)


_COLOURS = {"raw": "black", "memory": "tab:green", "redis": "tab:red"}


def _plots(doc: dict[str, Any], out: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    note = " (quick run)" if doc["meta"]["quick"] else ""
    if doc.get("concurrency"):
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
        for variant in ("raw", "memory", "redis"):
            rows = [r for r in doc["concurrency"] if r["variant"] == variant]
            xs = [r["concurrency"] for r in rows]
            kw = {"marker": "o", "color": _COLOURS[variant], "label": variant}
            ax1.plot(xs, [r["calls_per_s"] for r in rows], **kw)
            ax2.plot(xs, [r["p99_ms"] for r in rows], **kw)
        for ax, label in ((ax1, "calls/s"), (ax2, "p99 latency (ms)")):
            ax.set_xscale("log")
            ax.set_xlabel("calls in flight")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            ax.legend()
        ax2.set_yscale("log")
        fig.suptitle("Throughput and p99 against concurrency" + note)
        fig.tight_layout()
        fig.savefig(out / "scale_concurrency.png", dpi=90)
        plt.close(fig)
    if doc.get("services") or doc.get("tenants"):
        fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
        for ax, name in ((axes[0], "services"), (axes[1], "tenants")):
            rows = doc.get(name) or []
            xs = [r[name] for r in rows]
            ax.plot(xs, [r["calls_per_s"] for r in rows], "o-", color="tab:red", label="redis")
            ax.plot(xs, [r["raw_calls_per_s"] for r in rows], "o--", color="black", label="raw")
            ax.set_xscale("log")
            ax.set_xlabel(name)
            ax.set_ylabel("calls/s")
            ax.grid(alpha=0.3)
            ax.legend()
        rows = doc.get("tenants") or []
        if rows:
            xs = [r["tenants"] for r in rows]
            axes[2].plot(xs, [r["bytes_per_tenant_info"] for r in rows], "o-", label="INFO delta")
            axes[2].plot(
                xs, [r["bytes_per_tenant_memory_usage"] for r in rows], "s--", label="MEMORY USAGE"
            )
            axes[2].set_xscale("log")
            axes[2].set_xlabel("tenants")
            axes[2].set_ylabel("Redis bytes per tenant")
            axes[2].grid(alpha=0.3)
            axes[2].legend()
        fig.suptitle('Services, and tenants with scope="tenant", on Redis' + note)
        fig.tight_layout()
        fig.savefig(out / "scale_keys.png", dpi=90)
        plt.close(fig)
    if doc.get("fleet"):
        fig, ax = plt.subplots(figsize=(7.5, 4.2))
        for variant in ("raw", "redis"):
            rows = [r for r in doc["fleet"] if r["variant"] == variant]
            ax.plot(
                [r["workers"] for r in rows],
                [r["fleet_calls_per_s"] for r in rows],
                "o-",
                color=_COLOURS[variant],
                label=f"{variant} fleet calls/s",
            )
        ax.set_xlabel("worker processes")
        ax.set_ylabel("fleet calls/s")
        ax.grid(alpha=0.3)
        ax2 = ax.twinx()
        rows = [r for r in doc["fleet"] if r["variant"] == "redis"]
        ax2.plot(
            [r["workers"] for r in rows],
            [r["redis_cpu_pct_of_core"] for r in rows],
            "s:",
            color="tab:purple",
            label="Redis CPU % (redis fleet)",
        )
        ax2.set_ylabel("Redis CPU, % of one core")
        lines = ax.get_legend_handles_labels()
        more = ax2.get_legend_handles_labels()
        ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left")
        ax.set_title("Worker processes on one Redis" + note)
        fig.tight_layout()
        fig.savefig(out / "scale_fleet.png", dpi=90)
        plt.close(fig)
    if doc.get("bulk"):
        fig, ax = plt.subplots(figsize=(6.5, 3.8))
        rows = doc["bulk"]
        names = [r["variant"] for r in rows]
        values = [r["messages_per_s"] for r in rows]
        ax.bar(names, values, color=[_COLOURS.get(n, "grey") for n in names])
        for i, v in enumerate(values):
            ax.text(i, v, f"{v:,.0f}", ha="center", va="bottom")
        ax.set_ylabel("messages/s")
        ax.set_title(f"Bulk SMS, {rows[0]['messages']:,} messages" + note)
        fig.tight_layout()
        fig.savefig(out / "scale_bulk_sms.png", dpi=90)
        plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m benchmarks.bench_scale [options]`: run, print the tables, write the files."""
    opts = parse_args(argv)
    doc = run(opts)
    print(markdown(doc))
    print(f"\nwritten to {opts.out}/", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
