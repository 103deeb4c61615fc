"""The instruction-count benchmark: per call is the difference of two counted runs, and a real
count under valgrind (when installed) sees the pipeline cost more than raw aiohttp."""

from __future__ import annotations

import gc
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import bench_instructions

ROOT = Path(__file__).resolve().parent.parent


def test_per_call_is_the_difference_of_two_counted_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[int] = []

    def fake_count(
        variant: str, url: str, redis: str | None, calls: int, conc: int, *, gc: bool
    ) -> int:
        runs.append(calls)
        return 5_000_000 + 300 * calls  # start-up, then 300 instructions a call

    monkeypatch.setattr(bench_instructions, "_count", fake_count)
    assert bench_instructions.per_call("raw", "http://x", None, 1000, 100) == 300
    assert runs == [1000, 2000]


@pytest.mark.parametrize("collector", [True, False])
def test_no_gc_reaches_the_counted_client(monkeypatch: pytest.MonkeyPatch, collector: bool) -> None:
    commands: list[list[str]] = []

    def fake_run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        commands.append(command)
        return subprocess.CompletedProcess(command, 0, "", "==1== I   refs:      1,234,567\n")

    monkeypatch.setattr(bench_instructions.subprocess, "run", fake_run)
    assert bench_instructions._count("raw", "http://x", None, 10, 2, gc=collector) == 1_234_567
    assert ("--no-gc" in commands[0]) is not collector


def test_the_cluster_variants_talk_to_the_cluster_and_the_others_to_the_one_server() -> None:
    class Cluster:
        url = "redis://127.0.0.1:7001"

    one = "redis://127.0.0.1:6379"
    assert bench_instructions._redis_for("nexus-cluster", one, Cluster()) == Cluster.url
    assert bench_instructions._redis_for("nexus-cluster+warn", one, Cluster()) == Cluster.url
    assert bench_instructions._redis_for("nexus-redis", one, Cluster()) == one
    assert bench_instructions._redis_for("raw", one, None) == one


@pytest.mark.slow
@pytest.mark.multiprocess
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_a_counted_run_prints_raw_and_the_pipeline_with_their_ratio() -> None:
    args = [sys.executable, "-m", "benchmarks.bench_instructions", "--calls", "60",
            "--concurrency", "10", "raw", "nexus-memory"]  # fmt: skip
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {
        line.split("|")[1].strip(): line.split("|")[2:4]
        for line in proc.stdout.splitlines()
        if line.startswith("| raw") or line.startswith("| nexus-memory")
    }
    raw = float(rows["raw"][0].replace(",", ""))
    memory, ratio = float(rows["nexus-memory"][0].replace(",", "")), float(rows["nexus-memory"][1])
    assert raw > 10_000
    assert memory > raw  # the pipeline's own work is counted, not only aiohttp's
    assert ratio == pytest.approx(raw / memory, abs=0.01)


def test_a_no_gc_client_runs_with_the_collector_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []

    async def fake_client(*args: object) -> None:
        seen.append(gc.isenabled())

    monkeypatch.setattr(bench_instructions, "_client", fake_client)
    try:
        assert bench_instructions.main(["--client", "raw", "u", "", "1", "1"]) == 0
        assert bench_instructions.main(["--no-gc", "--client", "raw", "u", "", "1", "1"]) == 0
    finally:
        gc.enable()
    assert seen == [True, False]
