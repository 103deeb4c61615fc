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
    "ConnectionFailed",
    "ConnectorError",
    "CredentialRefreshError",
    "HttpStatusError",
    "IdempotencyConflict",
    "IdempotencyInProgress",
    "InvalidRequest",
    "InvalidResponse",
    "OutcomeUnknown",
    "RateLimitExceeded",
    "RequestTimeout",
    "ResponseTooLarge",
]


class ConnectorError(Exception):
    """Base class of every error raised by nexus_connector_async."""

    #: Whether the failure says nothing about the vendor's health but a retry may succeed.
    transient: bool = False


class InvalidRequest(ConnectorError, ValueError):
    """Bad input caught before anything was sent (config, key, amount, phone number...)."""


class InvalidResponse(ConnectorError, ValueError):
    """The vendor's response body could not be read as expected (not JSON, invalid UTF-8...).

    The message names the problem and the body's size and content type, never the body itself:
    a vendor's error page may echo what it was sent.
    """


class RateLimitExceeded(ConnectorError):
    """No token was available in the service's bucket within the allowed wait."""

    def __init__(self, message: str = "rate limit exceeded", *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = float(retry_after)


class CircuitOpenError(ConnectorError):
    """The service's circuit breaker is open (or its half-open probes are all taken)."""

    def __init__(self, message: str = "circuit open", *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = float(retry_after)


class RequestTimeout(ConnectorError):
    """An attempt did not finish within its timeout. The vendor may have processed it."""

    transient = True

    def __init__(self, message: str = "request timed out", *, sent: bool = True) -> None:
        super().__init__(message)
        #: False only when we know no byte of the request reached the vendor (connect timeout).
        self.sent = sent


class ConnectionFailed(ConnectorError):
    """The connection failed. `sent` is False when it failed before any byte was sent."""

    transient = True

    def __init__(self, message: str = "connection failed", *, sent: bool = True) -> None:
        super().__init__(message)
        self.sent = sent


class ResponseTooLarge(ConnectorError):
    """The vendor's response body exceeded the connector's `max_response_bytes`."""

    transient = True


class HttpStatusError(ConnectorError):
    """A final non-2xx response; the `Response` is attached."""

    def __init__(self, response: Response, message: str | None = None) -> None:
        super().__init__(message or f"HTTP {response.status}")
        self.response = response
        self.transient = response.status >= 500

    @property
    def status(self) -> int:
        """The HTTP status code of the response."""
        return self.response.status


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


class CredentialRefreshError(ConnectorError):
    """Fetching or refreshing an OAuth2 token failed; carries the OAuth error code if any."""

    def __init__(
        self, message: str, *, error: str | None = None, description: str | None = None
    ) -> None:
        super().__init__(message)
        self.error = error
        self.description = description


class BackendUnavailable(ConnectorError):
    """The shared state backend (Redis) could not be reached and the mode is fail_closed."""

    transient = True
