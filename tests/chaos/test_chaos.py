"""The seeded chaos run (see `_run.py`): fixed seeds, short runs, zero invariant violations.

`nox -s chaos -- --minutes 30 --seed 7` (or `python -m tests.chaos`) runs a long one.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.chaos._run import chaos_run

pytestmark = [pytest.mark.redis, pytest.mark.multiprocess, pytest.mark.slow]

SECONDS = float(os.environ.get("NEXUS_CHAOS_SECONDS", "20"))


@pytest.mark.timeout(SECONDS + 180)
@pytest.mark.parametrize("seed", [1, 2])
async def test_a_seeded_chaos_run_breaks_no_invariant(seed: int, tmp_path: Path) -> None:
    if SECONDS <= 0:
        pytest.skip("NEXUS_CHAOS_SECONDS=0: the chaos run is off (nox -s tests-lowest)")
    if os.environ.get("REDIS_URL"):
        pytest.skip("REDIS_URL is set: the chaos run kills and restarts its own server")
    report = await chaos_run(seed, SECONDS, tmp_path)
    print("\n" + report.summary())
    assert report.calls > 100  # the run did something
    assert sum(report.faults.values()) > 5  # and faults happened
    assert report.violations == []
