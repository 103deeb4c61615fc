"""`python -m nexus_connector_async COMMAND` (console script: `nexus-connector`)."""

from __future__ import annotations

import argparse
import asyncio
import sys


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the command; returns the exit code."""
    parser = argparse.ArgumentParser(prog="nexus-connector", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run payments through a local vendor simulator")
    demo.add_argument("--payments", type=int, default=300)
    demo.add_argument("--concurrency", type=int, default=25)
    args = parser.parse_args(argv)
    # Imports stay lazy so that every command starts fast.
    from .cli._demo import run_demo

    print(
        "nexus_connector_async demo: payments through idempotency, breaker, limiter, "
        "retries (in-memory backend)"
    )
    asyncio.run(run_demo(args.payments, args.concurrency))
    return 0


if __name__ == "__main__":
    sys.exit(main())
