"""No secret through the side doors (api.md 30): rich's pretty repr, exception chains, traceback
locals, logged URL labels, `?password=` in a Redis URL, and `http://` to a non-loopback vendor."""

from __future__ import annotations

import asyncio
import io
import traceback
import warnings
from pathlib import Path

import pytest
from aiohttp import web
from rich.console import Console
from rich.pretty import pretty_repr
from rich.traceback import Traceback
from structlog.testing import capture_logs

from nexus_connector_async import (
    ConnectionFailed,
    Connector,
    ConnectorError,
    Credentials,
    Endpoint,
    InvalidRequest,
    OAuth2CredentialProvider,
    RetryPolicy,
    Settings,
    StaticCredentialProvider,
)
from nexus_connector_async.adapters import (
    PayPalPaymentAdapter,
    StripePaymentAdapter,
    TwilioSmsAdapter,
)
from tests.faults._servers import serve

KEY = "sk_live_PLANTsidedoor0001"
TOKEN = "PLANT-token-0002"
REFRESH = "PLANT-refresh-0003"
QUERY = "PLANTquerysig0004"
PASSWORD = "PLANTredispass0005"
HEADER = "PLANT-header-0006"
SECRETS = (KEY, TOKEN, REFRESH, QUERY, PASSWORD, HEADER)
CARD = "4000002500001001"


def assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked: {text!r}"


def with_locals(exc: BaseException) -> str:
    """The traceback as stdlib (capture_locals) and rich (show_locals) render it, whole chain."""
    plain = "".join(traceback.TracebackException.from_exception(exc, capture_locals=True).format())
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(Traceback.from_exception(type(exc), exc, exc.__traceback__, show_locals=True))
    return plain + console.file.getvalue()  # type: ignore[attr-defined]


def test_rich_pretty_repr_masks_like_repr() -> None:
    objects = [
        Credentials(TOKEN, REFRESH, 1.0),
        Endpoint(f"https://vendor.test/x?sig={QUERY}", headers={"Authorization": f"Bearer {KEY}"}),
        Endpoint("https://vendor.test/x", headers={"X-Api-Key": HEADER}),
        Settings(
            redis_url=f"redis://u:{PASSWORD}@127.0.0.1:6379/0",
            stripe_api_key=KEY,
            paypal_client_secret=TOKEN,
            twilio_auth_token=REFRESH,
        ),
    ]
    for obj in objects:
        assert_clean(pretty_repr(obj))
        assert_clean(repr(obj))


def test_a_password_in_the_redis_url_query_is_masked() -> None:
    settings = Settings(redis_url=f"redis://127.0.0.1:6379/0?password={PASSWORD}&db=1")
    for text in (repr(settings), pretty_repr(settings), str(settings)):
        assert_clean(text)
        assert "db=1" in text


async def test_a_transport_error_drops_aiohttps_context_and_masks_locals() -> None:
    async def hang_up(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()  # the client sees the connection drop mid-request
        await asyncio.sleep(0)
        return web.Response()

    provider = StaticCredentialProvider({"svc": KEY})
    async with serve(hang_up) as base, Connector(credentials=provider) as c:
        endpoint = Endpoint(
            f"{base}/x?sig={QUERY}",
            "GET",
            headers={"X-Api-Key": HEADER},
            retry=RetryPolicy(max_attempts=1),
        )
        with capture_logs() as logs, pytest.raises(ConnectionFailed) as info:
            await c.execute("svc", endpoint)
    exc: BaseException | None = info.value
    while exc is not None:  # nothing of aiohttp (request_info.headers) anywhere in the chain
        assert type(exc).__module__.startswith("nexus_connector_async"), repr(exc)
        exc = exc.__cause__ or exc.__context__
    assert_clean(with_locals(info.value))
    assert_clean(repr(logs))  # the `call` label: scheme, host and path only
    assert any(f"{base}/x" in repr(log) for log in logs)


async def test_a_callers_own_authorization_header_is_masked_in_traceback_locals() -> None:
    async def hang_up(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()
        await asyncio.sleep(0)
        return web.Response()

    async with serve(hang_up) as base, Connector() as c:
        endpoint = Endpoint(f"{base}/x", "GET", retry=RetryPolicy(max_attempts=1))
        with pytest.raises(ConnectionFailed) as info:
            await c.execute("svc", endpoint, headers={"Authorization": f"Bearer {KEY}"})
    rendered = with_locals(info.value)
    # Only this test's own frame holds the plain dict it built; no library frame does.
    library = rendered[rendered.index("_connector.py") :]
    assert_clean(library)


async def test_an_oauth_failure_traceback_shows_no_token_or_secret_in_locals() -> None:
    async def refuse(request: web.Request) -> web.Response:
        return web.json_response({"error": "invalid_grant"}, status=400)

    async with serve(refuse) as base:
        oauth = OAuth2CredentialProvider(
            f"{base}/token", "cid", KEY, grant_type="refresh_token", refresh_token=REFRESH
        )
        with pytest.raises(ConnectorError) as info:
            await oauth.get_credentials("svc")
    rendered = with_locals(info.value)
    assert KEY not in rendered
    assert "Basic " not in rendered or "Basic ***" in rendered


@pytest.mark.parametrize(
    "url", ["http://api.stripe.com", "http://10.0.0.5:8080", "ftp://127.0.0.1", "http://"]
)
async def test_plain_http_to_a_non_loopback_vendor_is_refused(url: str) -> None:
    async with Connector() as c:
        with pytest.raises(InvalidRequest):
            StripePaymentAdapter(c, KEY, base_url=url)
        with pytest.raises(InvalidRequest):
            PayPalPaymentAdapter(c, "cid", TOKEN, base_url=url)
        with pytest.raises(InvalidRequest):
            TwilioSmsAdapter(c, "AC" + "0" * 32, TOKEN, "+15005550006", base_url=url)
        with pytest.raises(InvalidRequest):
            OAuth2CredentialProvider(f"{url}/token", "cid", TOKEN)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://[::1]:9", "http://localhost"])
async def test_plain_http_to_a_loopback_simulator_is_allowed(url: str) -> None:
    async with Connector() as c:
        StripePaymentAdapter(c, KEY, base_url=url)
        PayPalPaymentAdapter(c, "cid", TOKEN, base_url=url)
        TwilioSmsAdapter(c, "AC" + "0" * 32, TOKEN, "+15005550006", base_url=url)
        OAuth2CredentialProvider(f"{url}/token", "cid", TOKEN)


@pytest.mark.parametrize(
    "content",
    [f'stripe_api_key = "{KEY}"', f'redis_url = "redis://:{PASSWORD}@127.0.0.1:6379/0"'],
)
def test_a_readable_config_file_holding_secrets_warns(tmp_path: Path, content: str) -> None:
    path = tmp_path / "nexus.toml"
    path.write_text(f"[nexus]\n{content}\n")
    path.chmod(0o644)
    with pytest.warns(RuntimeWarning, match="chmod 600") as caught:
        Settings.from_env({}, toml_path=path)
    assert_clean(" ".join(str(w.message) for w in caught))
    path.chmod(0o600)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Settings.from_env({}, toml_path=path)


def test_a_readable_config_file_without_secrets_does_not_warn(tmp_path: Path) -> None:
    path = tmp_path / "nexus.toml"
    path.write_text('[nexus]\nredis_prefix = "shop"\n')
    path.chmod(0o644)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Settings.from_env({}, toml_path=path).redis_prefix == "shop"


@pytest.mark.parametrize("body", ["json", "form"])
async def test_the_payload_and_its_encoded_body_are_masked_in_traceback_locals(body: str) -> None:

    async def hang_up(request: web.Request) -> web.StreamResponse:
        await request.read()
        assert request.transport is not None
        request.transport.close()
        await asyncio.sleep(0)
        return web.Response()

    async with serve(hang_up) as base, Connector() as c:
        endpoint = Endpoint(f"{base}/x", "POST", retry=RetryPolicy(max_attempts=1), body=body)  # type: ignore[arg-type]
        with pytest.raises(ConnectionFailed) as info:
            # A temporary: no frame of this test holds the card in a local.
            await c.execute("svc", endpoint, {"card": {"number": CARD}}, idempotency_key="k-1")
    rendered = with_locals(info.value)
    assert CARD not in rendered
    assert "bytes>" in rendered  # the body is there, shown by its size
