"""The benchmark run: start the stub, Redis and the workers, run the phases, write the report.

Phases:

1. **throughput** (one worker process, as the targets are defined): every variant x event loop x
   concurrency, in interleaved rounds (a shuffled order per round), so machine noise hits all
   variants alike; ratios to raw aiohttp are taken per round, then the median.
2. **rate-limit accuracy** (N workers sharing one limit): arrivals per second at the stub vs the
   configured limit, and the total against what the bucket may admit.
3. **breaker convergence** (N workers): the stub starts failing every request at a known time;
   how long until every worker's breaker rejects, and how many requests still reached the stub.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ._stub import StubHandle, StubSettings, start_stub
from ._workers import Job, worker_main

__all__ = ["Options", "main", "parse_args"]

BACKENDS = ("memory", "redis", "redis-cluster")
_ROOT = Path(__file__).resolve().parent.parent
#: How the nexus variants log: nothing configured (the default a new user gets), structlog
#: filtered at WARNING, and the JSON audit-log recipe of docs/operations.md (to /dev/null).
LOGGING_MODES = ("default", "warn", "json")
#: The committed results (`--save`) and the folder every other run writes to.
SAVED = _ROOT / "benchmarks" / "results"
LATEST = SAVED / "latest"


@dataclass(frozen=True)
class Options:
    """Everything a run needs, after --quick defaults are filled in."""

    backends: tuple[str, ...]
    workers: int
    concurrency: tuple[int, ...]
    duration: float
    warmup: float
    rounds: int
    faults: StubSettings
    limit: int
    accuracy_duration: float
    accuracy_concurrency: int
    breaker_concurrency: int
    peers: bool
    uvloop: bool
    accuracy: bool
    breaker: bool
    plots: bool
    redis_url: str | None
    cluster_url: str | None
    out: Path
    seed: int
    quick: bool
    logging: tuple[str, ...] = LOGGING_MODES


def _parse_seconds(text: str) -> float:
    text = text.strip().lower()
    if text.endswith("ms"):
        return float(text[:-2]) / 1000.0
    if text.endswith("us"):
        return float(text[:-2]) / 1e6
    if text.endswith("s"):
        return float(text[:-1])
    return float(text)


def parse_faults(text: str) -> StubSettings:
    """``latency=2ms,5xx=0.01,429=0.005`` (latency may be a range: ``1ms-5ms``)."""
    settings = StubSettings()
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        name = name.strip().lower()
        if name == "latency":
            low, _, high = value.partition("-")
            lo = _parse_seconds(low)
            settings.latency = (lo, _parse_seconds(high) if high else lo)
        elif name in ("5xx", "500", "error"):
            settings.error_rate = float(value)
        elif name in ("429", "throttle"):
            settings.throttle_rate = float(value)
        elif name == "retry_after":
            settings.retry_after = _parse_seconds(value)
        else:
            raise argparse.ArgumentTypeError(f"unknown fault {name!r}")
    if settings.error_rate + settings.throttle_rate > 1:
        raise argparse.ArgumentTypeError("5xx + 429 rates must not exceed 1")
    return settings


def _csv(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def build_parser() -> argparse.ArgumentParser:
    """The `python -m benchmarks` command line."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=(
            "Load-test nexus_connector_async against a local stub vendor, next to raw aiohttp "
            "and limits+purgatory+tenacity; writes JSON, markdown and PNGs."
        ),
    )
    p.add_argument("--backend", default=None, help="memory,redis,redis-cluster (default: all)")
    p.add_argument("--workers", type=int, default=4, help="processes for the shared phases")
    p.add_argument("--concurrency", default=None, help="in-flight calls, e.g. 10,100")
    p.add_argument("--duration", type=float, default=None, help="seconds per measurement")
    p.add_argument("--warmup", type=float, default=None, help="seconds before each measurement")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (median)")
    p.add_argument(
        "--faults", type=parse_faults, default=StubSettings(), help="latency=..,5xx=..,429=.."
    )
    p.add_argument("--limit", type=int, default=500, help="calls/s for the accuracy phase")
    p.add_argument("--accuracy-duration", type=float, default=None)
    p.add_argument("--accuracy-concurrency", type=int, default=25, help="per worker")
    p.add_argument("--breaker-concurrency", type=int, default=2, help="per worker")
    p.add_argument("--no-peers", action="store_true", help="skip limits+purgatory+tenacity")
    p.add_argument("--no-uvloop", action="store_true", help="skip the uvloop runs")
    p.add_argument("--no-accuracy", action="store_true", help="skip the rate-limit phase")
    p.add_argument("--no-breaker", action="store_true", help="skip the breaker phase")
    p.add_argument("--no-plots", action="store_true", help="skip the PNGs")
    p.add_argument("--redis-url", default=None, help="use this Redis instead of starting one")
    p.add_argument("--cluster-url", default=None, help="one node of an existing cluster")
    p.add_argument(
        "--logging",
        default=None,
        help="logging set-ups of the nexus variants: default,warn,json (default: all)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where to write the results (default: benchmarks/results/latest/)",
    )
    p.add_argument(
        "--save",
        action="store_true",
        help="write to benchmarks/results/, replacing the committed results and plots",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="a ~1 min run (memory, redis; c=100)")
    return p


def parse_args(argv: Sequence[str] | None = None) -> Options:
    """Parse the command line and fill in the defaults of a full or --quick run."""
    a = build_parser().parse_args(argv)
    quick = a.quick
    backends = tuple(_csv(a.backend)) if a.backend else (("memory", "redis") if quick else BACKENDS)
    for b in backends:
        if b not in BACKENDS:
            raise SystemExit(f"unknown backend {b!r}; choose from {', '.join(BACKENDS)}")
    modes = tuple(_csv(a.logging)) if a.logging else LOGGING_MODES
    for m in modes:
        if m not in LOGGING_MODES:
            raise SystemExit(
                f"unknown logging set-up {m!r}; choose from {', '.join(LOGGING_MODES)}"
            )
    if a.out is not None and a.save:
        raise SystemExit("--out and --save: choose one")
    out = a.out if a.out is not None else (SAVED if a.save else LATEST)
    concurrency = (
        tuple(int(c) for c in _csv(a.concurrency))
        if a.concurrency
        else ((100,) if quick else (10, 100))
    )
    return Options(
        backends=backends,
        workers=max(1, a.workers),
        concurrency=concurrency,
        duration=a.duration if a.duration is not None else (0.8 if quick else 0.9),
        warmup=a.warmup if a.warmup is not None else (0.25 if quick else 0.3),
        rounds=max(1, a.rounds if a.rounds is not None else (2 if quick else 5)),
        faults=a.faults,
        limit=a.limit,
        accuracy_duration=(
            a.accuracy_duration if a.accuracy_duration is not None else (2.0 if quick else 4.0)
        ),
        accuracy_concurrency=a.accuracy_concurrency,
        breaker_concurrency=a.breaker_concurrency,
        peers=not a.no_peers,
        uvloop=not a.no_uvloop and _has_uvloop(),
        accuracy=not a.no_accuracy,
        breaker=not a.no_breaker,
        plots=not a.no_plots,
        redis_url=a.redis_url,
        cluster_url=a.cluster_url,
        out=out,
        seed=a.seed,
        quick=quick,
        logging=modes,
    )


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


# -- infrastructure ------------------------------------------------------------------------------


class _Redis:
    """Redis and Redis Cluster for the run: given URLs, or servers started (and stopped) here."""

    def __init__(self, opts: Options) -> None:
        self.url = opts.redis_url
        self.cluster_url = opts.cluster_url
        self.nodes: list[str] = [opts.redis_url] if opts.redis_url else []
        self.cluster_nodes: list[str] = []
        self._owned: list[Any] = []
        self._need_redis = "redis" in opts.backends
        self._need_cluster = "redis-cluster" in opts.backends

    def __enter__(self) -> _Redis:
        sys.path.insert(0, str(_ROOT))
        try:
            from tests._redis_servers import RedisCluster3, RedisProcess  # noqa: PLC0415
        finally:
            sys.path.remove(str(_ROOT))
        if self._need_redis and self.url is None:
            server = RedisProcess().start()
            self._owned.append(server)
            self.url = server.url
            self.nodes = [server.url]
        if self._need_cluster:
            if self.cluster_url is None:
                cluster = RedisCluster3().start()
                self._owned.append(cluster)
                self.cluster_url = cluster.url
                self.cluster_nodes = cluster.urls
            else:
                self.cluster_nodes = _cluster_nodes(self.cluster_url)
        return self

    def __exit__(self, *exc: object) -> None:
        for thing in reversed(self._owned):
            with contextlib.suppress(Exception):
                thing.close() if hasattr(thing, "close") else thing.stop()


def _cluster_nodes(url: str) -> list[str]:
    import redis  # noqa: PLC0415

    with redis.RedisCluster.from_url(url) as client:
        return [
            f"redis://{n.host}:{n.port}" for n in client.get_nodes() if n.server_type == "primary"
        ]


class _Workers:
    """N long-lived worker processes fed jobs over pipes."""

    def __init__(self, count: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs: list[Any] = []
        for index in range(count):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(child, index), daemon=True)
            proc.start()
            child.close()
            self.pipes.append(parent)
            self.procs.append(proc)
        for pipe in self.pipes:
            if not pipe.poll(60):
                raise RuntimeError("a benchmark worker did not start within 60 s")
            pipe.recv()

    def run(self, jobs: Sequence[Job], timeout: float) -> list[dict[str, Any]]:
        """Send job i to worker i; wait for every answer (bounded by `timeout`)."""
        for pipe, job in zip(self.pipes, jobs, strict=False):
            pipe.send(job)
        results = []
        deadline = time.monotonic() + timeout
        for pipe, job in zip(self.pipes, jobs, strict=False):
            if not pipe.poll(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"worker did not finish {job.kind} {job.variant} in time")
            result = pipe.recv()
            if "error" in result:
                raise RuntimeError(f"{job.variant} ({job.loop}) failed:\n{result['error']}")
            results.append(result)
        return results

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(Exception):
                pipe.send(None)
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join(5)


class _Load:
    """How busy the machine was: load averages and CPU busy fraction from /proc/stat."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stat0 = _proc_stat()
        self.uptime_start = _uptime()
        self.top_start = _top()

    def sample(self) -> None:
        with contextlib.suppress(OSError):
            self.samples.append(os.getloadavg()[0])

    def summary(self) -> dict[str, Any]:
        stat1 = _proc_stat()
        busy = _busy(self._stat0, stat1)
        return {
            "cpus": os.cpu_count(),
            "uptime_start": self.uptime_start,
            "uptime_end": _uptime(),
            "load1_min": min(self.samples, default=None),
            "load1_max": max(self.samples, default=None),
            "load1_mean": round(statistics.fmean(self.samples), 2) if self.samples else None,
            "cpu_busy_fraction": busy,
            "top_start": self.top_start,
            "top_end": _top(),
        }


def _process_cpu(pid: int | None) -> float:
    """User + system CPU seconds of a process (0 where /proc is not available)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _busy(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """Fraction of the machine's CPU time that was busy between two /proc/stat readings."""
    if not before or not after or after[0] <= before[0]:
        return None
    return round(1 - (after[1] - before[1]) / (after[0] - before[0]), 3)


def _proc_stat() -> tuple[int, int] | None:
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    values = [int(v) for v in fields]
    return sum(values), values[3] + values[4]  # idle + iowait


def _uptime() -> str:
    try:
        return subprocess.run(
            ["uptime"], capture_output=True, text=True, timeout=5, check=False
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _top() -> list[str]:
    try:
        out = subprocess.run(
            ["ps", "-eo", "pcpu,etimes,comm", "--sort=-pcpu"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines()[1:9]]


class _Progress:
    """A tqdm bar on a terminal (when installed), else one plain line per step: no
    carriage-return frames in a log file."""

    def __init__(self, total: int) -> None:
        self._bar: Any = None
        if sys.stderr.isatty():
            with contextlib.suppress(ImportError):
                from tqdm import tqdm  # noqa: PLC0415

                self._bar = tqdm(total=total, unit="run", dynamic_ncols=True, file=sys.stderr)
        self._n = 0
        self._total = total

    def step(self, label: str) -> None:
        self._n += 1
        if self._bar is not None:
            self._bar.set_description(label[:48])
            self._bar.update(1)
        else:
            print(f"[{self._n}/{self._total}] {label}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


# -- phases ----------------------------------------------------------------------------------------


def _with_logging(opts: Options, variant: str) -> list[str]:
    """`variant` once per logging set-up: `nexus-memory` (nothing configured), `+warn`, `+json`."""
    return [variant if m == "default" else f"{variant}+{m}" for m in opts.logging]


def _variants(opts: Options) -> list[str]:
    names = ["raw"]
    if "memory" in opts.backends:
        names.extend(_with_logging(opts, "nexus-memory"))
        if opts.peers:
            names.append("peers-memory")
    if "redis" in opts.backends:
        names.extend(_with_logging(opts, "nexus-redis"))
        # The idempotent POST beside raw aiohttp's POST of the same request (logging filtered
        # when that set-up runs: its target is the pipeline's cost, not logging's).
        names += [
            "raw-post",
            "nexus-redis-idem+warn" if "warn" in opts.logging else "nexus-redis-idem",
        ]
        if opts.peers:
            names.append("peers-redis")
    if "redis-cluster" in opts.backends:
        names.append("nexus-cluster")
    return names


def _blocks(opts: Options) -> list[tuple[int, str, list[tuple[str, str]]]]:
    """Runs that are compared with each other go in one block, run back to back.

    A block is one concurrency and one event loop; every block also runs raw aiohttp on the
    default loop, the floor that all ratios divide by, so each ratio compares runs made within
    seconds of each other, not minutes (other load on the machine comes and goes).
    """
    loops = ["asyncio", "uvloop"] if opts.uvloop else ["asyncio"]
    blocks = []
    for conc in opts.concurrency:
        for loop in loops:
            members = [(v, loop) for v in _variants(opts)]
            if loop != "asyncio":
                members.append(("raw", "asyncio"))
            blocks.append((conc, loop, members))
    return blocks


def _base_job(opts: Options, variant: str, redis: _Redis, stub: StubHandle) -> Job:
    base = variant.partition("+")[0]
    redis_url = redis.cluster_url if base == "nexus-cluster" else redis.url
    info = redis.cluster_nodes if base == "nexus-cluster" else redis.nodes
    uses_redis = base in ("nexus-redis", "nexus-redis-idem", "nexus-cluster", "peers-redis")
    tag = uuid.uuid4().hex[:8]
    return Job(
        kind="throughput",
        variant=variant,
        loop="asyncio",
        concurrency=100,
        url=f"{stub.base}/v1/charges/ch_1",
        service=f"vendor{tag}",
        prefix=f"bench{tag}",
        redis_url=redis_url if uses_redis else None,
        cluster=base == "nexus-cluster",
        info_urls=list(info) if uses_redis else [],
        warmup=opts.warmup,
        duration=opts.duration,
    )


def _throughput(
    opts: Options,
    redis: _Redis,
    stub: StubHandle,
    workers: _Workers,
    progress: _Progress,
    load: _Load,
) -> list[dict[str, Any]]:
    rng = random.Random(opts.seed)
    runs: list[dict[str, Any]] = []
    stub.configure(opts.faults)
    for round_no in range(opts.rounds):
        blocks = _blocks(opts)
        rng.shuffle(blocks)
        for conc, block_loop, members in blocks:
            order = members[:]
            rng.shuffle(order)
            block = f"{round_no}:{conc}:{block_loop}"
            for variant, loop in order:
                job = replace(_base_job(opts, variant, redis, stub), loop=loop, concurrency=conc)
                stub.reset()
                stub_cpu = _process_cpu(stub.process.pid)
                machine = _proc_stat()
                (result,) = workers.run([job], timeout=opts.warmup + opts.duration + 120)
                stats = stub.stats()
                stub_cpu = _process_cpu(stub.process.pid) - stub_cpu
                load.sample()
                result.update(
                    variant=variant,
                    loop=loop,
                    concurrency=conc,
                    round=round_no,
                    block=block,
                    stub_requests=stats["total"],
                    stub_cpu_us_per_request=round(stub_cpu / stats["total"] * 1e6, 1)
                    if stats["total"]
                    else None,
                    stub_by_status=stats["by_status"],
                    machine_busy=_busy(machine, _proc_stat()),
                    load1=load.samples[-1] if load.samples else None,
                )
                runs.append(result)
                progress.step(f"r{round_no + 1} {variant} {loop} c={conc}")
    return runs


def _accuracy(
    opts: Options,
    redis: _Redis,
    stub: StubHandle,
    workers: _Workers,
    progress: _Progress,
    load: _Load,
) -> list[dict[str, Any]]:
    out = []
    burst = max(1, opts.limit // 10)
    for variant in _shared_variants(opts, peers=True):
        base = _base_job(opts, variant, redis, stub)
        stub.configure(StubSettings())
        start_at = time.monotonic() + 1.5
        stub.reset(start_at)
        jobs = [
            replace(
                base,
                kind="accuracy",
                concurrency=opts.accuracy_concurrency,
                start_at=start_at,
                duration=opts.accuracy_duration,
                limit=opts.limit,
                burst=burst,
                max_wait=1.0,
                info_urls=[],
            )
            for _ in range(opts.workers)
        ]
        results = workers.run(jobs, timeout=opts.accuracy_duration + 60)
        stats = stub.stats()
        load.sample()
        out.append(_accuracy_summary(variant, opts, burst, start_at, results, stats))
        progress.step(f"rate limit {variant} x{opts.workers}")
    return out


def _accuracy_summary(
    variant: str,
    opts: Options,
    burst: int,
    start_at: float,
    results: list[dict[str, Any]],
    stats: dict[str, Any],
) -> dict[str, Any]:
    admitted = int(stats["total"])
    per_bucket = stats["buckets"]
    per_bucket_s = float(stats["bucket_seconds"])
    per_second = []
    step = round(1 / per_bucket_s)
    for i in range(0, len(per_bucket), step):
        chunk = per_bucket[i : i + step]
        if len(chunk) == step:
            per_second.append(sum(chunk))
    # The bucket starts full (a token bucket's `burst`); limits' moving window may admit a full
    # window's worth at once. Everything after that is bounded by the rate.
    head = burst if variant.startswith("nexus-") else opts.limit
    span = (stats["last"] - start_at) if stats["last"] is not None else 0.0
    allowed = head + opts.limit * max(span, 0.0)
    over = max(0.0, admitted - allowed) / allowed if allowed else 0.0
    # Largest count in any 1 s window (sliding by 100 ms), after the first second.
    windows = [
        sum(per_bucket[i : i + step]) for i in range(step, max(step, len(per_bucket) - step + 1))
    ]
    steady = per_second[1:] if len(per_second) > 1 else per_second
    outcomes: dict[str, int] = {}
    for r in results:
        for k, v in r["outcomes"].items():
            outcomes[k] = outcomes.get(k, 0) + v
    return {
        "variant": variant,
        "workers": opts.workers,
        "concurrency_per_worker": opts.accuracy_concurrency,
        "limit_per_s": opts.limit,
        "burst": head,
        "duration_s": opts.accuracy_duration,
        "admitted": admitted,
        "allowed": round(allowed, 1),
        "span_s": round(span, 3),
        "over_admission_pct": round(over * 100, 3),
        "per_second": per_second,
        "steady_mean_per_s": round(statistics.fmean(steady), 1) if steady else None,
        "max_1s_window_after_first": max(windows) if windows else None,
        "client_outcomes": outcomes,
    }


def _breaker(
    opts: Options,
    redis: _Redis,
    stub: StubHandle,
    workers: _Workers,
    progress: _Progress,
    load: _Load,
) -> list[dict[str, Any]]:
    out = []
    healthy = 1.0
    variants = (["nexus-memory"] if "memory" in opts.backends else []) + _shared_variants(
        opts, peers=True
    )
    for variant in variants:
        base = _base_job(opts, variant, redis, stub)
        start_at = time.monotonic() + 1.5
        fail_from = start_at + healthy
        stub.configure(StubSettings(fail_from=fail_from))
        stub.reset(start_at)
        jobs = [
            replace(
                base,
                kind="breaker",
                concurrency=opts.breaker_concurrency,
                start_at=start_at,
                duration=healthy + 5.0,
                info_urls=[],
            )
            for _ in range(opts.workers)
        ]
        results = workers.run(jobs, timeout=healthy + 70)
        stats = stub.stats()
        load.sample()
        firsts = [r["first_open"] for r in results]
        per_worker = [None if f is None else round(f - fail_from, 4) for f in firsts]
        converged = all(f is not None for f in firsts)
        out.append(
            {
                "variant": variant,
                "workers": opts.workers,
                "concurrency_per_worker": opts.breaker_concurrency,
                "failure_threshold": base.failure_threshold,
                "converged": converged,
                "convergence_s": max(p for p in per_worker if p is not None) if converged else None,
                "per_worker_s": per_worker,
                "requests_after_failure": stats["after_fail"],
            }
        )
        progress.step(f"breaker {variant} x{opts.workers}")
    stub.configure(opts.faults)
    return out


def _shared_variants(opts: Options, *, peers: bool) -> list[str]:
    names = []
    if "redis" in opts.backends:
        names.append("nexus-redis")
    if "redis-cluster" in opts.backends:
        names.append("nexus-cluster")
    if peers and opts.peers and "redis" in opts.backends:
        names.append("peers-redis")
    return names


def _versions() -> dict[str, str]:
    from importlib import metadata  # noqa: PLC0415

    out = {"python": platform.python_version()}
    for name in (
        "nexus-connector-async",
        "aiohttp",
        "redis",
        "hiredis",
        "limits",
        "purgatory",
        "tenacity",
        "uvloop",
        "hdrhistogram",
        "matplotlib",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def _count_steps(opts: Options) -> int:
    n = sum(len(members) for _, _, members in _blocks(opts)) * opts.rounds
    if opts.accuracy:
        n += len(_shared_variants(opts, peers=True))
    if opts.breaker:
        n += len(_shared_variants(opts, peers=True)) + ("memory" in opts.backends)
    return n


@contextlib.contextmanager
def _infrastructure(opts: Options) -> Iterator[tuple[_Redis, StubHandle, _Workers]]:
    with _Redis(opts) as redis:
        stub = start_stub(opts.faults, seed=opts.seed)
        try:
            workers = _Workers(opts.workers)
            try:
                yield redis, stub, workers
            finally:
                workers.close()
        finally:
            stub.close()


def run(opts: Options) -> dict[str, Any]:
    """Run every phase and return the results document (also written to `opts.out`)."""
    from . import _report  # noqa: PLC0415

    began = time.time()
    load = _Load()
    progress = _Progress(_count_steps(opts))
    try:
        with _infrastructure(opts) as (redis, stub, workers):
            runs = _throughput(opts, redis, stub, workers, progress, load)
            accuracy = (
                _accuracy(opts, redis, stub, workers, progress, load) if opts.accuracy else []
            )
            breaker = _breaker(opts, redis, stub, workers, progress, load) if opts.breaker else []
    finally:
        progress.close()
    options = asdict(opts)
    options["out"] = str(opts.out)
    doc = {
        "meta": {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(began)),
            "wall_s": round(time.time() - began, 1),
            "platform": platform.platform(),
            "versions": _versions(),
            "options": options,
            "load": load.summary(),
        },
        "throughput": _report.summarize_throughput(runs),
        "runs": _report.strip_runs(runs),
        "rate_limit": accuracy,
        "breaker": breaker,
    }
    doc["targets"] = _report.targets(doc)
    _report.write(doc, opts.out, plots=opts.plots)
    return doc


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m benchmarks [options]`: run and print the markdown table."""
    opts = parse_args(argv)
    from . import _report  # noqa: PLC0415

    doc = run(opts)
    print(_report.markdown(doc))
    print(f"\nwritten to {opts.out}/", file=sys.stderr)
    return 0
