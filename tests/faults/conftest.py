"""Fixtures for the fault tests: a scriptable loopback vendor stub and a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from nexus_connector_async.testing import FakeClock
from tests.pipeline._stub import Stub

from ._servers import serve_stub


@pytest.fixture
async def stub() -> AsyncIterator[Stub]:
    async with serve_stub() as s:
        yield s


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
