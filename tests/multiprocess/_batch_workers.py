"""Workers for test_batched_agree: admissions and outcomes on a clock that names each tick."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import redis.asyncio as aioredis

from nexus_connector_async import CircuitBreakerConfig, RateLimitConfig, RedisBackend
from nexus_connector_async.testing import FakeClock
from nexus_connector_async.typing import AdmissionReason

BREAKER = CircuitBreakerConfig(failure_threshold=2, recovery_timeout=0.5, half_open_max_calls=2)
LIMIT = RateLimitConfig(rate=200, period=1, burst=5, max_wait=0.02)
SERVICE = "agree"
BURST = "agree-burst"  # never fails: a burst of it is rate limited, whatever the timing


class TickClock(FakeClock):
    """The machine's monotonic time (one for every process), made unique per process and tick:
    the time override a tick's scripts carry then tells which process and tick they were."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self._index = index
        self._at = 0.0

    def tick(self) -> None:
        at = round(time.monotonic(), 5) + self._index * 1e-7
        self._at = at if at > self._at else self._at + 1e-5

    def monotonic(self) -> float:
        return self._at


Decision = tuple[AdmissionReason, float, str, bool, bool]


async def admit_and_record(index: int, url: str, ticks: int) -> list[tuple[str, list[Decision]]]:
    """`ticks` ticks of 1-8 concurrent admissions, then their outcomes (30 % failures); per
    tick its time override and the decisions, in the order the calls were made. Worker 3 sends
    one script call per call, the others batch."""
    clock = TickClock(index)
    backend = RedisBackend(aioredis.Redis.from_url(url), owns_client=True, clock=clock)
    backend._batch_scripts = index != 3
    rng = random.Random(index)
    log: list[tuple[str, list[Decision]]] = []
    try:
        for tick in range(ticks):
            clock.tick()
            calls = [
                backend.admit(SERVICE, None, BREAKER, LIMIT, probe_lease=0.05)
                for _ in range(rng.randint(1, 8))
            ]
            admitted = await asyncio.gather(*calls)
            decisions = [decision(a) for a in admitted]
            if index == 0 and tick % 40 == 30:  # more than burst + max_wait allow: rate limited
                burst = [
                    backend.admit(BURST, None, BREAKER, LIMIT, probe_lease=0.05) for _ in range(12)
                ]
                decisions += [decision(a) for a in await asyncio.gather(*burst)]
            log.append((backend._now().decode(), decisions))
            await asyncio.gather(
                *(
                    backend.record(SERVICE, BREAKER, success=rng.random() > 0.3, probe=a.probe)
                    for a in admitted
                    if a.reason == AdmissionReason.ADMITTED
                )
            )
            if index == 0 and tick % 40 == 10:  # a failure burst: the breaker opens for sure
                for _ in range(BREAKER.failure_threshold):
                    await backend.record(SERVICE, BREAKER, success=False)
    finally:
        await backend.aclose()
    return log


def decision(a: Any) -> Decision:
    """What an admission decided (the fields a separate call must reproduce exactly)."""
    return (a.reason, a.wait, str(a.probe), a.clean, a.half_opened)
