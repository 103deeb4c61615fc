"""Issue 9 across OS processes: shared backpressure, the retry budget, breaker events once.

Four spawned processes, one real Redis (or the 3-master cluster), one stub vendor in the test
process that logs every request with its arrival time. Counts are exact.
"""

from __future__ import annotations

import asyncio

import pytest

from tests._multiproc import run_in_processes
from tests._redis_servers import RedisCluster3, RedisServer
from tests.multiprocess import _beyond_workers as workers
from tests.multiprocess._stub import running_scripted_vendor

pytestmark = pytest.mark.multiprocess

PROCESSES = 4
# Redis TIME (which sets the pause) and the stub's time.monotonic() are different clocks; NTP
# may slew one against the other by up to 0.05 %, i.e. 1 ms over the 2 s pause.
CLOCK_SLEW = 0.002


@pytest.mark.redis
async def test_one_429_pauses_its_service_in_every_process_for_its_retry_after_only(
    redis_server: RedisServer, redis_flush: None
) -> None:
    calls = 5  # per process and per phase

    def answer(lane: str, n: int) -> tuple[int, dict[str, str]]:
        if lane == "pay" and n == 1:
            return 429, {"Retry-After": f"{workers.PAUSE:g}"}
        return 200, {}

    async with running_scripted_vendor(answer) as vendor:
        outcomes = await asyncio.to_thread(
            run_in_processes,
            workers.shared_backpressure,
            PROCESSES,
            redis_server.url,
            vendor.url,
            calls,
            timeout=30.0,
        )
        results = [o.unwrap() for o in outcomes]
    firsts, rejected, others, waited = (
        [r[0] for r in results],
        [x for r in results for x in r[1]],
        [x for r in results for x in r[2]],
        [x for r in results for x in r[3]],
    )
    # Worker 0's one POST drew the 429; it was not resent and it did not stop the others' calls.
    assert firsts == [429, None, None, None]
    # During the pause: 20 calls to "pay" failed fast in all four processes, sending nothing...
    assert len(rejected) == PROCESSES * calls
    assert all(0.0 < r <= workers.PAUSE for r in rejected), rejected
    # ...while 20 calls to "sms" went through at once.
    assert others == [200] * PROCESSES * calls
    # The 20 calls allowed to wait for the pause all got their 200.
    assert waited == [200] * PROCESSES * calls

    pay, sms = vendor.log["pay"], vendor.log["sms"]
    assert vendor.statuses("pay") == [429] + [200] * PROCESSES * calls  # 21 requests
    assert vendor.statuses("sms") == [200] * PROCESSES * calls  # 20 requests
    served_429 = pay[0][1]
    # Nothing for "pay" reached the vendor within 2 s of the 429 leaving it; then all 20 did.
    after = sorted(arrived - served_429 for arrived, _, _ in pay[1:])
    assert after[0] >= workers.PAUSE - CLOCK_SLEW, after
    assert after[-1] < workers.PAUSE + 1.0, after
    # "sms" requests arrived inside the pause: the other service was never held back.
    assert all(arrived - served_429 < workers.PAUSE for arrived, _, _ in sms)


@pytest.mark.redis
async def test_a_5xx_storm_from_4_processes_retries_exactly_the_budget_floor(
    redis_server: RedisServer, redis_flush: None
) -> None:
    calls, floor = 25, 7  # 25 GETs per process; a floor of 7 retries per second

    async with running_scripted_vendor(lambda lane, n: (503, {})) as vendor:
        outcomes = await asyncio.to_thread(
            run_in_processes,
            workers.budget_storm,
            PROCESSES,
            redis_server.url,
            vendor.url,
            calls,
            float(floor),
            timeout=30.0,
        )
        results = [o.unwrap() for o in outcomes]
    assert {status for r in results for status, _ in r[0]} == {503}
    attempts = [a for r in results for _, a in r[0]]
    refused = sum(r[1] for r in results)
    # 100 first attempts, and exactly 7 retries fleet-wide (one second of the floor; no earning
    # at budget_ratio=0, no refill at a fake instant), however the 4 processes shared them.
    assert len(attempts) == PROCESSES * calls
    assert sum(a - 1 for a in attempts) == floor
    assert vendor.statuses("storm") == [503] * (PROCESSES * calls + floor)  # 107 requests
    # Every call that stopped short of max_attempts was stopped by the budget, once.
    assert refused == sum(a < 3 for a in attempts)


def _check_breaker_fleet(
    results: list[tuple[list[int | str], list[str], int]], statuses: list[int], calls: int
) -> None:
    storm = [x for r in results for x in r[0]]
    failures = storm.count(503)
    # 40 storm calls: the ones admitted before the breaker opened reached the vendor (at least
    # the 5 that opened it), every other one was refused without a request.
    assert len(storm) == PROCESSES * calls
    assert failures >= 5
    assert storm.count("CircuitOpenError") == PROCESSES * calls - failures
    # After healing: one probe closed the breaker, then one call per process; 4 requests in all.
    assert statuses == [503] * failures + [200] * PROCESSES
    # Fleet-wide, one "open", one "half_open" and one "closed", each reported by the process
    # whose script made the move.
    transitions = [t for r in results for t in r[1]]
    assert sorted(transitions) == ["closed", "half_open", "open"]


async def _breaker_fleet(url: str, *, cluster: bool) -> None:
    calls = 10  # storm calls per process

    async with running_scripted_vendor(lambda lane, n: (503, {})) as vendor:
        vendor.answer = lambda lane, n: (200 if "healed" in vendor.flags else 503, {})
        outcomes = await asyncio.to_thread(
            run_in_processes,
            workers.breaker_fleet,
            PROCESSES,
            url,
            vendor.url,
            calls,
            cluster,
            PROCESSES,
            timeout=30.0,
        )
        results = [o.unwrap() for o in outcomes]
    _check_breaker_fleet(results, vendor.statuses("flaky"), calls)


@pytest.mark.redis
async def test_a_breaker_opened_and_closed_by_4_processes_reports_each_transition_once(
    redis_server: RedisServer, redis_flush: None
) -> None:
    await _breaker_fleet(redis_server.url, cluster=False)


@pytest.mark.cluster
async def test_on_a_cluster_4_processes_report_each_breaker_transition_once(
    redis_cluster: RedisCluster3, redis_cluster_flush: None
) -> None:
    await _breaker_fleet(redis_cluster.url, cluster=True)
