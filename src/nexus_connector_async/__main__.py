"""python -m nexus_connector_async COMMAND (console script: nexus-connector).

Commands: demo, status [SERVICE], reset SERVICE, bench. status and reset read the Redis URL
from --redis or the NEXUS_REDIS_URL environment variable.
Exit codes: 0 success; 1 aborted or failed; 2 bad usage; 3 unknown service; 4 Redis unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

_DESCRIPTION = __doc__


def _redis_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis",
        default=os.environ.get("NEXUS_REDIS_URL") or None,
        metavar="URL",
        help="the Redis the workers share, e.g. redis://host:6379/0 "
        "(default: the NEXUS_REDIS_URL environment variable)",
    )
    parser.add_argument(
        "--cluster", action="store_true", help="the URL is one node of a Redis Cluster"
    )
    parser.add_argument(
        "--prefix", default="nexus", help="the key prefix the workers use (default: nexus)"
    )


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the command; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="nexus-connector",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="run payments through a local vendor simulator",
        description="Run payments through a local vendor simulator (in-memory backend) and "
        "print what each policy did.",
    )
    demo.add_argument(
        "--payments", type=int, default=300, help="how many payments to make (default: 300)"
    )
    demo.add_argument(
        "--concurrency", type=int, default=25, help="payments in flight at once (default: 25)"
    )
    status = commands.add_parser(
        "status",
        help="show breakers, buckets and keys in Redis",
        description="Show each service's breaker, rate-limit bucket and idempotency keys.",
    )
    status.add_argument(
        "service", nargs="?", help="the service to show, e.g. stripe (default: every service)"
    )
    _redis_args(status)
    reset = commands.add_parser(
        "reset",
        help="close a breaker and refill its buckets",
        description="Close a service's breaker and refill its buckets, for every worker.",
    )
    reset.add_argument("service", help="the service to reset, e.g. stripe")
    reset.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    _redis_args(reset)
    commands.add_parser(
        "bench", help="run the benchmark harness (from a source checkout)", add_help=False
    )
    args, rest = parser.parse_known_args(argv)
    # Imports stay lazy so that every command starts fast.
    if args.command == "bench":
        try:
            import benchmarks
        except ImportError:
            print(
                "error: the benchmarks live in the source checkout; run this from its root",
                file=sys.stderr,
            )
            return 1
        run_bench: Any = getattr(benchmarks, "main")  # noqa: B009 - an optional module
        return int(run_bench(rest) or 0)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command in ("status", "reset"):
        if not args.redis:
            parser.error(f"{args.command}: give --redis URL or set NEXUS_REDIS_URL")
        from ._extras import has_module

        if not has_module("redis"):
            print(
                f"error: 'nexus-connector {args.command}' needs the 'cli' extra: "
                "pip install 'nexus-connector-async[cli]'",
                file=sys.stderr,
            )
            return 1
    if args.command == "status":
        from .cli._ops import status as run_status

        return asyncio.run(
            run_status(args.redis, args.service, cluster=args.cluster, prefix=args.prefix)
        )
    if args.command == "reset":
        from .cli._ops import reset as run_reset

        return asyncio.run(
            run_reset(
                args.redis, args.service, cluster=args.cluster, prefix=args.prefix, yes=args.yes
            )
        )
    from .cli._demo import run_demo

    print(
        "nexus_connector_async demo: payments through idempotency, breaker, limiter, "
        "retries (in-memory backend)"
    )
    asyncio.run(run_demo(args.payments, args.concurrency))
    return 0


if __name__ == "__main__":
    sys.exit(main())
