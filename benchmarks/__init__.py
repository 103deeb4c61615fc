"""Load benchmarks for nexus_connector_async: `python -m benchmarks` (or `nox -s bench`).

A stub vendor runs in its own process; worker processes run `Connector.execute` on the memory,
Redis and Redis Cluster backends, raw aiohttp (the floor) and limits + purgatory + tenacity (the
stack users assemble today), interleaved in rounds. Results go to `benchmarks/results/latest/`
(JSON, markdown, PNGs). `main(argv)` is the entry point the CLI calls.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks with command-line style `argv`; returns the exit status.

    `scale ...` runs the scale curves (`benchmarks/bench_scale.py`) instead of the harness.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["scale"]:
        from .bench_scale import main as scale_main  # noqa: PLC0415

        return int(scale_main(args[1:]) or 0)
    from ._run import main as run_main  # noqa: PLC0415

    return run_main(args)
