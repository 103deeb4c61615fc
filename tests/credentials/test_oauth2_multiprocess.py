"""Across OS processes on real Redis: 4 workers x 50 calls on an expired token make ONE request."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from nexus_connector_async import OAuth2CredentialProvider
from nexus_connector_async.backends.redis import RedisBackend
from nexus_connector_async.testing import FakeClock
from tests._multiproc import run_in_processes

from ._oauth_server import OAuthServer

PROCESSES = 4
CALLS = 50


def provider_for(
    token_url: str, backend: RedisBackend, **kwargs: object
) -> OAuth2CredentialProvider:
    return OAuth2CredentialProvider(token_url, "client-1", "secret-1", backend=backend, **kwargs)  # type: ignore[arg-type]


async def fetch_tokens(index: int, redis_url: str, token_url: str, arrive_url: str) -> list[str]:
    """One worker: 50 concurrent get_credentials, then report which tokens it got."""
    backend = RedisBackend.from_url(redis_url)
    provider = provider_for(token_url, backend)
    try:
        calls = asyncio.gather(*(provider.get_credentials("paypal") for _ in range(CALLS)))
        # Our calls are under way: tell the token server, which answers once all are here.
        async with aiohttp.ClientSession() as session, session.get(arrive_url) as reply:
            reply.raise_for_status()
        results = await calls
    finally:
        await backend.aclose()
    return [c.access_token if c is not None else "" for c in results]


@pytest.mark.multiprocess
@pytest.mark.slow
async def test_4_processes_x_50_calls_on_an_expired_token_make_one_token_request(
    oauth_server: OAuthServer, redis_url: str, redis_flush: None
) -> None:
    # Seed Redis with a token that expired an hour ago, fetched "two hours ago".
    seeder = RedisBackend.from_url(redis_url)
    try:
        past = FakeClock(start=time.time() - 7200)
        stale = await provider_for(oauth_server.token_url, seeder, clock=past).get_credentials(
            "paypal"
        )
    finally:
        await seeder.aclose()
    assert stale is not None
    assert stale.access_token == "at-1"
    assert stale.is_expired()
    assert oauth_server.count == 1

    oauth_server.arrivals_needed = PROCESSES  # hold the token reply until every worker calls
    outcomes = await asyncio.to_thread(
        run_in_processes,
        fetch_tokens,
        PROCESSES,
        redis_url,
        oauth_server.token_url,
        f"{oauth_server.base}/arrive",
        timeout=90.0,
    )
    tokens = [token for outcome in outcomes for token in outcome.unwrap()]
    assert len(tokens) == PROCESSES * CALLS
    assert set(tokens) == {"at-2"}
    assert oauth_server.count == 2  # the seed, then exactly ONE refresh for all 200 calls
