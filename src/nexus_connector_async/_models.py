"""Values that cross the public API: idempotency keys, credentials and responses."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
from multidict import CIMultiDict, CIMultiDictProxy

from ._errors import InvalidRequest, InvalidResponse
from ._scrub import REDACTED, has_control

__all__ = ["Credentials", "IdempotencyKey", "Response"]

_MAX_KEY_LEN = 255


class IdempotencyKey:
    """A caller's idempotency key: 1 to 255 printable ASCII characters, kept for `ttl` seconds.

    The key is scoped by (service, tenant, key); only its hash ever reaches log lines or Redis
    key names.
    """

    __slots__ = ("_digest", "ttl", "value")

    def __init__(self, value: str, ttl: float = 86400.0) -> None:
        if not isinstance(value, str):
            raise InvalidRequest("idempotency key must be a str")
        if not 1 <= len(value) <= _MAX_KEY_LEN:
            raise InvalidRequest(
                f"idempotency key must be 1 to {_MAX_KEY_LEN} characters, got {len(value)}"
            )
        if not (value.isascii() and value.isprintable()):  # " ".."~", checked in C
            raise InvalidRequest("idempotency key must be printable ASCII (no control characters)")
        if not (isinstance(ttl, int | float) and math.isfinite(ttl) and ttl > 0):
            raise InvalidRequest("idempotency key ttl must be a positive number of seconds")
        self.value = value
        self.ttl = float(ttl)
        self._digest: str | None = None

    @classmethod
    def generate(cls, prefix: str = "", ttl: float = 86400.0) -> IdempotencyKey:
        """A fresh random key, `f"{prefix}_{uuid4hex}"` (or just the hex without a prefix)."""
        hex_ = uuid.uuid4().hex
        return cls(f"{prefix}_{hex_}" if prefix else hex_, ttl)

    @property
    def digest(self) -> str:
        """A short stable hash of the key, safe for logs and storage key names."""
        if self._digest is None:
            self._digest = hashlib.blake2b(self.value.encode(), digest_size=12).hexdigest()
        return self._digest

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdempotencyKey) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return f"IdempotencyKey(<{self.digest}>, ttl={self.ttl:g})"

    @property
    def caller_value(self) -> str:
        """The key as the caller gave it (a derived key keeps its caller's; see `ScopedKey`)."""
        return self.value


class FinalKey(IdempotencyKey):
    """A key stored and sent as it is: already unique (generated) or already scoped."""

    __slots__ = ()


class ScopedKey(FinalKey):
    """A caller's key derived from (tenant, account, key) (api.md rule 28): stored and sent.

    `value` is `<caller key>.<tag>`, where the tag (22 base64url characters, 132 bits) is an
    HMAC of the tenant and the key under the account id: two tenants' or two merchants' equal
    keys differ at the vendor and in the backend, and the caller's key stays readable in the
    vendor's dashboard. A long key is cut so that the whole fits the vendor's `limit` (Stripe
    255, PayPal 108); the tag still covers all of it. The same inputs always give the same key,
    so retries from any worker resend the same header.
    """

    __slots__ = ("_caller",)

    def __init__(
        self, key: IdempotencyKey, account: bytes, tenant: str | None, limit: int = _MAX_KEY_LEN
    ) -> None:
        scope = "-" if tenant is None else "t." + tenant
        mac = hmac.new(account, f"{scope}\0{key.value}".encode(), hashlib.sha256).digest()
        tag = base64.urlsafe_b64encode(mac).decode("ascii")[:22]
        super().__init__(f"{key.value[: limit - len(tag) - 1]}.{tag}", key.ttl)
        self._caller = key.caller_value

    @property
    def caller_value(self) -> str:
        return self._caller


class Credentials(msgspec.Struct, frozen=True, repr_omit_defaults=True):
    """An access token and what is needed to renew it; `repr` never shows a secret.

    `expires_at` is a Unix timestamp (seconds); `None` means the token does not expire.
    """

    access_token: str
    refresh_token: str | None = None
    expires_at: float | None = None
    token_type: str = "Bearer"

    def __post_init__(self) -> None:
        # Both end up in the Authorization header: a CR or LF there would inject headers, and
        # any other control character would fail the request mid-call.
        for name in ("access_token", "token_type"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value or has_control(value):
                raise InvalidRequest(
                    f"Credentials.{name} must be a non-empty str without control characters"
                )

    def is_expired(self, now: float | None = None) -> bool:
        """True once `expires_at` has passed."""
        if self.expires_at is None:
            return False
        return (time.time() if now is None else now) >= self.expires_at

    def should_refresh(self, skew: float = 300.0, now: float | None = None) -> bool:
        """True when the token expires within `skew` seconds: refresh before it is used."""
        if self.expires_at is None:
            return False
        return (time.time() if now is None else now) >= self.expires_at - skew

    @property
    def authorization(self) -> str:
        """The value of the `Authorization` header for this token."""
        return f"{self.token_type} {self.access_token}"

    def __repr__(self) -> str:
        return f"Credentials({', '.join(f'{k}={v!r}' for k, v in self.__rich_repr__())})"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        """The fields with both tokens masked (msgspec's default would show them)."""
        return [
            ("access_token", REDACTED),
            ("refresh_token", REDACTED if self.refresh_token else None),
            ("expires_at", self.expires_at),
            ("token_type", self.token_type),
        ]

    __str__ = __repr__


class Response:
    """A vendor's final response. `replayed` is True when it came from the idempotency store."""

    __slots__ = ("attempts", "body", "headers", "replayed", "status")

    def __init__(
        self,
        status: int,
        headers: Mapping[str, str] | Iterable[tuple[str, str]],
        body: bytes,
        *,
        replayed: bool = False,
        attempts: int = 1,
    ) -> None:
        self.status = status
        self.headers: CIMultiDictProxy[str] = (
            headers
            if isinstance(headers, CIMultiDictProxy)
            else CIMultiDictProxy(CIMultiDict(headers))
        )
        self.body = body
        self.replayed = replayed
        self.attempts = attempts

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The body decoded as JSON (msgspec).

        Raises `InvalidResponse` when it is not JSON (an HTML error page, a truncated body) or
        not valid UTF-8; the message names the problem, the status, size and content type, but
        never echoes the body.
        """
        try:
            return msgspec.json.decode(self.body)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            # msgspec < 0.23 raises UnicodeDecodeError for invalid UTF-8, later releases a
            # DecodeError: tell the cases apart ourselves, on the error path only.
            problem = _decode_problem(self.body, exc)
        raise InvalidResponse(f"response body is {problem}: {self._describe()}") from None

    def _describe(self) -> str:
        ctype = self.headers.get("Content-Type", "no Content-Type")
        # The type comes from the vendor: keep it short and printable in our message.
        ctype = "".join(c if c.isprintable() else "?" for c in ctype[:60])
        return f"HTTP {self.status}, {len(self.body)} bytes, {ctype}"

    def text(self, encoding: str = "utf-8") -> str:
        """The body as text; undecodable bytes are replaced, never raised."""
        return self.body.decode(encoding, errors="replace")

    def __repr__(self) -> str:
        return (
            f"Response(status={self.status}, bytes={len(self.body)}, "
            f"replayed={self.replayed}, attempts={self.attempts})"
        )


def _decode_problem(body: bytes, exc: Exception) -> str:
    """What is wrong with a body msgspec refused, in the same words on every msgspec version."""
    if not body:
        return "empty"
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return "not valid UTF-8"
    return f"not valid JSON ({_first_clause(exc)})"


def _first_clause(exc: Exception) -> str:
    """msgspec's description of a decode error, which names a position, never the content."""
    return str(exc).split(" - ")[0][:80]
