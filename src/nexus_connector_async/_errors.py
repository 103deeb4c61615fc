"""The error hierarchy: every failure the library raises is a `ConnectorError`.

Messages never carry secrets: they are built from our own text, status codes and vendor error
codes, never from request headers, payloads or tokens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._models import Response

__all__ = [
    "BackendUnavailable",
    "CircuitOpenError",
    "ConcurrencyLimitExceeded",
    "ConnectionFailed",
    "ConnectorError",
    "CredentialRefreshError",
    "HttpStatusError",
    "IdempotencyConflict",
    "IdempotencyInProgress",
    "InvalidRequest",
    "InvalidResponse",
    "OutcomeUnknown",
    "StoredRecordInvalid",
    "RateLimitExceeded",
    "RequestTimeout",
    "ResponseTooLarge",
    "TransportError",
]


class ConnectorError(Exception):
    """Base class of every error raised by nexus_connector_async.

    The attributes below are the contract the retry layer reads (declared here, so it reads
    plain attributes, never `getattr` with a fallback); subclasses override the defaults.
    """

    #: Whether the failure says nothing about the vendor's health but a retry may succeed.
    transient: bool = False
    #: The vendor refused the call for now (a 429 and the like): retried after `retry_after`,
    #: never counted by the breaker, and certainly not acted on.
    throttled: bool = False
    #: Whether the request reached the vendor: False when we know it did not, True when we
    #: know it did, None when the error does not say (then it may have).
    sent: bool | None = None
    #: Seconds to wait before trying again, when the error says so.
    retry_after: float | None = None
    #: The HTTP status of the vendor's answer, when there was one.
    status: int | None = None


class InvalidRequest(ConnectorError, ValueError):
    """Bad input caught before anything was sent (config, key, amount, phone number...)."""


class InvalidResponse(ConnectorError, ValueError):
    """The vendor's response body could not be read as expected (not JSON, invalid UTF-8...).

    The message names the problem and the body's size and content type, never the body itself:
    a vendor's error page may echo what it was sent.
    """


def _seconds(value: float) -> str:
    """A duration for a message: `0.25s`, `1.5s`, `92s` (rounded, never `0.30000000004`)."""
    if value >= 10:
        return f"{value:.0f}s"
    return f"{value:.2g}s" if value < 1 else f"{value:.1f}s"


def plural(n: int, word: str) -> str:
    """`1 attempt`, `3 attempts`."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class RateLimitExceeded(ConnectorError):
    """No token was available in the service's bucket within the allowed wait."""

    def __init__(self, message: str = "rate limit exceeded", *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after: float = float(retry_after)

    def __str__(self) -> str:
        return f"{super().__str__()} (retry after {_seconds(self.retry_after)})"


class ConcurrencyLimitExceeded(RateLimitExceeded):
    """No fleet-wide concurrency slot came free within the allowed wait (`ConcurrencyLimit`)."""

    def __init__(self, message: str = "concurrency limit exceeded", *, retry_after: float) -> None:
        super().__init__(message, retry_after=retry_after)


class CircuitOpenError(ConnectorError):
    """The service's circuit breaker is open (or its half-open probes are all taken)."""

    def __init__(self, message: str = "circuit open", *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after: float = float(retry_after)

    def __str__(self) -> str:
        return f"{super().__str__()} (retry after {_seconds(self.retry_after)})"


class TransportError(ConnectorError):
    """The exchange with the vendor failed without a usable answer (timeout, connection, size).

    Transient. When `sent` is True the vendor may have acted on the request.
    """

    transient = True


class RequestTimeout(TransportError):
    """An attempt did not finish within its timeout. The vendor may have processed it.

    Raised by a call, it also says how many attempts were made (`attempts`) and how long the
    whole call took (`elapsed`, seconds), all attempts and backoff sleeps included.
    """

    transient = True

    def __init__(self, message: str = "request timed out", *, sent: bool = True) -> None:
        super().__init__(message)
        #: False only when we know no byte of the request reached the vendor (connect timeout).
        self.sent = sent
        #: Attempts the call made, and the seconds it took in all (set when the call gives up).
        self.attempts: int | None = None
        self.elapsed: float | None = None

    def __str__(self) -> str:
        text = super().__str__()
        if self.attempts is None or self.elapsed is None:
            return text
        return f"{text} ({plural(self.attempts, 'attempt')} in {_seconds(self.elapsed)})"


class ConnectionFailed(TransportError):
    """The connection failed. `sent` is False when it failed before any byte was sent."""

    transient = True

    def __init__(self, message: str = "connection failed", *, sent: bool = True) -> None:
        super().__init__(message)
        self.sent = sent


class ResponseTooLarge(TransportError):
    """The vendor's response body exceeded the connector's `max_response_bytes`."""


class HttpStatusError(ConnectorError):
    """A final non-2xx response; the `Response` is attached."""

    def __init__(self, response: Response, message: str | None = None) -> None:
        super().__init__(message or f"HTTP {response.status}")
        self.response = response
        self.transient = response.status >= 500
        #: The HTTP status code of the response.
        self.status: int = response.status


class IdempotencyConflict(ConnectorError):
    """The idempotency key was already used for a different request (method, URL or payload)."""


class IdempotencyInProgress(ConnectorError):
    """Another call holds the idempotency key and did not finish within `idempotency_wait`."""


class OutcomeUnknown(ConnectorError):
    """An earlier call with this key may have reached a vendor that cannot deduplicate it.

    It was not resendable (api.md rule 18) and no answer was seen (a read timeout, a reset
    after sending, a worker that died holding the key), so nothing sends it again until the
    key's ttl ends: check with the vendor, then `Connector.forget()` the key.
    """

    def __init__(self, message: str | None = None, *, service: str, idempotency_key: str) -> None:
        super().__init__(
            message
            or f"the outcome of an earlier {service!r} call with this idempotency key is "
            "unknown: reconcile it with the vendor, then Connector.forget() the key"
        )
        self.service = service
        self.idempotency_key = idempotency_key


class StoredRecordInvalid(ConnectorError):
    """The stored result for an idempotency key could not be read or authenticated.

    Corrupted, written by an older layout, or planted by someone with write access to the
    backend (with `RedisBackend(result_key=...)` such a record fails authentication): it is
    never replayed. Inspect the backend, then `Connector.forget()` is of no help here (the key
    is completed); delete the record or use a new key.
    """


class CredentialRefreshError(ConnectorError):
    """Fetching or refreshing an OAuth2 token failed; carries the OAuth error code if any."""

    sent = False  # nothing goes out without the credentials

    def __init__(
        self, message: str, *, error: str | None = None, description: str | None = None
    ) -> None:
        super().__init__(message)
        self.error = error
        self.description = description


class BackendUnavailable(ConnectorError):
    """The shared state backend (Redis) could not be reached and the mode is fail_closed."""

    transient = True
