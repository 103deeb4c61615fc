"""`python -m benchmarks --help` lists the options (parsed in `benchmarks._run`)."""

from __future__ import annotations

from benchmarks import main

if __name__ == "__main__":
    raise SystemExit(main())
