"""Planted secrets never reach logs, exception messages, reprs or Redis key names.

One unique secret per input path (API key, OAuth client secret and tokens, card number and CVC,
a `client_secret` payload field, header and query-string keys, the idempotency key), driven
through success, retries, a vendor error that echoes the card, a 401 refresh, a timeout, a
refused connection and refused inputs; then every captured log line (structlog and stdlib
logging, and what reached stdout/stderr), every exception with its chain, every repr, and
`KEYS *` on a real Redis are scanned. Redis keys carry the configured prefix only, and
idempotency keys appear hashed.

Related: tests/credentials/test_oauth2_secrets.py (the OAuth2 provider's own paths).
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from structlog.testing import capture_logs

from nexus_connector_async import (
    Connector,
    ConnectorError,
    Credentials,
    Endpoint,
    IdempotencyKey,
    OAuth2CredentialProvider,
    RedisBackend,
    RetryPolicy,
    StaticCredentialProvider,
    Timeouts,
)
from nexus_connector_async._models import ScopedKey
from nexus_connector_async.otel import OpenTelemetryHook
from nexus_connector_async.testing import FakeClock
from tests._redis_servers import RedisServer, free_port
from tests.faults._servers import serve

SECRETS = {
    "api_key": "sk_live_PLANTapikey0001",
    "client_secret": "PLANT-oauth-client-secret-0002",
    "access_token": "PLANT-oauth-access-0003",
    "access_token_2": "PLANT-oauth-access-0004",
    "refresh_token": "PLANT-oauth-refresh-0005",
    "card": "4000056655665556",
    "cvc": "PLANT987",
    "pi_client_secret": "pi_PLANT_secret_0006",
    "header_key": "PLANT-header-key-0007",
    "query_key": "PLANT-query-key-0008",
    "idempotency_key": "PLANT-idem-key-0009",
}
PREFIX = "sectest"


def chain(exc: BaseException) -> str:
    """Everything an exception shows: str, repr, traceback text, causes and contexts."""
    return " ".join([str(exc), repr(exc), *traceback.format_exception(exc)])


class Vendor:
    """A vendor API and an OAuth token endpoint on loopback, scripted per path."""

    def __init__(self) -> None:
        self.tokens_issued = 0
        self.gate = asyncio.Event()
        self.seen_authorization: list[str] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen_authorization.append(request.headers.get("Authorization", ""))
        if request.path == "/oauth/token":
            self.tokens_issued += 1
            token = SECRETS["access_token" if self.tokens_issued == 1 else "access_token_2"]
            return web.json_response(
                {
                    "access_token": token,
                    "refresh_token": SECRETS["refresh_token"],
                    "token_type": "Bearer",
                    "expires_in": 3600,
                }
            )
        if request.path == "/v1/charges":  # a decline echoing the card and the whole body
            message = f"card {SECRETS['card']} declined"
            return web.json_response(
                {"error": {"message": message, "param": body.decode()}}, status=402
            )
        if request.path == "/v2/orders":  # the first token is rejected once
            if request.headers.get("Authorization") == f"Bearer {SECRETS['access_token']}":
                return web.json_response({"error": "invalid_token"}, status=401)
            return web.json_response({"id": "ORDER-1"})
        if request.path == "/slow":
            await self.gate.wait()
        return web.Response(status=503, text="unavailable")


async def test_planted_secrets_never_reach_logs_errors_reprs_or_redis_key_names(
    redis_server: RedisServer,
    redis_flush: None,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    vendor = Vendor()
    texts: list[str] = []
    errors: list[BaseException] = []
    events: list[object] = []
    reader = InMemoryMetricReader()

    async def expect_error(aw: Any) -> None:
        try:
            await aw
        except ConnectorError as exc:
            errors.append(exc)
        else:
            pytest.fail("expected a ConnectorError")

    async with serve(vendor.handle) as base:
        backend = RedisBackend.from_url(redis_server.url, prefix=PREFIX)
        oauth = OAuth2CredentialProvider(
            f"{base}/oauth/token", "client-id-1", SECRETS["client_secret"], backend=backend
        )
        static = StaticCredentialProvider({"stripe": SECRETS["api_key"]})
        retry = RetryPolicy(max_attempts=2, base_delay=0.0, max_delay=0.0)
        charges = Endpoint(
            f"{base}/v1/charges?api_key={SECRETS['query_key']}",
            "POST",
            body="form",
            retry=retry,
            headers={"X-Api-Key": SECRETS["header_key"]},
            idempotency_header="Idempotency-Key",
        )
        payload = {
            "amount": 1000,
            "card": {"number": SECRETS["card"], "cvc": SECRETS["cvc"]},
            "client_secret": SECRETS["pi_client_secret"],
        }
        key = IdempotencyKey(SECRETS["idempotency_key"])
        with capture_logs() as logs:
            hooks = [events.append, OpenTelemetryHook(MeterProvider(metric_readers=[reader]))]
            async with Connector(
                backend=backend, credentials=static, clock=FakeClock(), events=hooks
            ) as c:
                # A vendor decline that echoes the card, then its replay.
                await expect_error(c.execute("stripe", charges, payload, idempotency_key=key))
                replay = await c.execute(
                    "stripe", charges, payload, idempotency_key=key, raise_for_status=False
                )
                texts.append(repr(replay))
                # A 503 storm on a GET whose query string carries the card.
                lookup = Endpoint(f"{base}/v1/lookup?api_key={SECRETS['query_key']}", "GET")
                await expect_error(
                    c.execute("stripe", lookup.with_retry(retry), {"number": SECRETS["card"]})
                )
                # OAuth: a token, a 401, a refresh, a success.
                orders = Endpoint(f"{base}/v2/orders", "POST", retry=retry)
                ok = await c.execute("paypal", orders, payload, credentials=oauth)
                texts += [repr(ok), repr(oauth)]
                # A timeout and a refused connection, with secrets in URL, headers and body.
                slow = charges.with_timeout(Timeouts(total=0.1))
                slow = Endpoint(
                    f"{base}/slow?api_key={SECRETS['query_key']}",
                    "POST",
                    timeout=slow.timeout,
                    headers=charges.headers,
                )
                await expect_error(c.execute("stripe", slow, payload))
                vendor.gate.set()
                closed = Endpoint(
                    f"http://127.0.0.1:{free_port()}/x?api_key={SECRETS['query_key']}",
                    "POST",
                    retry=RetryPolicy(max_attempts=1),
                )
                await expect_error(c.execute("stripe", closed, payload))
                # Refused inputs that carry secrets next to the mistake.
                await expect_error(
                    c.execute("stripe", charges, {**payload, "fee": 1.5}, idempotency_key=key)
                )
                await expect_error(
                    c.execute(
                        "stripe", charges, payload, headers={"X-K": SECRETS["header_key"] + "\n"}
                    )
                )
                await expect_error(
                    c.execute(
                        "stripe",
                        charges,
                        payload,
                        idempotency_key=SECRETS["idempotency_key"] + "\x00",
                    )
                )
                for bad in (
                    lambda: Credentials(SECRETS["access_token"] + "\r\n"),
                    lambda: Endpoint(
                        charges.url, headers={"X-Api-Key": SECRETS["header_key"] + "\r"}
                    ),
                ):
                    try:
                        bad()
                    except ConnectorError as exc:
                        errors.append(exc)
                texts += [
                    repr(c),
                    repr(charges),
                    repr(slow),
                    repr(static),
                    repr(key),
                    str(key.digest),
                ]
                texts += [repr(Credentials(SECRETS["access_token"], SECRETS["refresh_token"]))]
            async with aioredis.Redis.from_url(redis_server.url) as client:
                keys = [k.decode() for k in await client.keys("*")]

    assert len(errors) == 9
    assert vendor.tokens_issued == 2  # the 401 forced exactly one refresh
    assert f"Bearer {SECRETS['api_key']}" in vendor.seen_authorization  # it was really sent
    out = capsys.readouterr()
    captured = {
        "structlog events": repr(logs),
        "stdlib logging": caplog.text,
        "stdout/stderr": out.out + out.err,
        "exceptions": " ".join(chain(e) for e in errors),
        "reprs": " ".join(texts),
        "redis key names": " ".join(keys),
        "events": " ".join(f"{e!r} {msgspec.to_builtins(e)}" for e in events),
        "otel metrics": reader.get_metrics_data().to_json(),  # attributes included
    }
    assert len(events) >= 10
    assert len(logs) >= 10
    leaks = [
        f"{name} in {where}"
        for where, text in captured.items()
        for name, secret in SECRETS.items()
        if secret in text
    ]
    assert leaks == []
    assert keys, "nothing was stored in Redis"
    assert all(k.startswith(f"{PREFIX}:") for k in keys), keys
    # The idempotency record, under the hash of the key derived for the provider's account.
    stored = ScopedKey(key, static.account_id("stripe", None), None)
    assert any(stored.digest in k for k in keys)
