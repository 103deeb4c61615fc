"""Two merchants on one real Redis: a cached OAuth token, lock or failure record is bound to the
client secret (api.md 27), and tenant names cannot reach another tenant's keys (api.md 31)."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from cryptography.fernet import Fernet

from nexus_connector_async import CredentialRefreshError, OAuth2CredentialProvider, RedisBackend
from tests._redis_servers import RedisServer
from tests.credentials._oauth_server import OAuthServer, TokenRequest

CLIENT_ID = "merchant-a-public-client-id"
RIGHT = "secret-of-merchant-a"
WRONG = "secret-guessed-by-merchant-b"


def only_right_secret(server: OAuthServer) -> None:
    """The token endpoint issues tokens for the right secret only, like a real one."""

    def respond(req: TokenRequest) -> web.Response:
        if req.basic != (CLIENT_ID, RIGHT):
            return web.json_response({"error": "invalid_client"}, status=401)
        return server.issue(req)

    server.respond = respond


def provider(server: OAuthServer, backend: RedisBackend, secret: str) -> OAuth2CredentialProvider:
    return OAuth2CredentialProvider(
        server.token_url, CLIENT_ID, secret, backend=backend, wait_timeout=2.0
    )


async def test_a_provider_with_another_secret_never_gets_the_cached_token(
    oauth_server: OAuthServer, redis_server: RedisServer, redis_flush: None
) -> None:
    only_right_secret(oauth_server)
    backend = RedisBackend.from_url(redis_server.url, prefix="iso")
    try:
        merchant = provider(oauth_server, backend, RIGHT)
        intruder = provider(oauth_server, backend, WRONG)
        creds = await merchant.get_credentials("api")
        assert creds is not None
        assert creds.access_token == "at-1"
        with pytest.raises(CredentialRefreshError):
            await intruder.get_credentials("api")
        # The intruder had to ask the token endpoint (and was refused): nothing came from cache.
        assert [r.basic for r in oauth_server.requests] == [(CLIENT_ID, RIGHT), (CLIENT_ID, WRONG)]
    finally:
        await backend.aclose()


async def test_another_secrets_failure_record_does_not_block_the_merchant(
    oauth_server: OAuthServer, redis_server: RedisServer, redis_flush: None
) -> None:
    only_right_secret(oauth_server)
    backend = RedisBackend.from_url(redis_server.url, prefix="iso")
    try:
        intruder = provider(oauth_server, backend, WRONG)
        with pytest.raises(CredentialRefreshError):
            await intruder.get_credentials("api")
        # Its failure is remembered for 5 s, for its own secret only.
        creds = await provider(oauth_server, backend, RIGHT).get_credentials("api")
        assert creds is not None
        assert creds.access_token == "at-1"
        client = aioredis.Redis.from_url(redis_server.url)
        try:
            names = sorted(k.decode() for k in await client.keys("iso:kv:oauth2:*"))
        finally:
            await client.aclose()
        failed = [n for n in names if n.endswith(":failed")]
        tokens = [n for n in names if not n.endswith((":failed", ":lock"))]
        assert len(failed) == 1
        assert len(tokens) == 1
        assert failed[0].removesuffix(":failed") != tokens[0]
        for secret in (RIGHT, WRONG, CLIENT_ID):
            assert all(secret not in n for n in names)
    finally:
        await backend.aclose()


async def test_a_tenant_named_like_a_lock_cannot_squat_another_tenants_refresh_lock(
    oauth_server: OAuthServer, redis_server: RedisServer, redis_flush: None
) -> None:
    backend = RedisBackend.from_url(redis_server.url, prefix="iso")
    try:
        p = OAuth2CredentialProvider(
            oauth_server.token_url, CLIENT_ID, RIGHT, backend=backend, wait_timeout=1.0
        )
        squatter = await p.get_credentials("api", "victim:lock")
        victim = await p.get_credentials("api", "victim")
        assert squatter is not None
        assert victim is not None
        assert victim.access_token != squatter.access_token
        assert oauth_server.count == 2
    finally:
        await backend.aclose()


async def test_an_encrypted_token_moved_to_another_tenants_key_does_not_open_there(
    oauth_server: OAuthServer, redis_server: RedisServer, redis_flush: None
) -> None:
    backend = RedisBackend.from_url(redis_server.url, prefix="iso")
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        p = OAuth2CredentialProvider(
            oauth_server.token_url,
            CLIENT_ID,
            RIGHT,
            backend=backend,
            encryption_key=Fernet.generate_key(),
        )
        await p.get_credentials("api", "tenant-a")
        await p.get_credentials("api", "tenant-b")
        a, b = sorted(await client.keys("iso:kv:oauth2:*"))
        assert a.endswith(b"t.tenant-a")
        await client.copy(a, b, replace=True)  # someone with Redis write access swaps them
        creds = await p.get_credentials("api", "tenant-b")
        assert creds is not None
        assert creds.access_token == "at-3"  # not tenant a's at-1: b's cache read as missing
    finally:
        await client.aclose()
        await backend.aclose()


async def test_another_secret_never_gets_the_cached_token_on_redis_cluster(
    oauth_server: OAuthServer, redis_cluster_url: str, redis_cluster_flush: None
) -> None:
    only_right_secret(oauth_server)
    backend = RedisBackend.from_url(redis_cluster_url, prefix="iso", cluster=True)
    try:
        creds = await provider(oauth_server, backend, RIGHT).get_credentials("api", "victim:lock")
        assert creds is not None
        with pytest.raises(CredentialRefreshError):
            await provider(oauth_server, backend, WRONG).get_credentials("api", "victim:lock")
        victim = await provider(oauth_server, backend, RIGHT).get_credentials("api", "victim")
        assert victim is not None
        assert victim.access_token != creds.access_token
        assert oauth_server.count == 3
    finally:
        await backend.aclose()
