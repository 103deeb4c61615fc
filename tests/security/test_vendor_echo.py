"""Hostile vendors that echo our secrets in every encoding (api.md 30): every adapter's error text
and the OAuth client's go through one shared scrubber, so no form of a secret reaches `str(e)`,
`repr(e)` or the traceback; OAuth error codes are shown only when they look like one."""

from __future__ import annotations

import base64
import re
import traceback
from collections.abc import Awaitable, Callable
from urllib.parse import quote, quote_plus

import pytest
from aiohttp import web

from nexus_connector_async import (
    Connector,
    ConnectorError,
    CredentialRefreshError,
    OAuth2CredentialProvider,
    RetryPolicy,
)
from nexus_connector_async.adapters import (
    Money,
    PayPalPaymentAdapter,
    StripePaymentAdapter,
    TwilioSmsAdapter,
)
from tests.faults._servers import serve

SECRET = "PLANT s3cret+Key/42=x&y~z"  # a space, '+', '/', '=', '&': every encoding differs
ACCESS = "A21AAplantedPayPalAccess0123456789xyz"
ACCOUNT = "AC" + "0" * 32
ONCE = RetryPolicy(max_attempts=1)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def forms(secret: str) -> set[str]:
    """What a careless vendor may echo of `secret`: encoded once, twice, or escaped."""
    once = quote(secret, safe="")
    return {
        secret,
        once,
        quote(secret),
        quote_plus(secret),
        quote(once, safe=""),  # percent-encoded twice (%252F)
        quote_plus(quote_plus(secret)),
        re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), once),  # lowercase hex digits
        secret.replace("/", "\\/"),  # JSON with escaped slashes (PHP, some gateways)
        b64(secret),
        base64.urlsafe_b64encode(secret.encode()).decode(),
    }


def echo(request: web.Request, body: str) -> str:
    """Everything of the request's credentials, in every encoding, as vendor error text."""
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    decoded = base64.b64decode(value).decode() if scheme == "Basic" else value
    parts = [f"got {auth!s}", f"payload={value}", f"decoded={decoded}", f"body={body}"]
    parts += [f"f{i}={form}" for i, form in enumerate(sorted(forms(decoded.split(":")[-1])))]
    return "; ".join(parts)


def rendered(exc: BaseException) -> str:
    return "\n".join([str(exc), repr(exc), *traceback.format_exception(exc)])


def assert_clean(text: str, *secrets: str) -> None:
    for secret in secrets:
        for form in forms(secret) | {b64(f"{ACCOUNT}:{secret}")}:
            assert form not in text, f"{form!r} leaked in {text!r}"


async def run(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    call: Callable[[Connector, str], Awaitable[object]],
) -> str:
    """Run `call` against `handler`; the text of the error it must raise."""
    async with serve(handler) as base, Connector() as c:
        with pytest.raises(ConnectorError) as info:
            await call(c, base)
    return rendered(info.value)


async def test_stripe_error_text_is_scrubbed_of_the_key_in_every_encoding() -> None:
    async def handler(request: web.Request) -> web.Response:
        text = echo(request, await request.text())
        return web.json_response(
            {"error": {"type": "invalid_request_error", "message": text}}, status=400
        )

    async def call(c: Connector, base: str) -> None:
        stripe = StripePaymentAdapter(c, SECRET, base_url=base, retry=ONCE)
        await stripe.charge(Money("10.00", "USD"), "pm_card_visa")

    assert_clean(await run(handler, call), SECRET)


async def test_twilio_error_text_is_scrubbed_of_the_basic_header_and_auth_token() -> None:
    async def handler(request: web.Request) -> web.Response:
        text = echo(request, await request.text())
        return web.json_response({"code": 21606, "message": text, "status": 400}, status=400)

    async def call(c: Connector, base: str) -> None:
        twilio = TwilioSmsAdapter(c, ACCOUNT, SECRET, "+15005550006", base_url=base, retry=ONCE)
        await twilio.send("+15005550009", "hello")

    text = await run(handler, call)
    assert_clean(text, SECRET)
    assert "21606" in text  # the vendor's code still shows


async def test_paypal_error_text_is_scrubbed_of_the_secret_and_a_bare_access_token() -> None:
    async def handler(request: web.Request) -> web.Response:
        if request.path == "/v1/oauth2/token":
            return web.json_response(
                {"access_token": ACCESS, "token_type": "Bearer", "expires_in": 3600}
            )
        text = echo(request, await request.text()) + f" token={ACCESS} secret={quote(SECRET)}"
        return web.json_response({"name": "INVALID_REQUEST", "message": text}, status=400)

    async def call(c: Connector, base: str) -> None:
        paypal = PayPalPaymentAdapter(c, "client-id", SECRET, base_url=base, retry=ONCE)
        await paypal.create_order(Money("10.00", "USD"), reference_id="r1")

    assert_clean(await run(handler, call), SECRET, ACCESS)


@pytest.mark.parametrize(
    "code", ["invalid_client " + SECRET, "Invalid-Client", "invalid_client\x1b[2J", "x" * 65]
)
async def test_oauth_errors_hide_encoded_echoes_and_odd_error_codes(code: str) -> None:
    async def handler(request: web.Request) -> web.Response:
        text = echo(request, await request.text())
        return web.json_response({"error": code, "error_description": text}, status=401)

    async with serve(handler) as base:
        oauth = OAuth2CredentialProvider(f"{base}/token", "client-id", SECRET)
        with pytest.raises(CredentialRefreshError) as info:
            await oauth.get_credentials("svc")
    assert info.value.error is None
    text = rendered(info.value) + repr(info.value.description)
    assert_clean(text, SECRET)
    assert "\x1b" not in text


async def test_a_registered_oauth_error_code_is_still_shown() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"error": "invalid_client"}, status=401)

    async with serve(handler) as base:
        oauth = OAuth2CredentialProvider(f"{base}/token", "client-id", SECRET)
        with pytest.raises(CredentialRefreshError) as info:
            await oauth.get_credentials("svc")
    assert info.value.error == "invalid_client"
