"""Bulk SMS at scale: 100k messages through `TwilioSmsAdapter.send_bulk`, peak RSS and rate.

A minimal Twilio-compatible stub runs in its own process (so its memory is not ours); the
messages come from a generator (never a list). The report shows that peak RSS grows with the
results list only (a few hundred bytes a message), not with tasks or buffered requests.

    python -m benchmarks.bench_bulk_sms [--messages 100000] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import structlog
from aiohttp import web

from nexus_connector_async import Connector
from nexus_connector_async.adapters import TwilioSmsAdapter

SID = "AC" + "0" * 32
TOKEN = "bench-token"
RESULTS = Path(__file__).parent / "results"


def _stub(port: int) -> None:
    n = 0

    async def create(request: web.Request) -> web.Response:
        nonlocal n
        form = await request.post()
        n += 1
        return web.json_response(
            {
                "sid": f"SM{n:032x}",
                "status": "queued",
                "to": form.get("To"),
                "from": form.get("From"),
                "body": form.get("Body"),
                "num_segments": "1",
                "num_media": "0",
                "price": None,
                "price_unit": "USD",
                "error_code": None,
                "error_message": None,
                "date_created": "Thu, 26 Nov 2026 12:00:00 +0000",
            },
            status=201,
        )

    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", create)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _messages(n: int) -> Iterator[tuple[str, str]]:
    for i in range(n):
        yield f"+1415555{i % 10000:04d}", f"Your code is {i:06d}"


async def _run(base: str, n: int, concurrency: int) -> dict[str, float]:
    async with Connector() as connector:
        adapter = TwilioSmsAdapter(connector, SID, TOKEN, "+14155550100", base_url=base)
        before = _rss_mb()
        started = time.perf_counter()
        results = await adapter.send_bulk(_messages(n), concurrency=concurrency)
        elapsed = time.perf_counter() - started
        failed = sum(r.error is not None for r in results)
        return {
            "messages": n,
            "failed": failed,
            "seconds": round(elapsed, 2),
            "messages_per_s": round(n / elapsed),
            "peak_rss_mb": round(_rss_mb(), 1),
            "rss_growth_mb": round(_rss_mb() - before, 1),
        }


async def _wait_for(port: int, deadline: float) -> None:
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    port = _free_port()
    stub = multiprocessing.get_context("spawn").Process(target=_stub, args=(port,), daemon=True)
    stub.start()
    try:
        asyncio.run(_wait_for(port, time.monotonic() + 10))
        base = f"http://127.0.0.1:{port}"
        rows = [
            asyncio.run(_run(base, n, args.concurrency))
            for n in (args.messages // 10, args.messages)
        ]
    finally:
        stub.terminate()
        stub.join(5)
    for row in rows:
        print(json.dumps(row))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bulk_sms.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
