"""One seeded chaos run: workers pay keys while Redis and the vendor misbehave; then a verdict.

The controller (this process) owns the faults. On a schedule drawn from the seed it cuts every
Redis connection (a proxy or an idle timeout), stalls them (a hung server), SIGKILLs and
restarts Redis (AOF with fsync on every write, so a restart loses nothing: any lost answer is
the library's fault, not Redis's), and SIGKILLs workers (a replacement takes over). The vendor
injects 503/429/409 before charging and timeouts/resets after charging; workers cancel 5% of
their own calls. Afterwards, with every fault off, the checker replays every key and reads the
vendor's charge log:

(a) no key was charged twice by the lane without idempotency (the other lane deduplicates);
(b) every 2xx a caller saw is replayed, with the same body, for that key afterwards;
(c) no key is wedged past its lease: a later call gets an answer, not `IdempotencyInProgress`;
(d) no lane admitted more than burst + rate x time;
(e) every exception a caller saw is a `ConnectorError`.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path

from nexus_connector_async import (
    CircuitBreakerConfig,
    CircuitOpenError,
    Connector,
    ConnectorError,
    Endpoint,
    IdempotencyKey,
    Response,
)
from tests._redis_servers import RedisProcess
from tests.chaos import _workers
from tests.chaos._proxy import FaultProxy
from tests.chaos._vendor import ChaosVendor


@dataclass
class ChaosReport:
    seed: int
    seconds: float
    calls: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    charges: int = 0
    violations: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [
            f"chaos seed={self.seed} seconds={self.seconds:g}: {self.calls} calls, "
            f"{self.charges} charges, {len(self.violations)} invariant violations",
            "  outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items())),
            "  faults:   " + ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())),
        ]
        lines += [f"  VIOLATION {v}" for v in self.violations[:20]]
        return "\n".join(lines)


async def chaos_run(seed: int, seconds: float, tmp: Path, *, workers: int = 3) -> ChaosReport:
    """Run the workers under faults for `seconds`, then check the invariants."""
    report = ChaosReport(seed, seconds)
    rng = random.Random(seed)
    aof = ["--appendonly", "yes", "--appendfsync", "always"]
    with RedisProcess(extra_args=aof) as server:
        proxy = await FaultProxy(server.port).start()
        vendor = await ChaosVendor(seed).start()
        ctx = multiprocessing.get_context("spawn")
        live: list[BaseProcess] = []
        start = time.monotonic()

        def spawn() -> None:
            index = len(list(tmp.glob("w*.jsonl")))
            log = tmp / f"w{index}.jsonl"
            log.touch()
            remaining = max(0.5, seconds - (time.monotonic() - start))
            args = (index, seed, proxy.url, vendor.url, remaining, str(log))
            proc = ctx.Process(target=_workers.run_worker, args=args, daemon=True)
            proc.start()
            live.append(proc)

        try:
            for _ in range(workers):
                spawn()
            await _inject(rng, report, server, proxy, live, spawn, start + seconds)
            for proc in live:
                await asyncio.to_thread(proc.join, 60.0)
                if proc.is_alive():
                    proc.kill()
                    report.violations.append(f"a worker did not finish (pid {proc.pid})")
            vendor.faults_on = False
            report.faults.update(vendor.injected)
            await _check(report, tmp, server.url, vendor)
        finally:
            for proc in live:
                if proc.is_alive():
                    proc.kill()
            await proxy.aclose()
            await vendor.aclose()
    return report


async def _inject(
    rng: random.Random,
    report: ChaosReport,
    server: RedisProcess,
    proxy: FaultProxy,
    live: list[BaseProcess],
    spawn: object,
    until: float,
) -> None:
    assert callable(spawn)
    await asyncio.sleep(0.5)  # let the workers start before the first fault
    while time.monotonic() < until - 1.0:
        await asyncio.sleep(rng.uniform(0.2, 1.0))  # the schedule: time to the next fault
        kind = rng.choice(("cut", "cut", "stall", "restart", "kill"))
        if kind == "cut":
            proxy.cut()
            report.faults["redis connections cut"] += 1
        elif kind == "stall":
            await proxy.stall(rng.uniform(0.2, 1.5))
            report.faults["redis stalled"] += 1
        elif kind == "restart":
            server.kill()
            await asyncio.sleep(rng.uniform(0.0, 0.5))  # down for a moment
            await asyncio.to_thread(server.start)
            report.faults["redis SIGKILL + restart"] += 1
        else:
            running = [p for p in live if p.is_alive()]
            if running:
                victim = rng.choice(running)
                assert victim.pid is not None
                os.kill(victim.pid, signal.SIGKILL)
                spawn()
                report.faults["worker SIGKILL"] += 1


async def _check(report: ChaosReport, tmp: Path, redis_url: str, vendor: ChaosVendor) -> None:
    records = []
    for log in sorted(tmp.glob("w*.jsonl")):
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:  # the last line of a worker SIGKILLed in the middle of writing it
                report.outcomes["log line cut by a SIGKILL"] += 1
    report.calls = len(records)
    seen_ok: dict[str, str] = {}
    for r in records:
        report.outcomes[r["outcome"] if r["outcome"] != "error" else r["error"]] += 1
        if r["outcome"] == "foreign":
            report.violations.append(f"(e) {r['key']}: a non-ConnectorError {r['error']}")
        if r["outcome"] == "ok" and 200 <= r["status"] < 300:
            first = seen_ok.setdefault(r["key"], r["body"])
            if first != r["body"]:
                report.violations.append(f"(b) {r['key']}: two different 2xx bodies")
    # (d) before the final replays add arrivals of their own.
    limit = _workers.LIMIT
    for lane, arrivals in vendor.arrivals.items():
        if arrivals:
            allowed = limit.burst + limit.refill_per_second * (arrivals[-1] - arrivals[0]) + 1
            if len(arrivals) > allowed:
                report.violations.append(f"(d) {lane}: {len(arrivals)} admitted > {allowed:.0f}")
    lanes = {name: e.with_rate_limit(None) for name, e in _workers.endpoints(vendor.url).items()}
    keys = sorted({(r["lane"], r["key"]) for r in records})
    # Waits out any lease a dead worker left behind (the lease ends on Redis's clock).
    async with _workers.connector(redis_url) as c:
        c_wait = _workers.LEASE * 2 + 1.0
        for lane, key in keys:
            try:
                resp = await _final_call(c, lanes[lane], lane, key, c_wait)
            except ConnectorError as exc:
                name = type(exc).__name__
                if name == "IdempotencyInProgress":
                    report.violations.append(f"(c) {key}: still in progress past its lease")
                elif name == "OutcomeUnknown" and lane == "plain" and key not in seen_ok:
                    pass  # at most once: the app must reconcile it (rule 19)
                else:
                    report.violations.append(f"(b/c) {key}: a final call raised {name}: {exc}")
                continue
            if key in seen_ok and not (resp.replayed and resp.body.decode() == seen_ok[key]):
                report.violations.append(f"(b) {key}: a 2xx seen was not replayed afterwards")
    report.charges = len(vendor.effects)
    per_key = Counter((e.lane, e.key) for e in vendor.effects)
    for (lane, key), n in sorted(per_key.items()):
        if n > 1:
            report.violations.append(f"(a) {key}: charged {n} times on the {lane} lane")


async def _final_call(
    c: Connector, endpoint: Endpoint, lane: str, key: str, wait: float
) -> Response:
    deadline = time.monotonic() + wait
    # A breaker the run's last faults opened stays open for its recovery timeout (Redis's
    # clock): wait for it as an app would (its retry_after), within one recovery and a margin.
    breaker_deadline = time.monotonic() + CircuitBreakerConfig().recovery_timeout + 10.0
    while True:  # an in-progress key gets its lease's time to end, then it must answer
        try:
            return await c.execute(
                lane, endpoint, {"order": key}, idempotency_key=IdempotencyKey(key)
            )
        except CircuitOpenError as exc:
            if time.monotonic() > breaker_deadline:
                raise
            await asyncio.sleep(min(max(exc.retry_after or 0.1, 0.05), 1.0))
        except ConnectorError as exc:
            if type(exc).__name__ != "IdempotencyInProgress" or time.monotonic() > deadline:
                raise
