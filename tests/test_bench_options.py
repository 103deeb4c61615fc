"""The benchmark harness's options: a plain run never overwrites the committed results, and
each logging set-up is measured beside raw aiohttp in the same block."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import _report, _run


def test_a_run_writes_to_latest_and_only_save_replaces_the_committed_results() -> None:
    assert _run.parse_args(["--quick"]).out == _run.SAVED / "latest"
    assert _run.parse_args(["--quick", "--save"]).out == _run.SAVED
    assert _run.parse_args(["--out", "/tmp/x"]).out == Path("/tmp/x")
    with pytest.raises(SystemExit):
        _run.parse_args(["--out", "/tmp/x", "--save"])


def test_every_logging_set_up_runs_in_the_same_block_as_raw_aiohttp() -> None:
    opts = _run.parse_args(["--quick", "--no-uvloop"])
    ((conc, loop, members),) = _run._blocks(opts)
    assert (conc, loop) == (100, "asyncio")
    assert [v for v, _ in members] == [
        "raw",
        "nexus-memory",
        "nexus-memory+warn",
        "nexus-memory+json",
        "peers-memory",
        "nexus-redis",
        "nexus-redis+warn",
        "nexus-redis+json",
        "raw-post",  # the idempotent POST beside the same request by hand
        "nexus-redis-idem+warn",
        "peers-redis",
    ]
    only = _run.parse_args(["--quick", "--no-uvloop", "--no-peers", "--logging", "json"])
    assert [v for v, _ in _run._blocks(only)[0][2]] == [
        "raw",
        "nexus-memory+json",
        "nexus-redis+json",
        "raw-post",
        "nexus-redis-idem",  # (logging not filtered when that set-up does not run)
    ]
    with pytest.raises(SystemExit):
        _run.parse_args(["--logging", "loud"])


def test_the_targets_table_checks_each_logging_set_up() -> None:
    def row(variant: str, ratio: float) -> dict[str, object]:
        return {
            "variant": variant,
            "loop": "asyncio",
            "concurrency": 100,
            "ratio_to_raw": ratio,
            "cpu_ratio_to_raw": ratio,
            "ratio_to_peers": None,
            "cpu_ratio_to_peers": None,
        }

    doc = {
        "throughput": [row("nexus-memory", 0.95), row("nexus-memory+json", 0.7)],
        "rate_limit": [],
    }
    got = {t["target"]: t["ok"] for t in _report.targets(doc)}
    assert got["nexus-memory / raw (logging not configured (default))"] is True
    assert got["nexus-memory+json / raw (JSON audit-log recipe)"] is False


def test_quick_mode_plots_are_bars_not_one_point_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one concurrency (a --quick run) a line per variant would be a lone dot."""
    pytest.importorskip("matplotlib")

    def no_lines(*args: object) -> None:
        raise AssertionError("one concurrency: bars expected")

    monkeypatch.setattr(_report, "_line_plots", no_lines)
    rows = [
        {
            "variant": variant,
            "loop": "asyncio",
            "concurrency": 100,
            "calls_per_s": 1000.0 + n,
            "latency_ms": {"p50": 1.0, "p99": 2.0},
        }
        for n, variant in enumerate(["raw", "nexus-memory", "nexus-memory+warn"])
    ]
    doc = {"throughput": rows, "rate_limit": []}
    _report._plots(doc, tmp_path)
    for png in ("throughput.png", "latency.png"):
        assert (tmp_path / png).stat().st_size > 1000


def test_progress_off_a_terminal_is_plain_lines(capsys: pytest.CaptureFixture[str]) -> None:
    """Redirected to a file, the harness writes one line per run, never carriage returns."""
    from benchmarks._run import _Progress  # noqa: PLC0415

    progress = _Progress(2)
    progress.step("raw asyncio c=100")
    progress.step("nexus-redis asyncio c=100")
    progress.close()
    err = capsys.readouterr().err
    assert "\r" not in err
    assert err.splitlines() == ["[1/2] raw asyncio c=100", "[2/2] nexus-redis asyncio c=100"]


def test_the_machine_section_rounds_the_cpu_busy_fraction() -> None:
    """A median of fractions is printed as 0.63, not as its float noise."""
    import json  # noqa: PLC0415

    doc = json.loads((_run.SAVED / "results.json").read_text())
    for r in doc["runs"]:
        r["machine_busy"] = 0.6305000000000001
    assert "(median of runs): 0.63;" in _report.markdown(doc)
