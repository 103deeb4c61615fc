"""`status` and `reset` against a real Redis: what operators see matches what workers did."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import sys

import pytest
from aiohttp import web

from nexus_connector_async import (
    CircuitBreakerConfig,
    CircuitOpenError,
    Connector,
    Endpoint,
    HttpStatusError,
    RateLimitConfig,
    RedisBackend,
    RetryPolicy,
)
from nexus_connector_async.__main__ import main
from nexus_connector_async.cli._ops import EXIT_UNKNOWN_SERVICE, EXIT_UNREACHABLE


async def _make_state(url: str, *, cluster: bool = False) -> None:
    """Open the 'vendor' breaker, spend 3 of 10 'limited' tokens, leave one key in progress,
    one unknown and two concurrency slots held."""

    async def fail(request: web.Request) -> web.Response:
        return web.Response(status=503 if request.path == "/fail" else 200)

    app = web.Application()
    app.router.add_route("*", "/{p:.*}", fail)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    breaker = CircuitBreakerConfig(failure_threshold=2, recovery_timeout=60.0)
    failing = (
        Endpoint.create(f"{base}/fail", "GET")
        .with_circuit_breaker(breaker)
        .with_retry(RetryPolicy(max_attempts=1))
    )
    limited = Endpoint.create(f"{base}/ok", "GET").with_rate_limit(RateLimitConfig.per_minute(10))
    backend = RedisBackend.from_url(url, cluster=cluster)
    try:
        async with Connector(backend=backend) as c:
            for _ in range(2):
                with pytest.raises(HttpStatusError):
                    await c.execute("vendor", failing)
            with pytest.raises(CircuitOpenError):
                await c.execute("vendor", failing)
            for _ in range(3):
                await c.execute("limited", limited)
            await backend.claim("limited", None, "digest-1", "fp", 60.0)
            sent = await backend.claim("limited", None, "digest-2", "fp", 60.0, unknown_ttl=600)
            assert await backend.mark_unknown("limited", None, "digest-2", sent.token, 600.0)
            for _ in range(2):
                assert (await backend.acquire_slot("limited", None, 5, 60.0, 0.0)).acquired
    finally:
        await runner.cleanup()


def run(argv: list[str], stdin: str = "") -> tuple[int, str]:
    out = io.StringIO()
    old_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out):
            code = main(argv)
    finally:
        sys.stdin = old_stdin
    return code, out.getvalue()


@pytest.mark.parametrize("cluster", [False, True], ids=["redis", "cluster"])
def test_status_shows_open_breakers_tokens_keys_and_slots(
    cluster: bool, request: pytest.FixtureRequest
) -> None:
    if cluster:
        request.getfixturevalue("redis_cluster_flush")
        url = request.getfixturevalue("redis_cluster_url")
    else:
        request.getfixturevalue("redis_flush")
        url = request.getfixturevalue("redis_url")
    asyncio.run(_make_state(url, cluster=cluster))
    code, text = run(["status", "--redis", url, *(["--cluster"] if cluster else [])])
    assert code == 0
    lines = {line.split()[0]: line.split() for line in text.splitlines()[1:]}
    vendor, limited = lines["vendor"], lines["limited"]
    assert vendor[1] == "open"
    assert vendor[2] == "2"  # consecutive failures
    assert 55.0 < float(vendor[3].rstrip("s")) <= 60.0  # seconds to half-open
    tokens, capacity = limited[6].split("/")
    assert 7.0 <= float(tokens) < 7.5
    assert capacity == "10"
    assert limited[7] == "1"  # one idempotency key in progress
    assert limited[9] == "1"  # one key whose outcome is unknown (at most once)
    assert limited[10] == "2"  # two concurrency slots held


@pytest.mark.usefixtures("redis_flush")
def test_reset_closes_the_breaker_for_every_worker_after_confirmation(redis_url: str) -> None:
    asyncio.run(_make_state(redis_url))
    code, text = run(["reset", "vendor", "--redis", redis_url], stdin="n\n")
    assert (code, "aborted" in text) == (1, True)
    code, text = run(["reset", "vendor", "--redis", redis_url], stdin="y\n")
    assert code == 0
    assert "breaker closed" in text
    code, text = run(["status", "vendor", "--redis", redis_url])
    assert text.splitlines()[1].split()[1] == "closed"


@pytest.mark.usefixtures("redis_flush")
def test_an_unknown_service_and_an_unreachable_redis_have_their_exit_codes(
    redis_url: str, unused_tcp_port: int
) -> None:
    asyncio.run(_make_state(redis_url))
    assert run(["status", "nope", "--redis", redis_url])[0] == EXIT_UNKNOWN_SERVICE
    assert run(["reset", "nope", "--redis", redis_url, "--yes"])[0] == EXIT_UNKNOWN_SERVICE
    dead = f"redis://127.0.0.1:{unused_tcp_port}/0"
    assert run(["status", "--redis", dead])[0] == EXIT_UNREACHABLE


@pytest.mark.usefixtures("redis_flush")
def test_status_reads_the_redis_url_from_nexus_redis_url(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(_make_state(redis_url))
    monkeypatch.setenv("NEXUS_REDIS_URL", redis_url)
    code, text = run(["status", "limited"])
    assert code == 0
    assert text.splitlines()[1].split()[0] == "limited"


def test_status_without_a_url_or_nexus_redis_url_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("NEXUS_REDIS_URL", raising=False)
    with pytest.raises(SystemExit) as err:
        main(["status"])
    assert err.value.code == 2
    assert "give --redis URL or set NEXUS_REDIS_URL" in capsys.readouterr().err


@pytest.mark.usefixtures("redis_flush")
def test_status_says_full_for_a_full_bucket_not_a_dash(redis_url: str) -> None:
    async def refilled() -> None:
        async def ok(request: web.Request) -> web.Response:
            return web.Response(status=200)

        app = web.Application()
        app.router.add_route("*", "/{p:.*}", ok)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        fast = Endpoint.create(
            f"http://127.0.0.1:{runner.addresses[0][1]}/ok", "GET"
        ).with_rate_limit(RateLimitConfig.per_second(10_000, burst=5))
        try:
            async with Connector(backend=RedisBackend.from_url(redis_url)) as c:
                await c.execute("fast", fast)  # one token, back within 0.1 ms
        finally:
            await runner.cleanup()

    asyncio.run(refilled())
    code, text = run(["status", "fast", "--redis", redis_url])
    assert code == 0
    assert text.splitlines()[1].split()[6] == "full"


@pytest.mark.usefixtures("redis_flush")
def test_reset_reports_removed_keys_with_the_right_plural(redis_url: str) -> None:
    asyncio.run(_make_state(redis_url))
    code, text = run(["reset", "vendor", "--redis", redis_url, "--yes"])
    assert code == 0
    assert re.search(r"\((1 key|\d+ keys) removed\)", text), text
    assert "1 keys" not in text


def test_every_option_and_argument_has_plain_text_help() -> None:
    import argparse  # noqa: PLC0415

    parsers: list[argparse.ArgumentParser] = []

    def capture(self: argparse.ArgumentParser, *args: object, **kw: object) -> None:
        parsers.append(self)
        raise SystemExit(0)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(argparse.ArgumentParser, "parse_known_args", capture)
        with pytest.raises(SystemExit):
            main([])
    (top,) = parsers
    subparsers = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    assert "`" not in top.format_help()
    for name, sub in subparsers.choices.items():
        if name == "bench":
            continue  # its options are the harness's own (python -m benchmarks --help)
        text = sub.format_help()
        assert "`" not in text, name
        for action in sub._actions:
            assert action.help, f"{name}: {action.dest} has no help"
