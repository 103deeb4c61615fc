"""Where the OAuth2 provider keeps its tokens: sealed values in the backend's key-value store.

One value holds a token set (access token + the refresh token that came with it); another
remembers a failed refresh for a while. With a Fernet key both are encrypted at rest, the key
name sealed in, so a value moved to another key does not open there. An unreadable value is
missing, never an error. Kept apart from the provider so its refresh coordination reads alone.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Final

import msgspec

from .._clock import Clock
from .._errors import ConnectorError, CredentialRefreshError, InvalidRequest
from .._models import Credentials
from ..backends._base import KeyValueStore
from ._oauth2_wire import TokenReply

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

__all__ = ["Entry", "Failure", "TokenStore", "fernet"]

_STORE_ATTEMPTS: Final = 5  # tries to store a rotated refresh token before giving up (logged)
_RETRY_FIRST: Final = 0.005
_RETRY_MAX: Final = 0.25


class Entry(msgspec.Struct, array_like=True, frozen=True):
    """One cached token set: the access token and the refresh token that came with it."""

    access_token: str
    token_type: str
    expires_at: float | None  # Unix time; None: the server gave no lifetime
    refresh_at: float | None  # when to refresh proactively
    refresh_token: str | None

    @classmethod
    def from_reply(
        cls, reply: TokenReply, used_refresh_token: str | None, now: float, skew: float
    ) -> Entry:
        """The token set a reply makes: refreshed `skew` seconds before it expires."""
        expires_at = refresh_at = None
        if reply.expires_in is not None:
            expires_at = now + reply.expires_in
            # A token shorter-lived than the skew would be refreshed on every call: cap the
            # skew at half its lifetime.
            refresh_at = expires_at - min(skew, reply.expires_in / 2.0)
        # A rotated refresh token replaces the old one in the same value (RFC 6749 6).
        refresh_token = reply.refresh_token or used_refresh_token
        if refresh_token is not None:
            refresh_token = str(refresh_token)  # a plain str (not `Secret`) to encode
        return cls(reply.access_token, reply.token_type, expires_at, refresh_at, refresh_token)

    def credentials(self) -> Credentials:
        return Credentials(self.access_token, self.refresh_token, self.expires_at, self.token_type)

    def __repr__(self) -> str:
        return f"Entry(expires_at={self.expires_at!r}, refresh_at={self.refresh_at!r})"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        # Seen in traceback locals of the provider's frames: never the tokens.
        return [("expires_at", self.expires_at), ("refresh_at", self.refresh_at)]

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def due(self, now: float) -> bool:
        return self.refresh_at is not None and now >= self.refresh_at


class Failure(msgspec.Struct, array_like=True, frozen=True):
    """A failed refresh, remembered so that waiters and later callers get it without retrying."""

    message: str
    error: str | None
    description: str | None
    until: float  # Unix time

    def exception(self) -> CredentialRefreshError:
        return CredentialRefreshError(self.message, error=self.error, description=self.description)


_encode = msgspec.msgpack.Encoder().encode
_decode_entry = msgspec.msgpack.Decoder(Entry).decode
_decode_failure = msgspec.msgpack.Decoder(Failure).decode


class TokenStore:
    """Sealed token sets and failure records of one OAuth2 client in a `KeyValueStore`.

    `client` names the client in log lines (a hash, never the client id).
    """

    def __init__(
        self,
        backend: KeyValueStore,
        cipher: Fernet | None,
        clock: Clock,
        log: Any,
        client: str,
    ) -> None:
        self.backend = backend
        self._cipher = cipher
        self._clock = clock
        self._log = log
        self._client = client

    def __repr__(self) -> str:
        return f"TokenStore(client=<{self._client}>, encrypted={self._cipher is not None})"

    async def load(self, key: str) -> Entry | None:
        """The token set at `key`; None when missing or unreadable (logged)."""
        raw = await self.backend.get(key)
        if raw is None:
            return None
        data = self._open(key, raw)
        try:
            if data is not None:
                return _decode_entry(data)
        except (msgspec.DecodeError, UnicodeDecodeError):
            pass
        # Another key, an older layout or a corrupted write: treat it as missing.
        self._log.warning("nexus.oauth.cache_unreadable", client=self._client)
        return None

    async def load_failure(self, key: str) -> Failure | None:
        """The failure remembered at `key`, if any."""
        raw = await self.backend.get(key)
        data = None if raw is None else self._open(key, raw)
        if data is None:
            return None
        try:
            return _decode_failure(data)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return None

    async def store(self, key: str, entry: Entry, ttl: float | None) -> None:
        """Store a token set; a backend failure is logged (the token is good regardless)."""
        await self.quietly("store_token", self.backend.set(key, self.seal(key, entry), ttl))

    async def store_failure(self, key: str, failure: Failure, ttl: float) -> None:
        """Remember a failed refresh for `ttl` seconds; a backend failure is logged."""
        await self.quietly("store_failure", self.backend.set(key, self.seal(key, failure), ttl))

    async def store_rotated(
        self, key: str, before: bytes | None, new: Entry, ttl: float | None, ctx: dict[str, Any]
    ) -> None:
        """Store a refresh-token pair only over the value it replaces (api.md 23), retrying a
        failed write: a late or duplicated reply never overwrites a newer refresh token, and a
        rotated token (the only one the vendor now accepts) is not lost to one backend error."""
        sealed = self.seal(key, new)
        delay = _RETRY_FIRST
        for attempt in range(_STORE_ATTEMPTS):
            try:
                if not await self.backend.compare_and_set(key, before, sealed, ttl):
                    self._log.warning("nexus.oauth.rotation_superseded", **ctx)
                return
            except ConnectorError as exc:
                self._log.error(
                    "nexus.oauth.backend_failed",
                    what="store_token",
                    attempt=attempt + 1,
                    error=type(exc).__name__,
                    client=self._client,
                )
            await self._clock.sleep(delay)
            delay = min(delay * 2.0, _RETRY_MAX)

    async def quietly(self, what: str, op: Awaitable[None]) -> None:
        """Run a backend write whose failure must not hide the refresh's own outcome."""
        try:
            await op
        except ConnectorError as exc:  # BackendUnavailable: a lock lease ends on its own
            self._log.error(
                "nexus.oauth.backend_failed", op=what, client=self._client, error=type(exc).__name__
            )

    def seal(self, key: str, value: Entry | Failure) -> bytes:
        """`value` as stored at `key`: msgpack, encrypted with the key name when a cipher is set."""
        data = _encode(value)
        if self._cipher is None:
            return data
        # The key name is sealed with the value, so a ciphertext moved to another key (another
        # tenant's, another service's) does not open there.
        return self._cipher.encrypt(key.encode() + b"\0" + data)

    def _open(self, key: str, raw: bytes) -> bytes | None:
        if self._cipher is None:
            return raw
        from cryptography.fernet import InvalidToken  # noqa: PLC0415 - optional dependency

        try:
            plain = self._cipher.decrypt(raw)
        except InvalidToken:
            return None
        name, sep, data = plain.partition(b"\0")
        return data if sep and hmac.compare_digest(name, key.encode()) else None


def fernet(key: str | bytes) -> Fernet:
    """A Fernet cipher (AES-128-CBC + HMAC-SHA256) for tokens at rest in the backend."""
    try:
        from cryptography.fernet import Fernet  # noqa: PLC0415 - optional dependency
    except ImportError:  # pragma: no cover - depends on the environment
        raise InvalidRequest("encryption_key needs the 'cryptography' package") from None
    try:
        return Fernet(key)
    except (ValueError, TypeError):
        raise InvalidRequest(
            "encryption_key must be a Fernet key (cryptography.fernet.Fernet.generate_key())"
        ) from None
