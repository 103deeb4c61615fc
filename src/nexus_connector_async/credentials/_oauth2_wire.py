"""The OAuth2 token request on the wire (RFC 6749 4.4 and 6) and its reply, without secrets leaking.

Kept apart from the provider so that the cache and single-flight logic reads on its own: this
module knows the form fields, client authentication, the JSON reply and the error body.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from typing import Any, Literal
from urllib.parse import quote_plus, urlencode

import msgspec

from .._config import Timeouts
from .._errors import ConnectorError, CredentialRefreshError
from .._scrub import MaskedHeaders, Scrubber, Secret, SecretBytes, has_control
from .._transport import AiohttpTransport, Transport

__all__ = ["GrantType", "ClientAuth", "TokenClient", "TokenReply"]

GrantType = Literal["client_credentials", "refresh_token"]
ClientAuth = Literal["basic", "body"]

# A token reply is small; anything bigger is not a token endpoint talking.
_MAX_REPLY_BYTES = 64 * 1024
_MAX_TEXT = 200
# Error codes are shown only in the shape of the registered ones (`invalid_grant`...): RFC 6749
# allows more, but a code is then free text in which a server could echo a secret.
_ERROR_CODE = re.compile(r"[a-z_]{1,64}")


class TokenReply(msgspec.Struct):
    """A successful token response (RFC 6749 5.1): only the fields we use."""

    access_token: str
    token_type: str = "Bearer"
    expires_in: float | None = None
    refresh_token: str | None = None
    scope: str | None = None

    def __repr__(self) -> str:
        return f"TokenReply(token_type={self.token_type!r}, expires_in={self.expires_in!r})"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return [("token_type", self.token_type), ("expires_in", self.expires_in)]


class _ErrorReply(msgspec.Struct):
    """An error response (RFC 6749 5.2); PayPal's token endpoint uses the same shape."""

    error: str | None = None
    error_description: str | None = None


# strict=False: some servers send `"expires_in": "3600"`; accept numbers in strings.
_decode_reply = msgspec.json.Decoder(TokenReply, strict=False).decode
_decode_error = msgspec.json.Decoder(_ErrorReply, strict=False).decode


class TokenClient:
    """Sends one token request and turns every failure into a `CredentialRefreshError`.

    A short-lived aiohttp session per request unless a `Transport` is injected: refreshes are
    rare, and the provider then needs no start or close of its own.
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        grant_type: GrantType,
        client_auth: ClientAuth,
        scope: str | None,
        timeout: Timeouts,
        http: Transport | None,
    ) -> None:
        self._url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._grant_type = grant_type
        self._client_auth = client_auth
        self._scope = scope
        self._timeout = timeout
        self._http = http

    def __repr__(self) -> str:
        return f"TokenClient(grant_type={self._grant_type!r}, client_auth={self._client_auth!r})"

    def _request(self, refresh_token: str | None) -> tuple[MaskedHeaders, SecretBytes]:
        """The headers and form body of one token request."""
        fields: list[tuple[str, str]] = [("grant_type", self._grant_type)]
        if self._grant_type == "refresh_token":
            assert refresh_token is not None  # the provider always has a seed
            fields.append(("refresh_token", refresh_token))
        if self._scope:
            fields.append(("scope", self._scope))
        headers = MaskedHeaders(
            {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"}
        )
        if self._client_auth == "basic":
            headers["Authorization"] = _basic(self._client_id, self._client_secret)
        else:
            fields += [("client_id", self._client_id), ("client_secret", self._client_secret)]
        return headers, SecretBytes(urlencode(fields).encode())

    async def request(
        self, refresh_token: str | None, also_secret: Iterable[str | None] = ()
    ) -> TokenReply:
        """POST the grant to the token endpoint and return its decoded, validated reply.

        `also_secret` names more values (older tokens) to mask if the server echoes them.
        """
        # Built in a helper, held masked: this frame's locals show no secret in a traceback.
        headers, body = self._request(refresh_token)
        secrets = tuple(Secret(s) for s in (self._client_secret, refresh_token, *also_secret) if s)

        transport = self._http or AiohttpTransport(max_response_bytes=_MAX_REPLY_BYTES)
        try:
            response = await transport.send("POST", self._url, headers, body, self._timeout)
        except ConnectorError as exc:
            # The transport's messages carry no secrets, but say only what kind of failure it was.
            raise CredentialRefreshError(
                f"token endpoint unreachable ({type(exc).__name__})"
            ) from None
        finally:
            if self._http is None:
                await transport.aclose()

        if not 200 <= response.status < 300:
            error, description = _parse_error(response.body, secrets)
            detail = f" {error}" if error else ""
            detail += f": {description}" if description else ""
            raise CredentialRefreshError(
                f"token endpoint returned HTTP {response.status}{detail}",
                error=error,
                description=description,
            )
        try:
            reply = _decode_reply(response.body)
        except msgspec.ValidationError:
            raise CredentialRefreshError(
                "token response is missing a valid access_token", error="invalid_response"
            ) from None
        except (msgspec.DecodeError, UnicodeDecodeError):  # msgspec raises the latter for bad UTF-8
            raise CredentialRefreshError(
                "token response is not valid JSON", error="invalid_response"
            ) from None
        if not reply.access_token or has_control(reply.access_token):
            raise CredentialRefreshError(
                "token response is missing a valid access_token", error="invalid_response"
            )
        if not reply.token_type or has_control(reply.token_type):
            # It goes into the Authorization header next to the token: no header injection.
            raise CredentialRefreshError(
                "token response has an invalid token_type", error="invalid_response"
            )
        if reply.expires_in is not None and not 0 <= reply.expires_in < 10 * 365 * 86400:
            raise CredentialRefreshError(
                "token response has an invalid expires_in", error="invalid_response"
            )
        if reply.token_type.lower() == "bearer":
            reply.token_type = "Bearer"  # RFC 6750 says case-insensitive; some APIs are not
        return reply


def _basic(client_id: str, client_secret: str) -> str:
    """HTTP Basic client authentication, form-encoding both parts first (RFC 6749 2.3.1)."""
    raw = f"{quote_plus(client_id)}:{quote_plus(client_secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def _parse_error(body: bytes, secrets: Iterable[str | None]) -> tuple[str | None, str | None]:
    """The OAuth error code and a scrubbed description from an error body, if it has them."""
    try:
        reply = _decode_error(body)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return None, None
    error = reply.error if reply.error and _ERROR_CODE.fullmatch(reply.error) else None
    description = None
    if reply.error_description:
        description = scrub(reply.error_description, secrets)
    return error, description


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with our secrets (also percent-, plus- and base64-encoded), bearer/basic values,
    token-like runs and control characters masked, shortened.

    Token endpoints sometimes echo what they were sent; an error message must not.
    """
    return Scrubber(secrets, max_length=_MAX_TEXT, tokenish=True)(text)
