"""10,000 concurrent calls in one process: bounded memory, bounded sockets, every call answered.

The connection pool (`AiohttpTransport(limit=...)`) is what keeps 10,000 concurrent calls from
opening 10,000 sockets: the test counts the client sockets connected to the stub (from
/proc/net/tcp, sampled while the calls run) and the process's open file descriptors.
"""

from __future__ import annotations

import asyncio
import os
import resource
import sys
import time
from pathlib import Path

import pytest
import structlog
from aiohttp import web

from nexus_connector_async import AiohttpTransport, Connector, Endpoint, IdempotencyKey

from ._servers import serve

CALLS = 10_000
POOL = 50
# About 13 KB per call in flight (its coroutine frames and aiohttp's request, waiting for a
# pooled connection): ~130 MB measured for 10,000; the limit leaves room for allocator noise.
RSS_GROWTH_LIMIT_MB = 200

pytestmark = [
    pytest.mark.slow,  # about 4-5 s on two shared cores
    pytest.mark.skipif(
        not sys.platform.startswith("linux"), reason="reads /proc for sockets and descriptors"
    ),
]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def client_sockets_to(port: int) -> int:
    """ESTABLISHED TCP sockets of this host whose remote port is `port` (our client side)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == port and fields[3] == "01":
                count += 1
    return count


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


async def test_10k_concurrent_calls_stay_within_bounded_memory_and_the_socket_pool() -> None:
    served = 0

    async def ok(request: web.Request) -> web.Response:
        nonlocal served
        await request.read()
        served += 1
        return web.Response(
            body=b'{"id":"ch_1","status":"succeeded"}', content_type="application/json"
        )

    rss_before = current_rss_mb()  # growth = peak after - current before: an upper bound
    fds_before = open_fds()
    async with serve(ok) as base:
        port = int(base.rsplit(":", 1)[1])
        ep = Endpoint.create(f"{base}/v1/charges", "POST")
        transport = AiohttpTransport(limit=POOL)
        sockets: list[int] = []
        fds: list[int] = []
        done = asyncio.Event()

        async def sample() -> None:
            for _ in range(2000):  # bounded: 2000 samples at most
                sockets.append(client_sockets_to(port))
                fds.append(open_fds())
                try:
                    await asyncio.wait_for(done.wait(), timeout=0.05)
                    return
                except TimeoutError:
                    pass

        # Logging 20,000 lines would dominate the run (and capturing them, its memory).
        quiet = structlog.wrap_logger(
            structlog.PrintLogger(), wrapper_class=structlog.make_filtering_bound_logger(50)
        )
        async with Connector(http=transport, logger=quiet) as c:
            sampler = asyncio.ensure_future(sample())
            start = time.monotonic()
            results = await asyncio.gather(
                *(
                    c.execute("vendor", ep, {"amount": i}, idempotency_key=IdempotencyKey(f"o-{i}"))
                    for i in range(CALLS)
                )
            )
            elapsed = time.monotonic() - start
            done.set()
            await sampler
    rss_growth = peak_rss_mb() - rss_before
    report = (
        f"{CALLS} calls in {elapsed:.2f}s; peak RSS {peak_rss_mb():.0f} MB (+{rss_growth:.0f} MB);"
        f" client sockets max {max(sockets)} (pool {POOL}); fds max {max(fds)}"
        f" (before {fds_before}, after {open_fds()})"
    )
    print(report)
    assert [r.status for r in results] == [200] * CALLS
    assert served == CALLS
    assert max(sockets) <= POOL
    # Both ends of each pooled connection live in this process (the stub is in it too).
    assert max(fds) <= fds_before + 2 * POOL + 10
    assert open_fds() <= fds_before + 5  # everything closed again
    assert rss_growth < RSS_GROWTH_LIMIT_MB, report
