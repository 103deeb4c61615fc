"""Planted secrets never reach logs, reprs, exception messages or backend key names."""

from __future__ import annotations

import traceback
from typing import Any

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from nexus_connector_async import (
    Connector,
    CredentialRefreshError,
    Endpoint,
    InvalidRequest,
    MemoryBackend,
    OAuth2CredentialProvider,
    RetryPolicy,
)
from nexus_connector_async.credentials._oauth2_wire import scrub
from nexus_connector_async.testing import FakeClock

from ._oauth_server import OAuthServer, TokenRequest

CLIENT_ID = "client-id-planted-77"
CLIENT_SECRET = "CS-planted-9f8e7d"
SEED_REFRESH = "RT-planted-1a2b3c"
ACCESS = "AT-planted-4d5e6f"
ROTATED = "RT-planted-rotated-0"
SECRETS = (CLIENT_SECRET, SEED_REFRESH, ACCESS, ROTATED)


def assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"a secret leaked: {text!r}"


def exception_texts(exc: BaseException) -> str:
    return " ".join(
        [
            str(exc),
            repr(exc),
            repr(getattr(exc, "description", None)),
            *traceback.format_exception(exc),
        ]
    )


async def test_secrets_stay_out_of_logs_reprs_errors_and_key_names(
    oauth_server: OAuthServer,
) -> None:
    clock = FakeClock()
    backend = MemoryBackend()
    state = {"calls": 0}

    def respond(req: TokenRequest) -> web.Response:
        state["calls"] += 1
        if state["calls"] == 1:
            oauth_server.valid_tokens.add(ACCESS)
            return web.json_response(
                {"access_token": ACCESS, "expires_in": 3600, "refresh_token": ROTATED}
            )
        # A careless server that echoes what it was sent in its error description.
        return web.json_response(
            {
                "error": "invalid_grant",
                "error_description": (
                    f"refresh token {ROTATED} / {SEED_REFRESH} rejected for {CLIENT_SECRET}, "
                    f"Bearer {ACCESS}"
                ),
            },
            status=400,
        )

    oauth_server.respond = respond
    provider = OAuth2CredentialProvider(
        oauth_server.token_url,
        CLIENT_ID,
        CLIENT_SECRET,
        grant_type="refresh_token",
        refresh_token=SEED_REFRESH,
        backend=backend,
        clock=clock,
    )
    endpoint = Endpoint.create(oauth_server.api_url, method="GET").with_retry(
        RetryPolicy(max_attempts=1)
    )
    errors: list[BaseException] = []
    with capture_logs() as logs:
        async with Connector(credentials=provider) as connector:
            ok = await connector.execute("paypal", endpoint)
            assert ok.status == 200
            creds = await provider.get_credentials("paypal")
            assert creds is not None
            assert creds.access_token == ACCESS
            oauth_server.revoke_all()
            # The 401 forces a refresh, which fails with the echoing error body.
            with pytest.raises(CredentialRefreshError) as info:
                await connector.execute("paypal", endpoint)
            errors.append(info.value)
            clock.advance(3600)
            with pytest.raises(CredentialRefreshError) as info:
                await provider.get_credentials("paypal")
            errors.append(info.value)

    assert logs
    assert any(e["event"] == "nexus.oauth.refresh_failed" for e in logs)
    for event in logs:
        assert_clean(repr(event))
    for exc in errors:
        assert isinstance(exc, CredentialRefreshError)
        assert exc.error == "invalid_grant"
        assert exc.description is not None
        assert "rejected for" in exc.description
        assert_clean(exception_texts(exc))
    assert_clean(repr(provider))
    assert_clean(repr(creds))
    assert_clean(str(creds))
    keys: dict[str, Any] = backend._kv
    for key in keys:
        assert_clean(key)
        assert CLIENT_ID not in key


async def test_repr_shows_the_token_url_without_userinfo_or_secret_query(
    oauth_server: OAuthServer,
) -> None:
    provider = OAuth2CredentialProvider(
        f"http://user:{CLIENT_SECRET}@127.0.0.1:1/token?client_secret={CLIENT_SECRET}",
        CLIENT_ID,
        CLIENT_SECRET,
    )
    text = repr(provider)
    assert_clean(text)
    assert CLIENT_ID not in text
    assert "127.0.0.1" in text


def test_token_like_runs_in_an_error_description_are_masked_even_when_unknown() -> None:
    text = scrub("token abcDEF0123456789ghijKLMN expired; see developer.paypal.com/docs", ())
    assert "abcDEF0123456789ghijKLMN" not in text
    assert "developer.paypal.com/docs" in text


async def test_with_an_encryption_key_tokens_are_encrypted_at_rest(
    oauth_server: OAuthServer,
) -> None:
    fernet = pytest.importorskip("cryptography.fernet")  # optional dependency
    key = fernet.Fernet.generate_key()
    oauth_server.rotate = True
    backend = MemoryBackend()
    settings: dict[str, Any] = {
        "grant_type": "refresh_token",
        "refresh_token": "rt-0",
        "backend": backend,
        "encryption_key": key,
    }
    worker_a = OAuth2CredentialProvider(oauth_server.token_url, "c", "s", **settings)
    creds = await worker_a.get_credentials("paypal")
    assert creds is not None
    stored = b"".join(value for value, _ in backend._kv.values())
    assert b"at-1" not in stored
    assert b"rt-1" not in stored

    worker_b = OAuth2CredentialProvider(oauth_server.token_url, "c", "s", **settings)
    assert await worker_b.get_credentials("paypal") == creds
    assert oauth_server.count == 1

    # A worker with another key cannot read the cache: it says so and treats it as empty.
    settings["encryption_key"] = fernet.Fernet.generate_key()
    stranger = OAuth2CredentialProvider(oauth_server.token_url, "c", "s", **settings)
    with capture_logs() as logs:
        with pytest.raises(CredentialRefreshError):  # its seed rt-0 was spent by worker_a
            await stranger.get_credentials("paypal")
    assert any(e["event"] == "nexus.oauth.cache_unreadable" for e in logs)


def test_a_bad_encryption_key_is_refused_up_front() -> None:
    pytest.importorskip("cryptography.fernet")
    with pytest.raises(InvalidRequest, match="Fernet"):
        OAuth2CredentialProvider("https://a.test/t", "c", "s", encryption_key=b"short")
