"""The benchmark harness runs end to end in its quickest mode and writes the promised fields."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

for _module in ("hdrh", "limits", "purgatory", "tenacity", "matplotlib"):
    pytest.importorskip(_module, reason="the bench extra is not installed")

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.slow, pytest.mark.multiprocess]


def test_quickest_bench_run_writes_json_markdown_and_plots(tmp_path: Path) -> None:
    """memory + redis, 1 worker, a fraction of a second per variant: every section is filled."""
    out = tmp_path / "results"
    args = [
        sys.executable, "-m", "benchmarks",
        "--backend", "memory,redis", "--workers", "1", "--concurrency", "10",
        "--duration", "0.3", "--warmup", "0.1", "--rounds", "1", "--no-uvloop",
        "--limit", "100", "--accuracy-duration", "1", "--out", str(out),
    ]  # fmt: skip
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=110, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "| variant |" in proc.stdout

    doc = json.loads((out / "results.json").read_text())
    assert {"meta", "throughput", "runs", "rate_limit", "breaker", "targets"} <= doc.keys()
    assert doc["meta"]["load"]["cpus"] >= 1

    rows = {(r["variant"], r["loop"]): r for r in doc["throughput"]}
    expected = {"raw", "nexus-memory", "peers-memory", "nexus-redis", "peers-redis"}
    expected |= {"raw-post", "nexus-redis-idem+warn"}  # the idempotent POST and its floor
    expected |= {f"{v}+{m}" for v in ("nexus-memory", "nexus-redis") for m in ("warn", "json")}
    assert {variant for variant, _ in rows} == expected
    for row in rows.values():
        assert row["calls_per_s"] > 0
        assert row["ratio_to_raw"] is not None
        assert {"p50", "p99", "p99.9"} <= row["latency_ms"].keys()
        assert row["latency_ms"]["p50"] > 0
    redis = rows[("nexus-redis", "asyncio")]["redis"]
    assert redis["scripts_per_call"] > 0
    # Batched per service, a call sends under one command and under one round trip (the
    # round trips also count connection handshakes, so they may exceed the commands).
    assert 0 < redis["client_commands_per_call"] <= 1
    assert 0 < redis["round_trips_per_call"] <= 1
    assert redis["server_commands_per_call"] >= redis["scripts_per_call"]
    assert rows[("nexus-redis", "asyncio")]["ratio_to_peers"] is not None

    (accuracy,) = [a for a in doc["rate_limit"] if a["variant"] == "nexus-redis"]
    assert accuracy["admitted"] > 0
    assert accuracy["over_admission_pct"] == 0.0

    breakers = {b["variant"]: b for b in doc["breaker"]}
    assert {"nexus-memory", "nexus-redis", "peers-redis"} <= breakers.keys()
    assert breakers["nexus-redis"]["converged"]
    assert breakers["nexus-redis"]["convergence_s"] >= 0

    md = (out / "results.md").read_text()
    assert "Rate-limit accuracy" in md
    assert "Breaker convergence" in md
    for png in ("throughput.png", "latency.png", "rate_limit.png"):
        assert (out / png).stat().st_size > 1000
