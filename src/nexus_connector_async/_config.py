"""Immutable configuration values: timeouts, rate limits, breaker, retry policy and endpoints.

All are frozen msgspec Structs validated on construction, so a bad value raises `InvalidRequest`
naming the field before anything is sent.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeAlias
from urllib.parse import urlsplit

import msgspec

from ._errors import InvalidRequest
from ._models import Response
from ._scrub import MaskedHeaders, has_control, url_masked

__all__ = [
    "CircuitBreakerConfig",
    "ConcurrencyLimit",
    "Endpoint",
    "RateLimitConfig",
    "RetryHint",
    "RetryPolicy",
    "Timeouts",
    "vendor_retry_hint",
]

#: A vendor's own verdict on retrying an error response: True (retry), False (never) or None
#: (no verdict: `retry_statuses` decide). Adapters supply it from their vendor's own header,
#: so the pipeline reads no vendor header itself.
RetryHint: TypeAlias = Callable[[Response], bool | None]


def vendor_retry_hint(response: Response) -> bool | None:
    """`RetryPolicy`'s default `retry_hint`: the vendor's explicit verdict header, if any.

    api.md: a `RetryPolicy` honours Stripe's `Stripe-Should-Retry` (`true` / `false`) on any
    endpoint; None when the response carries no verdict (the statuses decide). The pipeline only
    ever asks the policy's hint, so a policy with `retry_hint=None` ignores the header.
    """
    value = response.headers.get("Stripe-Should-Retry")
    if value is None:
        return None
    return value.strip().lower() == "true"


_BUCKET_NAME = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


def _number(name: str, value: object, *, minimum: float = 0.0, strict: bool = False) -> float:
    """Check `value` is a finite real number above (or at) `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidRequest(f"{name} must be a finite number, got {type(value).__name__}")
    if value < minimum or (strict and value == minimum):
        op = ">" if strict else ">="
        raise InvalidRequest(f"{name} must be {op} {minimum:g}, got {value!r}")
    return float(value)


def _count(name: str, value: object, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidRequest(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+").fullmatch  # RFC 9110 field names


def check_header_value(name: str, value: object) -> None:
    """Refuse header names that are not tokens and values with any control character.

    Checked before anything is sent: a CR or LF would inject a header, and any other control
    character would make the HTTP client raise its own error mid-call.
    """
    if not isinstance(name, str) or not _TOKEN(name):
        raise InvalidRequest("header names must be non-empty tokens without ':', CR, LF or spaces")
    if not isinstance(value, str) or has_control(value):
        raise InvalidRequest(
            f"header {name!r} must be a str without CR, LF or other control characters"
        )


class Timeouts(msgspec.Struct, frozen=True):
    """Per-attempt timeouts in seconds: `total` bounds the whole attempt."""

    total: float = 30.0
    connect: float | None = 10.0
    read: float | None = None

    def __post_init__(self) -> None:
        _number("Timeouts.total", self.total, strict=True)
        if self.connect is not None:
            _number("Timeouts.connect", self.connect, strict=True)
        if self.read is not None:
            _number("Timeouts.read", self.read, strict=True)


class RateLimitConfig(msgspec.Struct, frozen=True):
    """A token bucket: at most `burst` tokens, refilled at `rate` tokens per `period` seconds.

    `max_wait` 0 fails fast with `RateLimitExceeded`; above 0 a call waits up to that long for its
    token. `scope="tenant"` gives each (service, tenant) its own bucket.

    One bucket per limit (api.md rule 21): endpoints of a service with equal (rate, period, burst)
    share a bucket, a different limit gets its own, so each limit holds. `name` (1-64 letters,
    digits, `_`, `.` or `-`) names a bucket explicitly instead: every limit with that name shares
    it, whatever its numbers.
    """

    rate: float
    period: float = 1.0
    burst: float | None = None
    max_wait: float = 0.0
    scope: Literal["service", "tenant"] = "service"
    name: str | None = None

    def __post_init__(self) -> None:
        _number("RateLimitConfig.rate", self.rate, strict=True)
        _number("RateLimitConfig.period", self.period, strict=True)
        if self.burst is not None:
            _number("RateLimitConfig.burst", self.burst, minimum=1.0)
        _number("RateLimitConfig.max_wait", self.max_wait)
        if self.scope not in ("service", "tenant"):
            raise InvalidRequest("RateLimitConfig.scope must be 'service' or 'tenant'")
        if self.name is not None and (
            not isinstance(self.name, str)
            or not 1 <= len(self.name) <= 64
            or not set(self.name) <= _BUCKET_NAME
        ):
            raise InvalidRequest(
                "RateLimitConfig.name must be 1-64 letters, digits, '_', '.' or '-'"
            )

    @classmethod
    def per_second(cls, n: float, burst: float | None = None, **kw: Any) -> RateLimitConfig:
        """`n` calls per second, bursts of up to `burst` (default `n`)."""
        return cls(n, 1.0, burst, **kw)

    @classmethod
    def per_minute(cls, n: float, burst: float | None = None, **kw: Any) -> RateLimitConfig:
        """`n` calls per minute, bursts of up to `burst` (default `n`)."""
        return cls(n, 60.0, burst, **kw)

    @classmethod
    def per_hour(cls, n: float, burst: float | None = None, **kw: Any) -> RateLimitConfig:
        """`n` calls per hour, bursts of up to `burst` (default `n`)."""
        return cls(n, 3600.0, burst, **kw)

    @property
    def capacity(self) -> float:
        """The most tokens the bucket holds."""
        return self.rate if self.burst is None else self.burst

    @property
    def refill_per_second(self) -> float:
        """Tokens added per second."""
        return self.rate / self.period

    @property
    def bucket_id(self) -> str:
        """Which bucket of the service this limit draws from: its `name`, else its numbers.

        `rate/period/burst` as floats (`"2.0/60.0/2.0"`); a name cannot contain `/`, so the
        two never collide, and neither contains `:` (the storage key separator).
        """
        if self.name is not None:
            return self.name
        return f"{float(self.rate)!r}/{float(self.period)!r}/{float(self.capacity)!r}"


class ConcurrencyLimit(msgspec.Struct, frozen=True):
    """A fleet-wide bulkhead: at most `max_in_flight` attempts of the service at the vendor at once.

    Every worker sharing the backend counts against the same limit. `max_wait` 0 fails fast with
    `ConcurrencyLimitExceeded`; above 0 a call waits up to that long (and within its deadline)
    for a slot, first come first served. `scope="tenant"` gives each (service, tenant) its own
    limit. `lease` bounds how long a slot is held without renewal, so a dead worker's slots come
    back (None: the attempt's timeout plus 5 s). `adaptive=True` moves the limit between 1 and
    `max_in_flight` (AIMD): a 429, a vendor throttle or an attempt slower than `latency_target`
    cuts it to 70 %, and each `window` seconds of successes raises it by one, fleet-wide.
    """

    max_in_flight: int
    max_wait: float = 0.0
    scope: Literal["service", "tenant"] = "service"
    lease: float | None = None
    adaptive: bool = False
    latency_target: float | None = None
    window: float = 1.0

    def __post_init__(self) -> None:
        _count("ConcurrencyLimit.max_in_flight", self.max_in_flight)
        _number("ConcurrencyLimit.max_wait", self.max_wait)
        if self.scope not in ("service", "tenant"):
            raise InvalidRequest("ConcurrencyLimit.scope must be 'service' or 'tenant'")
        if self.lease is not None:
            _number("ConcurrencyLimit.lease", self.lease, strict=True)
        if not isinstance(self.adaptive, bool):
            raise InvalidRequest("ConcurrencyLimit.adaptive must be a bool")
        if self.latency_target is not None:
            _number("ConcurrencyLimit.latency_target", self.latency_target, strict=True)
        _number("ConcurrencyLimit.window", self.window, strict=True)


class CircuitBreakerConfig(msgspec.Struct, frozen=True):
    """Opens after `failure_threshold` consecutive failures; probes after `recovery_timeout`."""

    failure_threshold: int = 5
    recovery_timeout: float = 30.0
    half_open_max_calls: int = 1
    success_threshold: int = 1

    def __post_init__(self) -> None:
        _count("CircuitBreakerConfig.failure_threshold", self.failure_threshold)
        _number("CircuitBreakerConfig.recovery_timeout", self.recovery_timeout, strict=True)
        _count("CircuitBreakerConfig.half_open_max_calls", self.half_open_max_calls)
        _count("CircuitBreakerConfig.success_threshold", self.success_threshold)


class RetryPolicy(msgspec.Struct, frozen=True):
    """Exponential backoff with full jitter, retrying only where a retry is safe.

    `always_safe_statuses` are statuses a vendor documents as "not processed" (Twilio's 429), so
    they may be retried even for a call the vendor cannot deduplicate. `unstored_statuses` are
    final answers that release the idempotency key instead of being stored ("not processed",
    so a later call with the key may succeed); 5xx are always released. `budget_ratio` caps
    retries of a service to that fraction of its first attempts plus `budget_min_per_second`
    (None: no cap). `retry_hint` is asked about every error response first: its True or False
    overrides `retry_statuses` (None leaves them to decide); the default reads
    `Stripe-Should-Retry` (api.md), `retry_hint=None` turns hints off.
    """

    max_attempts: int = 3
    base_delay: float = 0.1
    max_delay: float = 10.0
    jitter: bool = True
    retry_statuses: frozenset[int] = frozenset({429, 500, 502, 503, 504})
    always_safe_statuses: frozenset[int] = frozenset()
    budget_ratio: float | None = None
    budget_min_per_second: float = 10.0
    unstored_statuses: frozenset[int] = frozenset({409, 425, 429})
    retry_hint: RetryHint | None = vendor_retry_hint

    def __post_init__(self) -> None:
        _count("RetryPolicy.max_attempts", self.max_attempts)
        if self.retry_hint is not None and not callable(self.retry_hint):
            raise InvalidRequest("RetryPolicy.retry_hint must be a function of the response")
        _number("RetryPolicy.base_delay", self.base_delay)
        _number("RetryPolicy.max_delay", self.max_delay)
        if self.max_delay < self.base_delay:
            raise InvalidRequest("RetryPolicy.max_delay must be >= base_delay")
        for name in ("retry_statuses", "always_safe_statuses", "unstored_statuses"):
            statuses = getattr(self, name)
            if not isinstance(statuses, frozenset | set):
                raise InvalidRequest(f"RetryPolicy.{name} must be a set of HTTP status codes")
            if not isinstance(statuses, frozenset):
                msgspec.structs.force_setattr(self, name, frozenset(statuses))
            for status in statuses:
                if (
                    isinstance(status, bool)
                    or not isinstance(status, int)
                    or not 100 <= status <= 599
                ):
                    raise InvalidRequest(f"RetryPolicy.{name} must be HTTP codes, got {status!r}")
        if self.budget_ratio is not None:
            _number("RetryPolicy.budget_ratio", self.budget_ratio)
        _number("RetryPolicy.budget_min_per_second", self.budget_min_per_second)


class Endpoint(msgspec.Struct, frozen=True):
    """One vendor operation: URL, method, body encoding, headers and its resilience policies.

    `idempotency_header` names the vendor's idempotency header (Stripe `Idempotency-Key`, PayPal
    `PayPal-Request-Id`); the pipeline fills it from the call's idempotency key. `deadline` bounds
    all attempts, backoff sleeps and rate-limit waits of one call together.
    """

    url: str
    method: str = "POST"
    body: Literal["json", "form"] = "json"
    headers: Mapping[str, str] = msgspec.field(default_factory=dict)
    timeout: Timeouts = Timeouts()
    rate_limit: RateLimitConfig | None = None
    circuit_breaker: CircuitBreakerConfig = CircuitBreakerConfig()
    retry: RetryPolicy = RetryPolicy()
    idempotency_header: str | None = None
    deadline: float | None = None
    concurrency_limit: ConcurrencyLimit | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.url, str):
            raise InvalidRequest("Endpoint.url must be a str")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidRequest("Endpoint.url must be an absolute http(s) URL")
        if " " in self.url or has_control(self.url):
            raise InvalidRequest("Endpoint.url must not contain spaces or control characters")
        if not isinstance(self.method, str) or self.method.upper() not in _METHODS:
            raise InvalidRequest(f"Endpoint.method must be one of {sorted(_METHODS)}")
        if self.method != self.method.upper():
            msgspec.structs.force_setattr(self, "method", self.method.upper())
        if self.body not in ("json", "form"):
            raise InvalidRequest("Endpoint.body must be 'json' or 'form'")
        if not isinstance(self.headers, Mapping):
            raise InvalidRequest("Endpoint.headers must be a mapping of header names to values")
        for name, value in self.headers.items():
            check_header_value(name, value)
        if not isinstance(self.headers, MaskedHeaders):
            # Held masked: a traceback rendered with locals shows `Authorization: ***`.
            msgspec.structs.force_setattr(self, "headers", MaskedHeaders(self.headers))
        if self.idempotency_header is not None:
            try:
                check_header_value(self.idempotency_header, "")
            except InvalidRequest:
                raise InvalidRequest(
                    "Endpoint.idempotency_header must be a header name (a non-empty token)"
                ) from None
        for name, kind in _POLICY_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, kind) and not (name == "rate_limit" and value is None):
                raise InvalidRequest(f"Endpoint.{name} must be a {kind.__name__}")
        if self.deadline is not None:
            _number("Endpoint.deadline", self.deadline, strict=True)
        if self.concurrency_limit is not None and not isinstance(
            self.concurrency_limit, ConcurrencyLimit
        ):
            raise InvalidRequest("Endpoint.concurrency_limit must be a ConcurrencyLimit or None")

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        """The fields as `repr` shows them (msgspec's default would show keys and queries)."""
        # Endpoints carry API keys in headers or query strings: never show them.
        shown: list[tuple[str, Any]] = [
            ("url", url_masked(self.url)),
            ("method", self.method),
            ("body", self.body),
        ]
        headers = MaskedHeaders(self.headers).shown()
        if headers:
            shown.append(("headers", headers))
        shown.extend((name, getattr(self, name)) for name in self.__struct_fields__[4:])
        return shown

    def __repr__(self) -> str:
        return f"Endpoint({', '.join(f'{k}={v!r}' for k, v in self.__rich_repr__())})"

    @classmethod
    def create(cls, url: str, method: str = "POST", **kw: Any) -> Endpoint:
        """An endpoint with default policies; tune it with the `with_*` copies."""
        return cls(url, method, **kw)

    def with_rate_limit(self, cfg: RateLimitConfig | None) -> Endpoint:
        """A copy with this rate limit (None: take no token)."""
        return msgspec.structs.replace(self, rate_limit=cfg)

    def with_timeout(self, t: Timeouts) -> Endpoint:
        """A copy with these per-attempt timeouts."""
        return msgspec.structs.replace(self, timeout=t)

    def with_retry(self, p: RetryPolicy) -> Endpoint:
        """A copy with this retry policy."""
        return msgspec.structs.replace(self, retry=p)

    def with_circuit_breaker(self, cfg: CircuitBreakerConfig) -> Endpoint:
        """A copy with this circuit breaker."""
        return msgspec.structs.replace(self, circuit_breaker=cfg)

    def with_headers(self, **headers: str) -> Endpoint:
        """A copy with these extra headers."""
        return msgspec.structs.replace(self, headers={**self.headers, **headers})

    def with_concurrency_limit(self, limit: ConcurrencyLimit | None) -> Endpoint:
        """A copy whose attempts each hold a fleet-wide slot (None: no concurrency limit)."""
        return msgspec.structs.replace(self, concurrency_limit=limit)

    def with_deadline(self, seconds: float | None) -> Endpoint:
        """A copy whose calls must finish, retries and waits included, within `seconds`."""
        return msgspec.structs.replace(self, deadline=seconds)


_POLICY_FIELDS: tuple[tuple[str, type], ...] = (
    ("timeout", Timeouts),
    ("rate_limit", RateLimitConfig),
    ("circuit_breaker", CircuitBreakerConfig),
    ("retry", RetryPolicy),
)
