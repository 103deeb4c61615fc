"""`python -m tests.chaos --minutes 30 --seed 7`: a long chaos run; prints its counts."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

from tests.chaos._run import chaos_run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=1.0, help="length of the run")
    parser.add_argument("--seed", type=int, default=1, help="seed of the fault schedule")
    parser.add_argument("--workers", type=int, default=3, help="worker processes")
    parser.add_argument("--keys", type=int, default=60, help="idempotency keys per lane")
    parser.add_argument(
        "--keep", type=Path, default=None, help="keep the workers' logs in this (new) directory"
    )
    args = parser.parse_args()
    os.environ["NEXUS_CHAOS_KEYS"] = str(args.keys)  # the spawned workers read it
    with tempfile.TemporaryDirectory(prefix="nexus-chaos-") as tmp:
        logs = Path(tmp)
        if args.keep is not None:
            args.keep.mkdir(parents=True)
            logs = args.keep
        report = asyncio.run(chaos_run(args.seed, args.minutes * 60, logs, workers=args.workers))
    print(report.summary())
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
