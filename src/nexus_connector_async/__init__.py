"""nexus_connector_async: safe outbound calls to payment and messaging vendors.

Every call goes through one pipeline (idempotency, circuit breaker, rate limiter, credentials,
HTTP with retries) whose state lives in a backend: in memory for one process, or Redis to share
it between all workers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._clock import Clock, SystemClock
from ._config import (
    CircuitBreakerConfig,
    ConcurrencyLimit,
    Endpoint,
    RateLimitConfig,
    RetryPolicy,
    Timeouts,
)
from ._connector import Connector
from ._errors import (
    BackendUnavailable,
    CircuitOpenError,
    ConcurrencyLimitExceeded,
    ConnectionFailed,
    ConnectorError,
    CredentialRefreshError,
    HttpStatusError,
    IdempotencyConflict,
    IdempotencyInProgress,
    InvalidRequest,
    InvalidResponse,
    OutcomeUnknown,
    RateLimitExceeded,
    RequestTimeout,
    ResponseTooLarge,
    StoredRecordInvalid,
    TransportError,
)
from ._events import (
    AdmissionRejected,
    AttemptFinished,
    BackendUnavailableEvent,
    BackendWriteFailed,
    CallFinished,
    CircuitStateChanged,
    ConcurrencyLimitChanged,
    ConcurrencySlotHeld,
    ConcurrencySlotReleased,
    Event,
    EventHook,
    IdempotentReplay,
    OutcomeUnknownEvent,
    RetryScheduled,
    ShadowWouldBlock,
    TokenRefreshed,
)
from ._logging import redact_processor
from ._models import Credentials, IdempotencyKey, Response
from ._settings import ConfigError, Gateways, Settings, connect
from ._transport import AiohttpTransport, Transport
from .backends._base import Backend
from .backends._memory import MemoryBackend
from .credentials._base import CredentialProvider, NamesAccount
from .credentials._oauth2 import OAuth2CredentialProvider
from .credentials._static import StaticCredentialProvider

if TYPE_CHECKING:
    from .backends.redis import RedisBackend

__all__ = [
    "AdmissionRejected",
    "AiohttpTransport",
    "AttemptFinished",
    "Backend",
    "BackendUnavailable",
    "BackendUnavailableEvent",
    "BackendWriteFailed",
    "CallFinished",
    "CircuitBreakerConfig",
    "CircuitOpenError",
    "CircuitStateChanged",
    "Clock",
    "ConcurrencyLimit",
    "ConcurrencyLimitChanged",
    "ConcurrencyLimitExceeded",
    "ConcurrencySlotHeld",
    "ConcurrencySlotReleased",
    "ConfigError",
    "ConnectionFailed",
    "Connector",
    "ConnectorError",
    "CredentialProvider",
    "CredentialRefreshError",
    "Credentials",
    "Endpoint",
    "Event",
    "EventHook",
    "Gateways",
    "HttpStatusError",
    "IdempotencyConflict",
    "IdempotencyInProgress",
    "IdempotencyKey",
    "IdempotentReplay",
    "InvalidRequest",
    "InvalidResponse",
    "MemoryBackend",
    "NamesAccount",
    "OAuth2CredentialProvider",
    "OutcomeUnknown",
    "OutcomeUnknownEvent",
    "RateLimitConfig",
    "RateLimitExceeded",
    "RedisBackend",
    "RequestTimeout",
    "Response",
    "ResponseTooLarge",
    "RetryPolicy",
    "RetryScheduled",
    "Settings",
    "ShadowWouldBlock",
    "StaticCredentialProvider",
    "StoredRecordInvalid",
    "SystemClock",
    "Timeouts",
    "TokenRefreshed",
    "Transport",
    "TransportError",
    "connect",
    "redact_processor",
]

__version__ = "0.3.0"

# Tracebacks and reprs name the public path (`nexus_connector_async.ConnectionFailed`), not the
# private module the class happens to live in; pickle finds the classes there too.
for _name in __all__:
    _obj = globals().get(_name)
    if isinstance(_obj, type) and issubclass(_obj, BaseException):
        _obj.__module__ = __name__
del _name, _obj


def __getattr__(name: str) -> Any:
    # Redis is an optional extra: import its backend only when asked for.
    if name == "RedisBackend":
        from .backends.redis import RedisBackend  # noqa: PLC0415

        return RedisBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
