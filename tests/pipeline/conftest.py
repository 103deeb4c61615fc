"""Fixtures for the pipeline tests: a loopback vendor stub, a fake clock, a quiet connector."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from nexus_connector_async import Connector
from nexus_connector_async.testing import FakeClock

from ._stub import Stub


@pytest.fixture
async def stub() -> AsyncIterator[Stub]:
    s = Stub()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", s.handle)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    s.base = f"http://127.0.0.1:{port}"
    yield s
    await runner.cleanup()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def connector(clock: FakeClock) -> AsyncIterator[Connector]:
    async with Connector(clock=clock, idempotency_wait=5.0) as c:
        yield c
