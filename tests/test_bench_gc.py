"""The collector benchmark: a loop step's growth of the young generation is what it reports,
frees offset allocations, collections are counted only while measuring, and a real run prints
every variant."""

from __future__ import annotations

import asyncio
import asyncio.base_events
import collections
import contextlib
import gc
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks import _workers, bench_gc

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.disable()  # no collection may reset the count mid-step
    # ... and no free is lost to the count's floor at zero
    ballast: list[list[None]] = [[] for _ in range(10_000)]
    try:
        yield
    finally:
        del ballast
        gc.enable()


async def _one_step(keep: bool) -> list[object]:
    kept: list[object] = []
    done = asyncio.Event()

    def allocate() -> None:
        made: list[list[None]] = [[] for _ in range(500)]
        if keep:
            kept.extend(made)
        done.set()

    asyncio.get_running_loop().call_soon(allocate)
    await done.wait()
    return kept


@pytest.mark.usefixtures("collector_off")
def test_a_step_that_keeps_its_objects_adds_them_and_one_that_frees_them_adds_nothing() -> None:
    kept = bench_gc.Steps()
    with kept.counting():
        objects = asyncio.run(_one_step(keep=True))
    freed = bench_gc.Steps()
    with freed.counting():
        asyncio.run(_one_step(keep=False))
    assert len(objects) == 500
    assert max(kept.deltas) >= 450  # less the step's own frees (its handle, the event's waiter)
    assert kept.added() >= 450
    assert freed.added() < 100  # the loop's own few objects, not the 500 lists


def test_counting_puts_the_loop_back() -> None:
    loop_class: Any = asyncio.base_events.BaseEventLoop
    original = loop_class._run_once
    steps = bench_gc.Steps()
    with steps.counting():
        assert loop_class._run_once is not original
    assert loop_class._run_once is original


@pytest.mark.usefixtures("collector_off")
def test_a_step_found_in_a_burst_lists_its_new_objects_by_type() -> None:
    steps = bench_gc.Steps()
    found: collections.Counter[str] = collections.Counter()
    steps.before_step = bench_gc._burst_finder(steps, found, threshold=400)
    steps.deltas.extend([0] * 50)  # past the start-up steps the finder skips
    with steps.counting():
        asyncio.run(_one_step(keep=True))
    assert found["builtins.list"] >= 500


def test_collections_are_counted_only_while_on() -> None:
    collected = bench_gc.Collections()
    gc.callbacks.append(collected)
    try:
        gc.collect()
        assert collected.count == [0, 0, 0]
        collected.on = True
        gc.collect()
    finally:
        gc.callbacks.remove(collected)
    assert collected.count == [0, 0, 1]
    assert collected.cpu[2] > 0


def test_the_report_has_a_row_per_variant_and_the_burst() -> None:
    row = {
        "variant": "nexus-redis",
        "added_per_call": 39.07,
        "per_1000": [45.0, 4.05, 0.4],
        "ms_each": [0.1, 0.4, 17.5],
        "us_per_call": [4.5, 1.5, 7.0],
        "heap": 62650,
        "burst": [["builtins.cell", 970]],
        "burst_total": 3886,
    }
    text = bench_gc.report([row], 5000, 100)
    assert "| nexus-redis | 39.1 | 45.0 | 4.05 | 0.40 | 17.5 | 13.0 | 62,650 |" in text
    assert "nexus-redis: one step's 3,886 new objects" in text
    assert "970 builtins.cell" in text


@pytest.mark.slow
@pytest.mark.multiprocess
def test_a_real_run_prints_raw_and_the_pipeline() -> None:
    args = [sys.executable, "-m", "benchmarks.bench_gc", "--calls", "200", "--concurrency",
            "10", "raw", "nexus-memory"]  # fmt: skip
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| raw |")]
    rows += [line for line in proc.stdout.splitlines() if line.startswith("| nexus-memory |")]
    assert len(rows) == 2
    for line in rows:
        heap = int(line.split("|")[8].strip().replace(",", ""))
        assert heap > 10_000  # the imported modules are counted


def test_fewer_calls_than_in_flight_still_counts_one_call_per_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[int] = []

    @contextlib.asynccontextmanager
    async def fake_client(job: object) -> AsyncIterator[Callable[[], Awaitable[None]]]:
        async def call() -> None:
            made.append(1)

        yield call

    monkeypatch.setattr(_workers, "open_client", fake_client)
    result = asyncio.run(bench_gc._client("raw", "http://x", None, 5, 10, 0))
    warm_up = max(300, 10 * 5)
    assert len(made) == warm_up + 2 * 10  # each of the 10 workers made one call per phase
    assert result["steps_per_call"] > 0  # over the 10 calls made, not the 5 asked for
