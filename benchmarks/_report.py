"""Turn raw measurements into the results document: JSON, a markdown table and PNG plots."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

__all__ = ["markdown", "strip_runs", "summarize_throughput", "targets", "write"]

_PEER_OF = {
    "nexus-redis": "peers-redis",
    "nexus-cluster": "peers-redis",
    "nexus-memory": "peers-memory",
}
_ORDER = ["raw", "nexus-memory", "peers-memory", "nexus-redis", "peers-redis", "nexus-cluster"]
# One colour per variant; the event loop is the line style (solid asyncio, dashed uvloop).
_COLOURS = {
    "raw": "black",
    "nexus-memory": "tab:green",
    "peers-memory": "tab:olive",
    "nexus-redis": "tab:red",
    "peers-redis": "tab:orange",
    "nexus-cluster": "tab:purple",
}


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def summarize_throughput(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per variant x loop x concurrency: medians over rounds, per-round ratios."""
    from hdrh.histogram import HdrHistogram  # noqa: PLC0415

    by_key: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    # Ratios pair runs of one block (same round, concurrency and loop, run back to back).
    rate: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    # Calls per CPU-second of the worker: on a CPU-bound client this is what throughput would
    # be with a whole core, so its ratios are less sensitive to other load on the machine.
    per_cpu: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for run in runs:
        by_key[(run["variant"], run["loop"], run["concurrency"])].append(run)
        key = (run["variant"], run["loop"], run.get("block", str(run["round"])))
        rate[key].append(run["calls_per_s"])
        if run["cpu_s"] > 0:
            per_cpu[key].append(run["calls"] / run["cpu_s"])

    def ratios(
        group: list[dict[str, Any]],
        other: str | None,
        other_loop: str,
        table: dict[tuple[str, str, str], list[float]] = rate,
    ) -> list[float]:
        out = []
        for run in group:
            block = run.get("block", str(run["round"]))
            mine = table.get((run["variant"], run["loop"], block))
            base = table.get((other or "", other_loop, block))
            if mine and base:
                out.append(statistics.fmean(mine) / statistics.fmean(base))
        return out

    rows = []
    for (variant, loop, conc), group in by_key.items():
        hist = HdrHistogram(1, 60_000_000, 3)
        for run in group:
            hist.add(HdrHistogram.decode(run["latency_hist"]))
        calls = sum(r["calls"] for r in group)
        stats: dict[str, int] = defaultdict(int)
        outcomes: dict[str, int] = defaultdict(int)
        for run in group:
            for name, n in run["commandstats"].items():
                stats[name.removeprefix("cmdstat_")] += n
            for name, n in run["outcomes"].items():
                outcomes[name] += n
        uses_redis = bool(stats) or any(r["client_round_trips"] for r in group)

        def per_call(n: float, calls: int = calls) -> float:
            return n / calls if calls else 0.0

        peer = _PEER_OF.get(_base(variant))
        row: dict[str, Any] = {
            "variant": variant,
            "loop": loop,
            "concurrency": conc,
            "rounds": len(group),
            "calls_per_s_rounds": [round(r["calls_per_s"], 1) for r in group],
            "calls_per_s": _r(_median([r["calls_per_s"] for r in group]), 1),
            "ratio_to_raw": _r(_median(ratios(group, "raw", "asyncio"))),
            "ratio_to_raw_same_loop": _r(_median(ratios(group, "raw", loop))),
            "ratio_to_peers": _r(_median(ratios(group, peer, loop))) if peer else None,
            "cpu_ratio_to_raw": _r(_median(ratios(group, "raw", "asyncio", per_cpu))),
            "cpu_ratio_to_peers": _r(_median(ratios(group, peer, loop, per_cpu))) if peer else None,
            "machine_busy": _r(
                _median([r["machine_busy"] for r in group if r.get("machine_busy") is not None]),
                2,
            ),
            "stub_cpu_us_per_request": _r(
                _median(
                    [
                        r["stub_cpu_us_per_request"]
                        for r in group
                        if r.get("stub_cpu_us_per_request")
                    ]
                ),
                1,
            ),
            "cpu_us_per_call": _r(
                _median([r["cpu_s"] / r["calls"] * 1e6 for r in group if r["calls"]]), 1
            ),
            "latency_ms": {
                "p50": _r(hist.get_value_at_percentile(50) / 1000),
                "p99": _r(hist.get_value_at_percentile(99) / 1000),
                "p99.9": _r(hist.get_value_at_percentile(99.9) / 1000),
                "max": _r(hist.get_max_value() / 1000),
                "count": hist.get_total_count(),
            },
            "outcomes": dict(outcomes),
            "redis": None,
        }
        if uses_redis:
            scripts = stats.get("evalsha", 0) + stats.get("eval", 0)
            row["redis"] = {
                "server_commands_per_call": _r(per_call(sum(stats.values()))),
                "scripts_per_call": _r(per_call(scripts)),
                "client_commands_per_call": _r(per_call(sum(r["client_commands"] for r in group))),
                "round_trips_per_call": _r(per_call(sum(r["client_round_trips"] for r in group))),
                "commandstats_per_call": {
                    name: _r(per_call(n), 4) for name, n in sorted(stats.items())
                },
            }
        rows.append(row)
    rows.sort(key=lambda r: (r["concurrency"], r["loop"] != "asyncio", _rank(r["variant"])))
    return rows


def _base(variant: str) -> str:
    """`nexus-redis+json` -> `nexus-redis`: the backend variant without its logging set-up."""
    return variant.partition("+")[0]


def _mode(variant: str) -> str:
    """The logging set-up of a nexus variant: default (nothing configured), warn or json."""
    return variant.partition("+")[2] or "default"


_MODES = ["default", "warn", "json"]
_MARKERS = {"default": "o", "warn": "s", "json": "^"}


def _rank(variant: str) -> tuple[int, int]:
    base, mode = _base(variant), _mode(variant)
    return (
        _ORDER.index(base) if base in _ORDER else len(_ORDER),
        _MODES.index(mode) if mode in _MODES else len(_MODES),
    )


def strip_runs(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-run records for the JSON, without the encoded histograms."""
    keep = (
        "variant", "loop", "concurrency", "round", "calls", "elapsed", "calls_per_s", "cpu_s",
        "outcomes", "client_commands", "client_round_trips", "stub_requests",
        "stub_cpu_us_per_request", "block", "machine_busy", "load1",
    )  # fmt: skip
    return [{k: run[k] for k in keep if k in run} for run in runs]


def _row(doc: dict[str, Any], variant: str, loop: str = "asyncio") -> dict[str, Any] | None:
    rows: list[dict[str, Any]] = [
        r for r in doc["throughput"] if r["variant"] == variant and r["loop"] == loop
    ]
    if not rows:
        return None
    at_100 = [r for r in rows if r["concurrency"] == 100]
    return at_100[0] if at_100 else max(rows, key=lambda r: int(r["concurrency"]))


def targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets (and the reference figures measured earlier), checked."""
    out: list[dict[str, Any]] = []

    def check(
        name: str,
        value: float | None,
        target: float | None,
        note: str = "",
        cpu: float | None = None,
    ) -> None:
        ok = None if value is None or target is None else value >= target
        out.append(
            {
                "target": name,
                "measured": value,
                "measured_cpu": cpu,
                "goal": target,
                "ok": ok,
                "note": note,
            }
        )

    redis = _row(doc, "nexus-redis")
    memory = _row(doc, "nexus-memory")
    cluster = _row(doc, "nexus-cluster")
    peers = _row(doc, "peers-redis")
    if redis:
        c = f"c={redis['concurrency']}"
        check("nexus-redis / raw aiohttp", redis["ratio_to_raw"], 0.6, c, redis["cpu_ratio_to_raw"])
        check(
            "nexus-redis / peer stack",
            redis["ratio_to_peers"],
            4.0,
            "limits+purgatory+tenacity",
            redis["cpu_ratio_to_peers"],
        )
    if memory:
        check(
            "nexus-memory / raw aiohttp",
            memory["ratio_to_raw"],
            0.85,
            "",
            memory["cpu_ratio_to_raw"],
        )
    # Issue 14: each logging set-up beside raw aiohttp (100 coroutines, one process).
    for variant, goal, note in (
        ("nexus-memory", 0.90, "logging not configured (default)"),
        ("nexus-redis", 0.80, "logging not configured (default)"),
        ("nexus-memory+warn", None, "structlog filtered at WARNING"),
        ("nexus-redis+warn", None, "structlog filtered at WARNING"),
        ("nexus-memory+json", 0.80, "JSON audit-log recipe"),
        ("nexus-redis+json", 0.70, "JSON audit-log recipe"),
    ):
        row = _row(doc, variant)
        if row:
            check(
                f"{variant} / raw ({note})", row["ratio_to_raw"], goal, "", row["cpu_ratio_to_raw"]
            )
    # Issue 16: the hot path with logging filtered (WARNING), 100 coroutines, one process.
    for variant, goal, note in (
        ("nexus-memory+warn", 0.95, "memory"),
        ("nexus-redis+warn", 0.88, "Redis"),
        ("nexus-redis-idem+warn", 0.60, "idempotent Redis POST / raw GET"),
    ):
        row = _row(doc, variant)
        if row:
            check(
                f"issue 16: {variant} / raw",
                row["ratio_to_raw"],
                goal,
                note,
                row["cpu_ratio_to_raw"],
            )
    idem = _row(doc, "nexus-redis-idem+warn") or _row(doc, "nexus-redis-idem")
    raw_post = _row(doc, "raw-post")
    if idem and raw_post and raw_post["ratio_to_raw"] and raw_post["cpu_ratio_to_raw"]:
        check(
            "issue 16: idempotent Redis POST / raw POST",
            round(idem["ratio_to_raw"] / raw_post["ratio_to_raw"], 3),
            0.75,
            "the same request by hand",
            round(idem["cpu_ratio_to_raw"] / raw_post["cpu_ratio_to_raw"], 3),
        )
    if cluster:
        check(
            "nexus-cluster / raw aiohttp",
            cluster["ratio_to_raw"],
            0.80,
            "issue 16 (logging not configured)",
            cluster["cpu_ratio_to_raw"],
        )
    if peers:
        check(
            "peer stack (redis) / raw aiohttp",
            peers["ratio_to_raw"],
            None,
            "0.21x earlier",
            peers["cpu_ratio_to_raw"],
        )
    raw_uv = _row(doc, "raw", "uvloop")
    if raw_uv:
        check(
            "raw aiohttp on uvloop / raw",
            raw_uv["ratio_to_raw"],
            None,
            "1.23x earlier",
            raw_uv["cpu_ratio_to_raw"],
        )
    redis_uv = _row(doc, "nexus-redis", "uvloop")
    if redis_uv:
        check(
            "nexus-redis on uvloop / raw",
            redis_uv["ratio_to_raw"],
            None,
            "",
            redis_uv["cpu_ratio_to_raw"],
        )
    for acc in doc["rate_limit"]:
        if acc["variant"].startswith("nexus-"):
            over = acc["over_admission_pct"]
            out.append(
                {
                    "target": f"{acc['variant']} over-admission (%)",
                    "measured": over,
                    "measured_cpu": None,
                    "goal": 0.0,
                    "ok": over == 0.0,
                    "note": f"{acc['workers']} workers, {acc['limit_per_s']}/s",
                }
            )
    return out


# -- markdown ------------------------------------------------------------------------------------


def _fmt(value: Any, spec: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and spec:
        return format(value, spec)
    return str(value)


def _errors(outcomes: dict[str, int]) -> str:
    bad = {k: v for k, v in outcomes.items() if k != "ok"}
    total = sum(outcomes.values())
    if not bad or not total:
        return "0"
    return ", ".join(f"{k} {v / total:.1%}" for k, v in sorted(bad.items()))


def markdown(doc: dict[str, Any]) -> str:
    """The results as markdown tables (throughput, rate limit, breaker, targets, machine)."""
    meta = doc["meta"]
    opts = meta["options"]
    load = meta["load"]
    lines = [
        "### Throughput and latency (one worker process)",
        "",
        f"Stub faults: {_faults(opts['faults'])}; {opts['rounds']} interleaved rounds of "
        f"{opts['duration']} s per variant (after {opts['warmup']} s warm-up); calls/s is the "
        "median over rounds, ratios are per-round ratios (then the median) to raw aiohttp on "
        "the default asyncio loop at the same concurrency. CPU is the worker's own CPU time; "
        "the *(CPU)* ratios compare calls per CPU-second of the worker (what each variant would "
        "reach with a whole core to itself), which other load on the machine disturbs less. "
        "Redis: *server* counts every command Redis executed (including `redis.call()` inside "
        "scripts, from INFO commandstats), *sent* the commands the client wrote, *round trips* "
        "its socket writes (a pipelined batch is one). Logging: `nexus-memory` and "
        "`nexus-redis` run as a new user gets them (nothing configured: stdlib logging, "
        "silent), `+warn` with structlog filtered at WARNING, `+json` with the JSON audit-log "
        "recipe of docs/operations.md (one line per call, to /dev/null).",
        "",
        "| variant | loop | conc | calls/s | x raw | x peers | CPU µs/call | x raw (CPU) "
        "| x peers (CPU) | p50 ms | p99 ms "
        "| p99.9 ms | Redis cmds/call (server) | scripts/call | sent/call | round trips/call "
        "| errors |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for row in doc["throughput"]:
        lat = row["latency_ms"]
        rd = row["redis"] or {}
        lines.append(
            f"| {row['variant']} | {row['loop']} | {row['concurrency']} "
            f"| {_fmt(row['calls_per_s'], ',.0f')} | {_fmt(row['ratio_to_raw'], '.2f')} "
            f"| {_fmt(row['ratio_to_peers'], '.2f')} | {_fmt(row['cpu_us_per_call'], '.0f')} "
            f"| {_fmt(row['cpu_ratio_to_raw'], '.2f')} | {_fmt(row['cpu_ratio_to_peers'], '.2f')} "
            f"| {_fmt(lat['p50'], '.2f')} | {_fmt(lat['p99'], '.2f')} "
            f"| {_fmt(lat['p99.9'], '.2f')} "
            f"| {_fmt(rd.get('server_commands_per_call'), '.2f')} "
            f"| {_fmt(rd.get('scripts_per_call'), '.2f')} "
            f"| {_fmt(rd.get('client_commands_per_call'), '.2f')} "
            f"| {_fmt(rd.get('round_trips_per_call'), '.3f')} | {_errors(row['outcomes'])} |"
        )
    if doc["rate_limit"]:
        lines += [
            "",
            "### Rate-limit accuracy (shared limit, several worker processes)",
            "",
            "Admitted = requests that reached the stub. Allowed = what the limiter may admit "
            "from the common start to the last arrival (token bucket: burst + rate x time; "
            "limits' moving window: one full window + rate x time).",
            "",
            "| variant | workers x conc | limit/s | admitted | allowed | over-admission "
            "| steady mean/s | max 1-s window (after 1st s) | client outcomes |",
            "|---|--:|--:|--:|--:|--:|--:|--:|---|",
        ]
        for acc in doc["rate_limit"]:
            lines.append(
                f"| {acc['variant']} | {acc['workers']} x {acc['concurrency_per_worker']} "
                f"| {acc['limit_per_s']} | {acc['admitted']} | {acc['allowed']:.0f} "
                f"| {acc['over_admission_pct']:.2f}% | {_fmt(acc['steady_mean_per_s'])} "
                f"| {_fmt(acc['max_1s_window_after_first'])} "
                f"| {_outcomes(acc['client_outcomes'])} |"
            )
    if doc["breaker"]:
        lines += [
            "",
            "### Breaker convergence (failure burst: every request fails from a known instant)",
            "",
            "| variant | workers x conc | threshold | every worker rejecting after "
            "| per worker (s) | requests that reached the failing stub |",
            "|---|--:|--:|--:|---|--:|",
        ]
        for b in doc["breaker"]:
            per = ", ".join(_fmt(p, ".3f") for p in b["per_worker_s"])
            conv = f"{b['convergence_s'] * 1000:.0f} ms" if b["converged"] else "not converged"
            lines.append(
                f"| {b['variant']} | {b['workers']} x {b['concurrency_per_worker']} "
                f"| {b['failure_threshold']} | {conv} | {per} | {b['requests_after_failure']} |"
            )
    if doc["targets"]:
        lines += [
            "",
            "### Targets",
            "",
            "*measured* is the calls/s ratio; *by CPU* the calls-per-CPU-second ratio; *ok* "
            "judges the calls/s ratio.",
            "",
            "| target | measured | by CPU | goal | ok | note |",
            "|---|--:|--:|--:|---|---|",
        ]
        for t in doc["targets"]:
            ok = {True: "yes", False: "**no**", None: "-"}[t["ok"]]
            goal = "-" if t["goal"] is None else f"≥ {t['goal']:.2f}"
            spec = ".2f"
            if t["target"].endswith("(%)"):
                goal, spec = "0", ".1f"
            lines.append(
                f"| {t['target']} | {_fmt(t['measured'], spec)} | {_fmt(t['measured_cpu'], spec)} "
                f"| {goal} | {ok} | {t['note']} |"
            )
    busy = _median([r["machine_busy"] for r in doc["runs"] if r.get("machine_busy")])
    lines += [
        "",
        "### Machine",
        "",
        f"- {load['cpus']} CPUs; {meta['platform']}; Python {meta['versions'].get('python')}",
        f"- load before: `{load['uptime_start']}`",
        f"- load after: `{load['uptime_end']}`",
        f"- 1-min load during the run: min {_fmt(load['load1_min'], '.2f')}, mean "
        f"{_fmt(load['load1_mean'], '.2f')}, max {_fmt(load['load1_max'], '.2f')}; CPU busy "
        f"(whole machine, ours included): {_fmt(load['cpu_busy_fraction'], '.2f')}",
        f"- machine CPU busy during the throughput runs (median of runs): {_fmt(busy, '.2f')}; "
        "the worker, the stub and Redis use at most about 1.5 of the 2 CPUs, the rest is "
        "other work on the machine",
        f"- versions: {', '.join(f'{k} {v}' for k, v in meta['versions'].items())}",
        f"- run took {meta['wall_s']} s",
    ]
    return "\n".join(lines) + "\n"


def _faults(f: dict[str, Any]) -> str:
    low, high = f["latency"]
    lat = "0" if not high else (f"{low * 1000:g} ms" if low == high else
                                f"{low * 1000:g}-{high * 1000:g} ms")  # fmt: skip
    return f"latency {lat}, 5xx {f['error_rate']:.1%}, 429 {f['throttle_rate']:.1%}"


def _outcomes(outcomes: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))


# -- files -----------------------------------------------------------------------------------------


def write(doc: dict[str, Any], out: Path, *, plots: bool = True) -> None:
    """results.json, results.md and (unless `plots` is False) the PNGs, into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    (out / "results.md").write_text(markdown(doc))
    if plots:
        _plots(doc, out)


def _plots(doc: dict[str, Any], out: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    rows = doc["throughput"]
    if len({row["concurrency"] for row in rows}) == 1:
        # One concurrency (a --quick run): lines of one point each say nothing; bars do.
        _bar_plots(plt, rows, out)
    else:
        _line_plots(plt, rows, out)

    if doc["rate_limit"]:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        limit = doc["rate_limit"][0]["limit_per_s"]
        for acc in doc["rate_limit"]:
            ax.plot(
                range(1, len(acc["per_second"]) + 1),
                acc["per_second"],
                marker="o",
                color=_COLOURS.get(acc["variant"]),
                label=f"{acc['variant']} ({acc['workers']} workers)",
            )
        ax.axhline(limit, color="black", linestyle=":", label=f"limit {limit}/s")
        ax.set_xlabel("second since the common start")
        ax.set_ylabel("requests admitted at the stub per second")
        ax.set_title("Admitted per second vs the configured limit")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "rate_limit.png", dpi=90)
        plt.close(fig)


def _label(variant: str, loop: str) -> str:
    return f"{variant} ({loop})"


def _style(variant: str, loop: str) -> dict[str, Any]:
    return {
        "color": _COLOURS.get(_base(variant)),
        "marker": _MARKERS.get(_mode(variant), "o"),
        "linestyle": "-" if loop == "asyncio" else "--",
    }


def _line_plots(plt: Any, rows: list[dict[str, Any]], out: Path) -> None:
    """Throughput and latency against concurrency, one line per variant and loop."""
    series: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        series[(row["variant"], row["loop"])].append(row)
    keys = sorted(series, key=lambda k: (_rank(k[0]), k[1]))

    fig, ax = plt.subplots(figsize=(10, 5))
    for key in keys:
        pts = sorted(series[key], key=lambda r: r["concurrency"])
        ax.plot(
            [p["concurrency"] for p in pts],
            [p["calls_per_s"] for p in pts],
            label=_label(*key),
            **_style(*key),
        )
    ax.set_xscale("log")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("concurrent calls (one worker process)")
    ax.set_ylabel("calls/s")
    ax.set_title("Throughput by concurrency")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=90)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(13, 5), sharey=False)
    for ax, pct in zip(axes, ("p50", "p99"), strict=True):
        for key in keys:
            pts = sorted(series[key], key=lambda r: r["concurrency"])
            ax.plot(
                [p["concurrency"] for p in pts],
                [p["latency_ms"][pct] for p in pts],
                label=_label(*key),
                **_style(*key),
            )
        ax.set_xscale("log")
        ax.set_ylim(bottom=0)
        ax.set_xlabel("concurrent calls")
        ax.set_ylabel(f"{pct} latency (ms)")
        ax.set_title(f"{pct} latency by concurrency")
        ax.grid(True, alpha=0.3)
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=90)
    plt.close(fig)


def _bar_plots(plt: Any, rows: list[dict[str, Any]], out: Path) -> None:
    """Throughput and latency of each variant at the one concurrency measured, as bars."""
    rows = sorted(rows, key=lambda r: (_rank(r["variant"]), r["loop"]))
    labels = [_label(r["variant"], r["loop"]) for r in rows]
    colours = [_COLOURS.get(_base(r["variant"]), "grey") for r in rows]
    hatches = ["" if r["loop"] == "asyncio" else "//" for r in rows]
    conc = rows[0]["concurrency"] if rows else 0
    height = max(3.0, 0.45 * len(rows) + 1.5)

    def bars(ax: Any, values: list[float], xlabel: str, title: str, digits: str) -> None:
        ys = range(len(rows))
        drawn = ax.barh(ys, values, color=colours, edgecolor="black", linewidth=0.5)
        for bar, hatch in zip(drawn, hatches, strict=True):
            bar.set_hatch(hatch)
        ax.set_yticks(list(ys), labels, fontsize=8)
        ax.invert_yaxis()  # the first variant (raw) on top
        ax.bar_label(drawn, fmt=digits, fontsize=7, padding=2)
        ax.set_xlim(0, max(values, default=1) * 1.18)
        ax.set_xlabel(xlabel)
        ax.set_title(title)
        ax.grid(True, axis="x", alpha=0.3)

    fig, ax = plt.subplots(figsize=(9, height))
    bars(
        ax,
        [r["calls_per_s"] or 0.0 for r in rows],
        "calls/s (one worker process)",
        f"Throughput at concurrency {conc}",
        "%.0f",
    )
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=90)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(13, height))
    for ax, pct in zip(axes, ("p50", "p99"), strict=True):
        bars(
            ax,
            [r["latency_ms"][pct] or 0.0 for r in rows],
            f"{pct} latency (ms)",
            f"{pct} latency at concurrency {conc}",
            "%.1f",
        )
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=90)
    plt.close(fig)
