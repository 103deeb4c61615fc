"""Scripts never run on client time in production (api.md rule 22).

`RedisBackend(clock=...)` passes its clock's time to the Lua scripts, so it accepts only the fake
clock of `nexus_connector_async.testing`; any other clock, the public `SystemClock` included, is
refused with `ConfigError` before a command is sent. Without a clock the scripts read Redis TIME.
"""

from __future__ import annotations

import time

import pytest
from redis.asyncio import Redis

from nexus_connector_async import Clock, ConfigError, RedisBackend, SystemClock
from nexus_connector_async.testing import FakeClock


class WallClock:
    """A hand-written clock: as wrong for scripts as `SystemClock`."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        return None


@pytest.mark.parametrize("clock", [SystemClock(), WallClock()], ids=["SystemClock", "custom"])
async def test_a_non_testing_clock_is_refused(clock: Clock) -> None:
    client = Redis(host="127.0.0.1", port=1)  # never contacted: refused before any command
    try:
        with pytest.raises(ConfigError, match="FakeClock"):
            RedisBackend(client, clock=clock)
        with pytest.raises(ConfigError, match="FakeClock"):
            RedisBackend.from_url("redis://127.0.0.1:1/0", clock=clock)
    finally:
        await client.aclose()


async def test_the_fake_clock_and_no_clock_are_accepted() -> None:
    client = Redis(host="127.0.0.1", port=1)
    try:
        for clock in (FakeClock(), None):
            backend = RedisBackend(client, clock=clock)
            assert (backend._now() != b"") is (clock is not None)  # time reaches scripts only then
            await backend.aclose()
    finally:
        await client.aclose()
