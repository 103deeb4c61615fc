"""Client instructions per call, counted by valgrind: a figure the machine's noise cannot move.

On a shared 2-core VM, CPU time per call varies by 30-50 % from one run to the next (other
tenants, frequency changes), so the throughput ratios of `python -m benchmarks` need many rounds
to settle. This counts the instructions the client process executes instead (valgrind's
cachegrind, no cache simulation): each variant runs under valgrind twice, with N and 2N calls
after the same warm-up, and the difference divided by N is its cost per call, start-up excluded.
The stub vendor and Redis run natively beside it. The count includes the garbage collector.

    python -m benchmarks.bench_instructions [--calls 1000] [--concurrency 100] [--no-gc]
        [variants...]

Variants are the benchmark's (`raw`, `nexus-memory`, `nexus-redis`, `nexus-redis-idem+warn`, ...);
the ratio column is raw's count over the variant's: the throughput ratio a CPU-bound client
would reach. `--no-gc` counts with the garbage collector disabled in the client process, which
shows the collector's share of each count. Needs `valgrind` on PATH (Debian: `apt-get install
valgrind`); the variants on Redis start a `redis-server` as the test fixtures do, and
`nexus-cluster` a 3-master Redis Cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VARIANTS = ("raw", "nexus-memory", "nexus-redis", "raw-post", "nexus-redis-idem+warn")
_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


async def _client(variant: str, url: str, redis_url: str | None, calls: int, conc: int) -> None:
    from benchmarks._workers import (  # noqa: PLC0415
        make_calls,
        open_client,
        probe_job,
        set_up_logging,
    )

    set_up_logging(variant.partition("+")[2] or "default")
    async with open_client(probe_job(variant, url, redis_url, conc)) as call:
        await make_calls(call, 300, conc)  # warm-up
        await make_calls(call, calls, conc)


def _count(
    variant: str, url: str, redis_url: str | None, calls: int, conc: int, *, gc: bool = True
) -> int:
    """Instructions of one client process making `calls` calls (after the warm-up)."""
    command = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
        sys.executable,
        "-m",
        "benchmarks.bench_instructions",
        "--client",
        variant,
        url,
        redis_url or "",
        str(calls),
        str(conc),
        *(() if gc else ("--no-gc",)),
    ]
    done = subprocess.run(  # our own interpreter and arguments
        command, capture_output=True, text=True, cwd=_ROOT, check=False, timeout=900
    )
    found = _REFS.search(done.stderr)
    if done.returncode != 0 or found is None:
        tail = "\n".join(done.stderr.splitlines()[-15:])
        raise RuntimeError(f"{variant}: the client under valgrind failed:\n{tail}")
    return int(found.group(1).replace(",", ""))


def per_call(
    variant: str, url: str, redis_url: str | None, calls: int, conc: int, *, gc: bool = True
) -> float:
    """Instructions per call: (count at 2N calls - count at N calls) / N."""
    once = _count(variant, url, redis_url, calls, conc, gc=gc)
    twice = _count(variant, url, redis_url, 2 * calls, conc, gc=gc)
    return (twice - once) / calls


def _on_cluster(variant: str) -> bool:
    """Whether the variant runs on Redis Cluster (`nexus-cluster`, with any logging set-up)."""
    return variant.partition("+")[0] == "nexus-cluster"


def _redis_for(variant: str, redis_url: str | None, cluster: Any) -> str | None:
    """The Redis a variant talks to: the cluster's first master for `nexus-cluster`."""
    return cluster.url if _on_cluster(variant) else redis_url


def main(argv: Sequence[str] | None = None) -> int:
    """Count and print a markdown table (variant, instructions per call, ratio to raw)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_instructions")
    parser.add_argument("variants", nargs="*", default=list(DEFAULT_VARIANTS))
    parser.add_argument("--calls", type=int, default=1000, help="calls per counted run")
    parser.add_argument("--concurrency", type=int, default=100, help="in-flight calls")
    parser.add_argument(
        "--no-gc", action="store_true", help="count with the garbage collector disabled"
    )
    parser.add_argument("--client", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:  # one measured client process, under valgrind
        if args.no_gc:
            gc.disable()
        variant, url, redis_url, calls, conc = args.client
        asyncio.run(_client(variant, url, redis_url or None, int(calls), int(conc)))
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not on PATH (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    sys.path.insert(0, str(_ROOT))
    from benchmarks._stub import start_stub  # noqa: PLC0415
    from tests._redis_servers import RedisCluster3, RedisProcess  # noqa: PLC0415

    variants = list(args.variants)
    if "raw" not in variants:
        variants.insert(0, "raw")
    needs_redis = any("redis" in v for v in variants)
    server = RedisProcess().start() if needs_redis and not os.environ.get("REDIS_URL") else None
    redis_url = os.environ.get("REDIS_URL") or (server.url if server else None)
    needs_cluster = any(_on_cluster(v) for v in variants)
    cluster = RedisCluster3().start() if needs_cluster else None
    stub = start_stub()
    try:
        url = f"{stub.base}/v1/charges/ch_1"
        counts = {
            v: per_call(
                v,
                url,
                _redis_for(v, redis_url, cluster),
                args.calls,
                args.concurrency,
                gc=not args.no_gc,
            )
            for v in variants
        }
    finally:
        stub.close()
        if server is not None:
            server.stop()
        if cluster is not None:
            cluster.stop()
    collector = ", garbage collector off" if args.no_gc else ""
    print(
        f"client instructions per call, {args.concurrency} in flight, {args.calls} calls"
        f"{collector}\n"
    )
    print("| variant | instructions/call | x raw |")
    print("|---|--:|--:|")
    for v, n in counts.items():
        print(f"| {v} | {n:,.0f} | {counts['raw'] / n:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
