"""What the garbage collector does per call: tracked objects added, collections, a full pass's cost.

    python -m benchmarks.bench_gc [--calls 5000] [--concurrency 100] [--types 12] [variants...]

Each variant runs in a fresh client process against the benchmark's stub (and a `redis-server`
started as the test fixtures do, for the Redis variants), after a warm-up, in two phases:
- collector on: young, middle and full collections per 1,000 calls, and the CPU time of each;
- collector off: the young generation's count (`gc.get_count()[0]`: tracked allocations minus
  frees) read around every event-loop step. *added/call* sums the steps that grew it, over the
  calls made. That is what drives young collections: CPython collects when the count passes
  700, and a step whose frees offset its allocations adds nothing. `--types N` also prints the
  N most common types among the objects new in one step that added more than ten per call in
  flight (a batch wake-up on Redis).

The figures behind docs/benchmarks.md's account of the collector on the Redis path.
"""

from __future__ import annotations

import argparse
import asyncio
import asyncio.base_events
import collections
import contextlib
import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VARIANTS = ("raw", "nexus-memory", "nexus-redis")
# Keeps the young count far from zero while the collector is off: it never goes below zero, so
# frees near zero would be lost and the sum of growth overstated.
_BALLAST = 200_000


class Steps:
    """Per event-loop step, how much the young generation's count grew (or shrank).

    `before_step`, if set, runs before a step and may return a callback for after it (handed
    the step's growth): how a step's new objects are inspected.
    """

    def __init__(self) -> None:
        self.deltas: list[int] = []
        self.before_step: Callable[[], Callable[[int], None] | None] | None = None

    @contextlib.contextmanager
    def counting(self) -> Iterator[Steps]:
        """Record every step of every asyncio loop while inside (the loop class is patched)."""
        loop_class: Any = asyncio.base_events.BaseEventLoop
        original = loop_class._run_once
        deltas = self.deltas

        def run_once(loop: Any) -> None:
            after = self.before_step() if self.before_step is not None else None
            start = gc.get_count()[0]
            original(loop)
            grew = gc.get_count()[0] - start
            deltas.append(grew)
            if after is not None:
                after(grew)

        loop_class._run_once = run_once
        try:
            yield self
        finally:
            loop_class._run_once = original

    def added(self) -> int:
        """The sum of the steps that grew the young generation."""
        return sum(d for d in self.deltas if d > 0)


class Collections:
    """Collections per generation, and their CPU time, while `on` (a `gc.callbacks` entry)."""

    def __init__(self) -> None:
        self.on = False
        self.count = [0, 0, 0]
        self.cpu = [0.0, 0.0, 0.0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if not self.on:
            return
        if phase == "start":
            self._started = time.thread_time()
            return
        generation = info["generation"]
        self.count[generation] += 1
        self.cpu[generation] += time.thread_time() - self._started


def _type_name(obj: object) -> str:
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


async def _client(
    variant: str, url: str, redis_url: str | None, calls: int, conc: int, types: int
) -> dict[str, Any]:
    from benchmarks._workers import (  # noqa: PLC0415
        make_calls,
        open_client,
        probe_job,
        set_up_logging,
    )

    job = probe_job(variant, url, redis_url, conc)
    set_up_logging(variant.partition("+")[2] or "default")
    collected = Collections()
    steps = Steps()
    burst: collections.Counter[str] = collections.Counter()
    async with open_client(job) as call:
        await make_calls(call, max(300, conc * 5), conc)  # warm-up
        gc.callbacks.append(collected)
        collected.on = True
        try:
            made = await make_calls(call, calls, conc)
        finally:
            collected.on = False
            gc.callbacks.remove(collected)
        gc.disable()
        ballast: list[list[None]] = [[] for _ in range(_BALLAST)]
        try:
            if types:
                steps.before_step = _burst_finder(steps, burst, threshold=10 * conc)
            with steps.counting():
                await make_calls(call, calls, conc)
        finally:
            del ballast
            gc.enable()
    return {
        "variant": variant,
        "added_per_call": steps.added() / made,
        "steps_per_call": len(steps.deltas) / made,
        "per_1000": [n * 1000 / made for n in collected.count],
        "ms_each": [
            c * 1e3 / n if n else 0.0 for c, n in zip(collected.cpu, collected.count, strict=True)
        ],
        "us_per_call": [c * 1e6 / made for c in collected.cpu],
        "heap": len(gc.get_objects()),
        "burst": burst.most_common(types),
        "burst_total": sum(burst.values()),
    }


def _burst_finder(
    steps: Steps, found: collections.Counter[str], *, threshold: int, tries: int = 50
) -> Callable[[], Callable[[int], None] | None]:
    """A `before_step` that snapshots the heap until one step adds more than `threshold`."""
    left = [tries]

    def before() -> Callable[[int], None] | None:
        if found or left[0] <= 0 or len(steps.deltas) < 50:  # past the run's start-up
            return None
        left[0] -= 1
        seen = {id(o) for o in gc.get_objects()}

        def after(grew: int) -> None:
            if grew > threshold:
                found.update(_type_name(o) for o in gc.get_objects() if id(o) not in seen)

        return after

    return before


def measure(
    variant: str, url: str, redis_url: str | None, calls: int, conc: int, types: int
) -> dict[str, Any]:
    """One variant in a fresh client process (its own heap, nothing left by another variant)."""
    command = [sys.executable, "-m", "benchmarks.bench_gc", "--client", variant, url,
               redis_url or "", str(calls), str(conc), str(types)]  # fmt: skip
    done = subprocess.run(  # our own interpreter and arguments
        command, capture_output=True, text=True, cwd=_ROOT, check=False, timeout=900
    )
    if done.returncode != 0:
        tail = "\n".join(done.stderr.splitlines()[-15:])
        raise RuntimeError(f"{variant}: the client failed:\n{tail}")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def report(results: Sequence[dict[str, Any]], calls: int, conc: int) -> str:
    """A markdown table of the results, then each variant's burst of new objects by type."""
    lines = [
        f"garbage collector per call, {conc} in flight, {calls} calls per phase\n",
        "| variant | added/call | young /1000 | middle /1000 | full /1000 | full, ms each "
        "| collector µs/call | heap objects |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        young, middle, full = r["per_1000"]
        lines.append(
            f"| {r['variant']} | {r['added_per_call']:.1f} | {young:.1f} | {middle:.2f} "
            f"| {full:.2f} | {r['ms_each'][2]:.1f} | {sum(r['us_per_call']):.1f} "
            f"| {r['heap']:,} |"
        )
    for r in results:
        if r["burst"]:
            lines.append(f"\n{r['variant']}: one step's {r['burst_total']:,} new objects")
            lines.extend(f"  {n:6,d} {name}" for name, n in r["burst"])
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure the variants and print the table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_gc")
    parser.add_argument("variants", nargs="*", default=list(DEFAULT_VARIANTS))
    parser.add_argument("--calls", type=int, default=5000, help="calls per measured phase")
    parser.add_argument("--concurrency", type=int, default=100, help="in-flight calls")
    parser.add_argument(
        "--types", type=int, default=0, help="list the N commonest types of a burst step"
    )
    parser.add_argument("--client", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:  # one measured client process
        variant, url, redis_url, calls, conc, types = args.client
        result = asyncio.run(
            _client(variant, url, redis_url or None, int(calls), int(conc), int(types))
        )
        print(json.dumps(result))
        return 0
    sys.path.insert(0, str(_ROOT))
    from benchmarks._stub import start_stub  # noqa: PLC0415
    from tests._redis_servers import RedisProcess  # noqa: PLC0415

    needs_redis = any("redis" in v for v in args.variants)
    server = RedisProcess().start() if needs_redis and not os.environ.get("REDIS_URL") else None
    redis_url = os.environ.get("REDIS_URL") or (server.url if server else None)
    stub = start_stub()
    try:
        url = f"{stub.base}/v1/charges/ch_1"
        results = [
            measure(v, url, redis_url, args.calls, args.concurrency, args.types)
            for v in args.variants
        ]
    finally:
        stub.close()
        if server is not None:
            server.stop()
    print(report(results, args.calls, args.concurrency))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
