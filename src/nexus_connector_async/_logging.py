"""structlog integration and redaction: what we log never carries a secret.

The connector only logs fields it builds itself (service, tenant, method, redacted URL, status,
attempt, duration, a hash of the idempotency key). `redact_processor` is also offered to users
who want the same scrubbing on their own log lines.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import structlog

__all__ = ["get_logger", "redact", "redact_processor", "redact_url"]

REDACTED = "***"
_SENSITIVE = re.compile(
    r"authori[sz]ation|token|secret|passw|api[-_]?key|cvc|cvv|card|signature|cookie|"
    r"^number$|^pan$|credential|private",
    re.IGNORECASE,
)
_BEARER = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_SECRETISH = re.compile(r"\b(sk|rk|pk)_(live|test)_[A-Za-z0-9]+")
_PAN = re.compile(r"\b(?:\d[ -]?){13,19}\b")


def get_logger(name: str = "nexus_connector_async") -> Any:
    """The library's structlog logger (configure structlog as usual to route it)."""
    return structlog.get_logger(name)


def is_sensitive(key: str) -> bool:
    """True for field names that hold secrets (tokens, keys, card data...)."""
    return bool(_SENSITIVE.search(key))


def redact_text(text: str) -> str:
    """Mask bearer/basic credentials, Stripe-style keys and card-number-like digit runs."""
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _SECRETISH.sub(REDACTED, text)
    return _PAN.sub(REDACTED, text)


def redact(value: Any) -> Any:
    """A copy of `value` with sensitive mapping entries masked, recursively."""
    if isinstance(value, Mapping):
        return {
            k: REDACTED if isinstance(k, str) and is_sensitive(k) else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


@functools.lru_cache(maxsize=1024)
def redact_url(url: str) -> str:
    """The URL without user info and with sensitive query values masked."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    query = parts.query
    if query:
        query = urlencode(
            [(k, REDACTED if is_sensitive(k) else v) for k, v in parse_qsl(query, True)],
            safe="[]*",
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def redact_processor(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor that masks secrets in every field of an event."""
    for key, value in list(event_dict.items()):
        if is_sensitive(key):
            event_dict[key] = REDACTED
        elif isinstance(value, str | Mapping | list | tuple):
            event_dict[key] = redact(value)
    return event_dict
