"""Stale connections are not outages (api.md rule 20), and a half-run batch fails only its rest.

A Redis that closes idle clients (`CONFIG SET timeout 1`), `CLIENT KILL` and a restart while the
process was idle leave dead sockets behind, in the batcher's idle list and in redis-py's pool.
The next command must go on a fresh connection, not fail. A batch whose connection dies after it
was written is never resent (its commands may have run), and the replies read before the cut are
delivered to their callers: a TCP proxy of our own cuts the connection after a chosen number of
replies.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest
import redis

from nexus_connector_async import (
    BackendUnavailable,
    CircuitBreakerConfig,
    Connector,
    Endpoint,
    IdempotencyKey,
    RateLimitConfig,
    RateLimitExceeded,
    RedisBackend,
    Response,
)
from nexus_connector_async.backends._base import ADMITTED, RATE_LIMITED
from nexus_connector_async.testing import MockTransport, RecordedRequest
from tests._redis_servers import RedisProcess

pytestmark = pytest.mark.redis

T = TypeVar("T")
CB = CircuitBreakerConfig()
ONE_PER_MINUTE = RateLimitConfig.per_minute(1)


def _others(server: RedisProcess) -> int:
    """Client connections of the server other than this check's own."""
    with contextlib.closing(server.client()) as check:
        me = check.client_id()
        return sum(1 for c in check.client_list() if int(c["id"]) != me)


async def until_closed_by_server(server: RedisProcess, timeout: float = 10.0) -> None:
    """Poll (real-time deadline) until the server has closed every connection of ours."""
    async with asyncio.timeout(timeout):
        while _others(server):
            await asyncio.sleep(0.05)
    for _ in range(3):  # let the loop read the FINs already in the socket buffers
        await asyncio.sleep(0)


@pytest.fixture
async def backend(restartable_redis: RedisProcess) -> AsyncIterator[RedisBackend]:
    b = RedisBackend.from_url(restartable_redis.url, on_unavailable="fail_open")
    yield b
    await b.aclose()


async def _warm(b: RedisBackend) -> tuple[str, str]:
    """Open connections in the batcher and in the pool; exhaust the bucket; claim a key."""
    adm = await b.admit("svc", None, CB, ONE_PER_MINUTE, probe_lease=5.0)
    assert adm.reason == ADMITTED
    claim = await b.claim("svc", None, "k1", "fp", 30.0)
    assert claim.state == "acquired"
    other = await b.claim("svc", None, "k2", "fp", 30.0)
    # A wait puts a pooled connection (BLMOVE goes through the client) in redis-py's pool.
    assert (await b.wait("svc", None, "k2", "fp", 30.0, 0.05)).state == "in_progress"
    return claim.token, other.token


async def _healthy_after_idle(b: RedisBackend, token: str) -> None:
    # complete() is the first command after idling: the answer must be stored.
    assert await b.complete("svc", None, "k1", token, b"200 OK", 60.0)
    assert (await b.claim("svc", None, "k1", "fp", 30.0)).stored == b"200 OK"
    # fail_open must not bypass the exhausted bucket: Redis is healthy.
    adms = await asyncio.gather(
        *(b.admit("svc", None, CB, ONE_PER_MINUTE, probe_lease=5.0) for _ in range(20))
    )
    assert [a.reason for a in adms] == [RATE_LIMITED] * 20
    assert (await b.wait("svc", None, "k2", "fp", 30.0, 0.05)).state == "in_progress"
    assert b.available


async def test_idle_timeout_closing_connections_fails_no_call(
    restartable_redis: RedisProcess, backend: RedisBackend
) -> None:
    token, _ = await _warm(backend)
    with contextlib.closing(restartable_redis.client()) as admin:
        admin.config_set("timeout", 1)
    await until_closed_by_server(restartable_redis)
    await _healthy_after_idle(backend, token)


async def test_client_kill_of_our_connections_fails_no_call(
    restartable_redis: RedisProcess, backend: RedisBackend
) -> None:
    token, _ = await _warm(backend)
    with contextlib.closing(restartable_redis.client()) as admin:
        admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    await until_closed_by_server(restartable_redis)
    await _healthy_after_idle(backend, token)


async def test_restart_while_idle_fails_no_call(
    restartable_redis: RedisProcess, backend: RedisBackend
) -> None:
    await _warm(backend)
    restartable_redis.stop()  # SIGTERM: the server closes our sockets as it exits
    restartable_redis.start()
    for _ in range(3):
        await asyncio.sleep(0)
    # The new server knows neither the keys nor the scripts: both come back by themselves.
    assert (await backend.claim("svc", None, "k1", "fp", 30.0)).state == "acquired"
    adm = await backend.admit("svc", None, CB, ONE_PER_MINUTE, probe_lease=5.0)
    assert adm.reason == ADMITTED
    adm = await backend.admit("svc", None, CB, ONE_PER_MINUTE, probe_lease=5.0)
    assert adm.reason == RATE_LIMITED  # the real bucket answered, not fail_open's open door
    assert (await backend.wait("svc", None, "k1", "fp", 30.0, 0.05)).state == "in_progress"
    assert backend.available


# -- a connection cut after the write ----------------------------------------------------------


def _resp_end(buf: bytes, i: int) -> int | None:
    """End offset of the RESP2 value starting at `i`, or None if it is not complete yet."""
    nl = buf.find(b"\r\n", i)
    if nl < 0:
        return None
    kind, head, j = buf[i : i + 1], buf[i + 1 : nl], nl + 2
    if kind in (b"+", b"-", b":"):
        return j
    n = int(head)
    if kind == b"$":
        if n < 0:
            return j
        return j + n + 2 if len(buf) >= j + n + 2 else None
    end: int | None = j
    for _ in range(max(n, 0)):
        assert end is not None
        end = _resp_end(buf, end)
        if end is None:
            return None
    return end


class CutProxy:
    """A TCP proxy to Redis that, once armed, passes `n` more replies, then cuts both sides.

    With `hold` set it stalls instead: later replies are swallowed and the connection stays up.
    """

    def __init__(self, upstream_port: int) -> None:
        self._upstream = upstream_port
        self.cut_after: int | None = None
        self.hold = False
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0)

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _session(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        ur, uw = await asyncio.open_connection("127.0.0.1", self._upstream)
        up = asyncio.ensure_future(self._pump(cr, uw))
        down = asyncio.ensure_future(self._replies(ur, cw, uw))
        self._tasks |= {up, down}
        await asyncio.wait((up, down), return_when=asyncio.FIRST_COMPLETED)
        for w in (cw, uw):
            w.close()

    async def _pump(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()

    async def _replies(
        self, r: asyncio.StreamReader, w: asyncio.StreamWriter, upstream: asyncio.StreamWriter
    ) -> None:
        buf = b""
        held = False
        while data := await r.read(65536):
            if held:
                continue  # stalled: Redis answered, nothing reaches the client
            buf += data
            if self.cut_after is None:
                w.write(buf)
                buf = b""
                await w.drain()
                continue
            pos = 0
            while self.cut_after and (end := _resp_end(buf, pos)) is not None:
                pos, self.cut_after = end, self.cut_after - 1
            w.write(buf[:pos])
            buf = buf[pos:]
            await w.drain()
            if self.cut_after == 0:
                self.cut_after = None
                if self.hold:
                    held = True
                    continue
                w.transport.abort()  # the client loses the connection mid-batch
                upstream.close()
                return


@pytest.fixture
async def proxy(restartable_redis: RedisProcess) -> AsyncIterator[CutProxy]:
    p = CutProxy(restartable_redis.port)
    await p.start()
    yield p
    await p.close()


async def _outcomes(*aws: Any) -> list[Any]:
    return list(await asyncio.gather(*aws, return_exceptions=True))


async def test_cut_after_the_write_is_not_resent(proxy: CutProxy) -> None:
    b = RedisBackend.from_url(proxy.url)
    try:
        assert await b.add("counter", 1) == (True, 1)  # connection and script in place
        proxy.cut_after = 0  # Redis runs the batch; no reply reaches us
        out = await _outcomes(b.add("counter", 1), b.add("counter", 1))
        assert all(isinstance(o, BackendUnavailable) for o in out), out
        # Both commands ran exactly once (1 + 2 = 3): nothing was resent behind our back.
        assert await _eventually_ok(lambda: b.add("counter", 1)) == (True, 4)
    finally:
        await b.aclose()


async def test_cut_mid_batch_fails_only_the_unread_commands(proxy: CutProxy) -> None:
    b = RedisBackend.from_url(proxy.url)
    try:
        assert await b.add("warm", 1) == (True, 1)
        proxy.cut_after = 1  # the first reply arrives, then the connection dies
        # (two services: one service's claims of one tick would share one script call)
        first, second = await _outcomes(
            b.claim("svc", None, "a", "fp", 30.0), b.claim("other", None, "b", "fp", 30.0)
        )
        # The claim Redis granted and we read is ours: not an error, not a stranded key.
        assert not isinstance(first, BaseException), first
        assert first.state == "acquired"
        assert isinstance(second, BackendUnavailable)  # its outcome is unknown
        claim = await _eventually_ok(lambda: b.claim("svc", None, "a", "fp", 30.0))
        assert claim.state == "in_progress"
        assert await b.complete("svc", None, "a", first.token, b"done", 60.0)
    finally:
        await b.aclose()


async def test_a_stall_mid_batch_fails_only_the_unread_commands(proxy: CutProxy) -> None:
    b = RedisBackend.from_url(proxy.url, timeout=0.3)
    try:
        assert (await b.claim("svc", None, "warm", "fp", 30.0)).state == "acquired"  # script
        assert not await b.forget("svc", None, "b")  # (and the second command's)
        proxy.cut_after, proxy.hold = 1, True  # the first reply arrives, then Redis "hangs"
        # (two scripts: one service's claims of one tick would share one script call)
        first, second = await _outcomes(
            b.claim("svc", None, "a", "fp", 30.0), b.forget("svc", None, "b")
        )
        assert not isinstance(first, BaseException), first
        assert first.state == "acquired"  # read before the stall: ours, not stranded
        assert isinstance(second, BackendUnavailable)
        assert await _eventually_ok(lambda: b.complete("svc", None, "a", first.token, b"ok", 60.0))
    finally:
        await b.aclose()


async def _eventually_ok(factory: Callable[[], Awaitable[T]], timeout: float = 5.0) -> T:
    """Await a backend call, again while the backend is in its short post-outage backoff."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                return await factory()
            except BackendUnavailable:
                await asyncio.sleep(0.05)


@pytest.mark.cluster
async def test_cluster_client_kill_fails_no_call(
    redis_cluster: Any, redis_cluster_flush: None
) -> None:
    b = RedisBackend.from_url(redis_cluster.url, cluster=True, on_unavailable="fail_open")
    try:
        token, _ = await _warm(b)
        for url in redis_cluster.urls:
            with contextlib.closing(redis.Redis.from_url(url)) as admin:
                admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        for _ in range(3):
            await asyncio.sleep(0)
        await _healthy_after_idle(b, token)
    finally:
        await b.aclose()


async def test_a_connector_after_an_idle_timeout_stores_replays_and_limits(
    restartable_redis: RedisProcess,
) -> None:
    # The end-to-end shape: after Redis closed the idle connections, a keyed payment's
    # answer must be stored (a retry replays it, nothing is sent twice) and fail_open must not
    # turn an exhausted bucket into "no limit".
    sent: list[RecordedRequest] = []

    def vendor(request: RecordedRequest) -> Response:
        sent.append(request)
        return Response(200, {}, b'{"id": "ch_1"}')

    backend = RedisBackend.from_url(restartable_redis.url, on_unavailable="fail_open")
    pay = Endpoint.create("https://vendor.test/v1/charges", idempotency_header="Idempotency-Key")
    limited = Endpoint.create("https://vendor.test/v1/search", "GET").with_rate_limit(
        ONE_PER_MINUTE
    )
    async with Connector(backend=backend, http=MockTransport(vendor)) as connector:
        await connector.execute("svc", pay, {"n": 1}, idempotency_key=IdempotencyKey("k1"))
        await connector.execute("svc", limited)
        with contextlib.closing(restartable_redis.client()) as admin:
            admin.config_set("timeout", 1)
        await until_closed_by_server(restartable_redis)
        first = await connector.execute("svc", pay, {"n": 2}, idempotency_key=IdempotencyKey("k2"))
        again = await connector.execute("svc", pay, {"n": 2}, idempotency_key=IdempotencyKey("k2"))
        assert (first.replayed, again.replayed) == (False, True)
        outcomes = await asyncio.gather(
            *(connector.execute("svc", limited) for _ in range(20)), return_exceptions=True
        )
        assert all(isinstance(o, RateLimitExceeded) for o in outcomes), outcomes
    assert len(sent) == 3  # k1, the limited call, k2 once
    assert backend.available


@pytest.mark.cluster
async def test_cluster_cut_mid_batch_fails_only_the_unread_commands(
    redis_cluster: Any, redis_cluster_flush: None
) -> None:
    """Rule 20 per cluster node: each master behind a cutting proxy (client-side address remap)."""
    from redis.asyncio.cluster import RedisCluster  # noqa: PLC0415

    proxies = {node.port: CutProxy(node.port) for node in redis_cluster.nodes}
    for p in proxies.values():
        await p.start()

    def via_proxy(address: tuple[str, int]) -> tuple[str, int]:
        host, port = address
        proxy = proxies.get(port)
        if proxy is None:
            return address
        return host, int(proxy.url.rsplit(":", 1)[1].split("/")[0])

    try:
        client = RedisCluster.from_url(redis_cluster.url, address_remap=via_proxy)
    except TypeError:  # pragma: no cover - redis-py without address_remap
        pytest.skip("this redis-py has no address_remap for the cluster client")
    b = RedisBackend(client, owns_client=True)
    try:
        assert (await b.claim("svc", None, "warm", "fp", 30.0)).state == "acquired"  # script
        # One service's claims of one tick share one script call: the second claim is for
        # another service whose keys live on the same master.
        home = client.get_node_from_key("nexus:{svc}:idem").name
        other = next(
            name
            for name in (f"svc{i}" for i in range(1000))
            if client.get_node_from_key(f"nexus:{{{name}}}:idem").name == home
        )
        for p in proxies.values():  # only the node owning {svc} gets the batch
            p.cut_after = 1
        first, second = await _outcomes(
            b.claim("svc", None, "a", "fp", 30.0), b.claim(other, None, "b", "fp", 30.0)
        )
        assert not isinstance(first, BaseException), first
        assert first.state == "acquired"  # read before the cut: ours, not stranded
        assert isinstance(second, BackendUnavailable)  # its outcome is unknown, not resent
        for p in proxies.values():
            p.cut_after = None
        claim = await _eventually_ok(lambda: b.claim("svc", None, "a", "fp", 30.0))
        assert claim.state == "in_progress"
        assert await _eventually_ok(lambda: b.complete("svc", None, "a", first.token, b"ok", 60.0))
        # The unread claim ran once in Redis (it holds "b"): a resend would have found it taken
        # and reported in_progress to its own caller instead of an error.
        again = await _eventually_ok(lambda: b.claim(other, None, "b", "fp", 30.0))
        assert again.state == "in_progress"
    finally:
        await b.aclose()
        for p in proxies.values():
            await p.close()
