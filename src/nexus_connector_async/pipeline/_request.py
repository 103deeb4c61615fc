"""Request building: checked names, the scoped idempotency key, URL, body, headers, the `Call`."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from .._config import (
    IDEMPOTENT_METHODS,
    CircuitBreakerConfig,
    ConcurrencyLimit,
    Endpoint,
    RateLimitConfig,
    RetryPolicy,
    check_header_value,
)
from .._encoding import encode_form, encode_json, form_pairs, urlencode_pairs
from .._errors import InvalidRequest
from .._models import FinalKey, IdempotencyKey, ScopedKey
from .._scrub import MaskedBody, MaskedHeaders, MaskedUrl, url_label
from ..credentials._base import CredentialProvider, NamesAccount
from ._call import Call, Progress

__all__ = [
    "as_key",
    "build",
    "check_names",
    "endpoint_call",
    "guarded_call",
    "has_authorization",
    "new_call",
    "scoped_key",
]

_new = tuple.__new__
#: A half-open probe permit outlives its attempt's timeout by this much (seconds).
PROBE_MARGIN = 5.0
_CONTENT_TYPES = {"json": "application/json", "form": "application/x-www-form-urlencoded"}


@functools.lru_cache(maxsize=4096)
def _check_name(what: str, value: object, limit: int) -> None:
    """Service and tenant names end up in storage keys: printable ASCII, no braces or spaces.

    Cached: the same few names come back on every call, and this runs on the hot path.
    """
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= limit
        or any(not (" " < c <= "~") or c in "{}" for c in value)
    ):
        raise InvalidRequest(
            f"{what} must be 1-{limit} printable ASCII characters without spaces or braces"
        )


def check_names(service: str, tenant: str | None) -> None:
    """Refuse a service or tenant name that cannot be part of a storage key."""
    if not isinstance(service, str):
        raise InvalidRequest("service must be a str")
    _check_name("service", service, 100)
    if tenant is not None:
        if not isinstance(tenant, str):
            raise InvalidRequest("tenant_id must be a str or None")
        _check_name("tenant_id", tenant, 200)


def has_authorization(headers: Mapping[str, str]) -> bool:
    """Whether the application set its own Authorization header, in any case of the name."""
    if "Authorization" in headers or "authorization" in headers:
        return True
    return any(name.lower() == "authorization" for name in headers)


def as_key(key: IdempotencyKey | str | None) -> IdempotencyKey | None:
    """The caller's key as an `IdempotencyKey` (a str is checked and wrapped)."""
    if key is None or isinstance(key, IdempotencyKey):
        return key
    return IdempotencyKey(key)


def scoped_key(
    key: IdempotencyKey | str | None,
    provider: CredentialProvider | None,
    service: str,
    tenant: str | None,
) -> IdempotencyKey | None:
    """The caller's key as stored and sent: derived from (tenant, account, key) (rule 28).

    The account is the provider's `account_id` when it names one (`NamesAccount`). A key
    without a tenant or an account, and an adapter's key (`FinalKey`: scoped already, or
    generated), pass unchanged.
    """
    checked = as_key(key)
    if checked is None or isinstance(checked, FinalKey):
        return checked
    if provider is None:  # skips a runtime Protocol check (slow) on the plain keyed call
        if tenant is None:
            return checked
        return ScopedKey(checked, b"", tenant)
    account = provider.account_id(service, tenant) if isinstance(provider, NamesAccount) else None
    if account is None and tenant is None:
        return checked
    return ScopedKey(checked, account or b"", tenant)


def new_call(
    now: float,
    default_deadline: float | None,
    service: str,
    tenant: str | None,
    breaker: CircuitBreakerConfig,
    limit: RateLimitConfig | None,
    retry: RetryPolicy,
    resend_safe: bool,
    attempt_timeout: float,
    deadline: float | None,
    label: str,
    progress: Progress | None = None,
    concurrency: ConcurrencyLimit | None = None,
) -> Call:
    """The `Call` the layers share; `deadline` (seconds from `now`) bounds all its attempts."""
    if deadline is not None and (not isinstance(deadline, int | float) or deadline <= 0):
        raise InvalidRequest("deadline must be > 0 seconds")
    if deadline is None:
        deadline = default_deadline
    # Every field given: built without NamedTuple's generated `__new__` (a frame per call).
    return _new(
        Call,
        (
            service,
            tenant,
            breaker,
            limit,
            retry,
            resend_safe,
            attempt_timeout + PROBE_MARGIN,  # probe_lease
            None if deadline is None else now + deadline,
            label,
            now,
            "",  # probe
            progress,
            concurrency,
            None,  # held
        ),
    )


def build(
    endpoint: Endpoint,
    payload: Any,
    extra: Mapping[str, str] | None,
    key: IdempotencyKey | None,
) -> tuple[str, str, bytes | None, Mapping[str, str]]:
    """Method, URL (with the query of a GET), encoded body and headers of the request.

    URL, body and headers that may hold secrets are masked types: tracebacks show `***`.
    """
    method, url = endpoint.method, endpoint.url
    if "?" in url:
        url = MaskedUrl(url)  # query values may be keys: masked in traceback locals
    body: bytes | None = None
    content_type: str | None = None
    if method in ("GET", "HEAD", "DELETE"):
        if payload:
            query = urlencode_pairs(form_pairs(payload))
            url = MaskedUrl(f"{url}{'&' if '?' in url else '?'}{query}")
    elif payload is not None:
        body = MaskedBody(encode_form(payload) if endpoint.body == "form" else encode_json(payload))
        content_type = _CONTENT_TYPES[endpoint.body]
    elif endpoint.body == "json":
        content_type = "application/json"
    if not (extra or content_type or key is not None):
        return method, url, body, endpoint.headers  # nothing to add: no copy (hot path)
    headers = MaskedHeaders(endpoint.headers)  # masked in traceback locals, like the Endpoint's
    if extra:
        for name, value in extra.items():
            check_header_value(name, value)
        headers.update(extra)
    if content_type is not None:
        headers.setdefault("Content-Type", content_type)
    if key is not None and endpoint.idempotency_header:
        headers[endpoint.idempotency_header] = key.value
    return method, url, body, headers


def endpoint_call(
    now: float,
    default_deadline: float | None,
    service: str,
    tenant: str | None,
    endpoint: Endpoint,
    key: IdempotencyKey | None,
    idempotent: bool | None,
    deadline: float | None,
) -> Call:
    """The `Call` of one `execute()`: the endpoint's policies, resend safety and label; a
    keyed one has its `Progress` from the start."""
    method = endpoint.method
    # Resend-safe (api.md rule 18): the method is idempotent, or the vendor deduplicates it (the
    # endpoint's idempotency header carries our key); the caller's `idempotent` overrides both.
    # A key alone is not enough: it guards against duplicates on our side only.
    if idempotent is None:
        vendor_dedupes = key is not None and endpoint.idempotency_header is not None
        idempotent = vendor_dedupes or method in IDEMPOTENT_METHODS
    return new_call(
        now,
        default_deadline,
        service,
        tenant,
        endpoint.circuit_breaker,
        endpoint.rate_limit,
        endpoint.retry,
        idempotent,  # resend_safe
        endpoint.timeout.total,
        deadline if deadline is not None else endpoint.deadline,
        f"{method} {url_label(endpoint.url)}",  # no query: its values may be secrets
        None if key is None else Progress(),
        endpoint.concurrency_limit,
    )


def guarded_call(
    now: float,
    default_deadline: float | None,
    service: str,
    tenant: str | None,
    operation: str,
    deadline: float | None,
    timeout: float | None,
    idempotent: bool | None,
    limit: RateLimitConfig | None,
    breaker: CircuitBreakerConfig | None,
    retry: RetryPolicy | None,
    concurrency: ConcurrencyLimit | None,
) -> Call:
    """The `Call` of one `Connector.call()`: resend-safe only if the caller says so."""
    if not isinstance(operation, str) or not operation:
        raise InvalidRequest("operation must be a non-empty str")
    return new_call(
        now,
        default_deadline,
        service,
        tenant,
        breaker or CircuitBreakerConfig(),
        limit,
        retry or RetryPolicy(),
        bool(idempotent),
        timeout or 30.0,
        deadline,
        operation,
        None,
        concurrency,
    )
