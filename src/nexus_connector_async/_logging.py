"""Where the library's log lines go, and redaction: what we log never carries a secret.

The library follows the convention of httpx, aiohttp and redis-py: while the application has not
configured structlog, its events go to the standard `logging` module under the logger name
`nexus_connector_async` (silent until the app enables that logger, e.g. with
`logging.basicConfig(level=logging.INFO)`). Once the application configures structlog, before or
after the `Connector` was built, the same events go through structlog's pipeline instead. The
level is checked before any event is built, so a silent logger costs next to nothing.

The connector only logs fields it builds itself (service, tenant, method, redacted URL, status,
attempt, duration, a hash of the idempotency key). `redact_processor` is also offered to users
who want the same scrubbing on their own log lines.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import structlog

__all__ = ["LOGGER_NAME", "LibraryLogger", "get_logger", "redact", "redact_processor", "redact_url"]

#: The stdlib logger name the library logs under while structlog is not configured.
LOGGER_NAME = "nexus_connector_async"
# A library never prints on its own: without this, stdlib's "last resort" handler would write
# our warnings to stderr in an app that configured no logging at all.
logging.getLogger(LOGGER_NAME).addHandler(logging.NullHandler())

REDACTED = "***"
_SENSITIVE = re.compile(
    r"authori[sz]ation|token|secret|passw|api[-_]?key|cvc|cvv|card|signature|cookie|"
    r"^number$|^pan$|credential|private",
    re.IGNORECASE,
)
_BEARER = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_SECRETISH = re.compile(r"\b(sk|rk|pk)_(live|test)_[A-Za-z0-9]+")
_PAN = re.compile(r"\b(?:\d[ -]?){13,19}\b")
# Strings known to need no masking (service names, redacted URLs, event names): log lines repeat
# the same few, and a dict lookup is far cheaper than three regex substitutions. Bounded, and it
# only ever holds strings the patterns found nothing in.
_CLEAN: dict[str, None] = {}
_CLEAN_MAX = 4096
_CLEAN_LEN = 256


def get_logger(name: str = LOGGER_NAME) -> LibraryLogger:
    """The library's logger: stdlib `logging` until the app configures structlog, then structlog."""
    return LibraryLogger(name)


_CONFIG: Any = getattr(getattr(structlog, "_config", None), "_CONFIG", None)


def _structlog_configured() -> bool:
    # structlog.is_configured() without the call overhead on the hot path, when we can.
    if _CONFIG is not None:
        return bool(_CONFIG.is_configured)
    return structlog.is_configured()  # pragma: no cover - a future structlog layout


def _structlog_key() -> tuple[Any, ...]:
    """What a bound structlog logger depends on; a `configure()` call changes one of these."""
    if _CONFIG is not None:
        return (
            _CONFIG.default_wrapper_class,
            _CONFIG.default_processors,
            _CONFIG.default_context_class,
            _CONFIG.logger_factory,
        )
    conf = structlog.get_config()  # pragma: no cover - a future structlog layout
    return (  # pragma: no cover
        conf["wrapper_class"],
        conf["processors"],
        conf["context_class"],
        conf["logger_factory"],
    )


def _render(value: Any) -> str:
    if isinstance(value, str):
        text = redact_text(value)
        return text if text and " " not in text and "=" not in text else repr(text)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


class LibraryLogger:
    """A structlog-style logger that routes each line to structlog or stdlib `logging`.

    Which one is decided per line, so an app that configures structlog after building the
    `Connector` (a web app building it at import time) still gets every line in its pipeline.
    `is_enabled_for(level)` is cheap in both cases: callers use it to skip building events.
    """

    __slots__ = ("_bound", "_check", "_context", "_key", "_name", "_std")

    def __init__(self, name: str = LOGGER_NAME, context: dict[str, Any] | None = None) -> None:
        self._name = name
        self._context = context or {}
        self._std = logging.getLogger(name)
        self._key: tuple[Any, ...] | None = None
        self._bound: Any = None
        self._check: Callable[[int], Any] | None = None  # the bound logger's level check

    def __repr__(self) -> str:
        return f"LibraryLogger({self._name!r})"

    def bind(self, **context: Any) -> LibraryLogger:
        """A logger adding `context` to every line."""
        return LibraryLogger(self._name, {**self._context, **context})

    def _structlog(self) -> Any:
        # Binding a structlog logger is costly (its lazy proxy re-binds on every call): bind once
        # per configuration, and again only when the app calls `structlog.configure()`. The
        # configuration is compared in place (no key tuple per line: this runs per call).
        old, c = self._key, _CONFIG
        if (
            old is not None
            and c is not None
            and c.default_wrapper_class is old[0]
            and c.default_processors is old[1]
            and c.default_context_class is old[2]
            and c.logger_factory is old[3]
        ):
            return self._bound
        key = _structlog_key()
        if old is None or any(new is not was for new, was in zip(key, old, strict=True)):
            bound = self._bound = structlog.get_logger(self._name).bind(**self._context)
            self._check = getattr(bound, "is_enabled_for", None) or getattr(
                bound, "isEnabledFor", None
            )
            self._key = key
        return self._bound

    def is_enabled_for(self, level: int) -> bool:
        """Whether a line at `level` would go anywhere (build nothing when it would not)."""
        if _CONFIG is not None:  # the common layout: no function call to ask structlog
            if not _CONFIG.is_configured:  # the default
                return self._std.isEnabledFor(level)
        elif not structlog.is_configured():  # pragma: no cover - a future structlog layout
            return self._std.isEnabledFor(level)
        self._structlog()  # (re)binds the logger and its check after a configure()
        check = self._check
        return True if check is None else bool(check(level))

    def emitter(self, level: int, method: str) -> Callable[..., Any] | None:
        """What to call with `(event, **fields)` for a line at `level`, or None if it is off.

        One check and one call for hot callers (the event hook), instead of a check and then
        `info(...)`, which would route the line a second time.
        """
        if _structlog_configured():
            bound = self._structlog()
            check = self._check
            if check is not None and not check(level):
                return None
            emit: Callable[..., Any] = getattr(bound, method)
            return emit
        if not self._std.isEnabledFor(level):
            return None
        fallback: Callable[..., Any] = getattr(self, method)
        return fallback

    def _emit(self, level: int, method: str, event: str, fields: dict[str, Any]) -> None:
        if _structlog_configured():
            getattr(self._structlog(), method)(event, **fields)
            return
        std = self._std
        if not std.isEnabledFor(level):
            return
        if self._context:
            fields = {**self._context, **fields}
        fields = {k: REDACTED if is_sensitive(k) else v for k, v in fields.items()}
        message = " ".join([event, *(f"{k}={_render(v)}" for k, v in fields.items())])
        # `event` and `event_fields` let a JSON formatter for stdlib records keep the structure.
        std.log(level, "%s", message, extra={"event": event, "event_fields": fields})

    def debug(self, event: str, **fields: Any) -> None:
        """Log `event` at DEBUG (one line per attempt)."""
        self._emit(logging.DEBUG, "debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        """Log `event` at INFO (the audit line of a finished call)."""
        self._emit(logging.INFO, "info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        """Log `event` at WARNING (retries, fallbacks, failed calls)."""
        self._emit(logging.WARNING, "warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        """Log `event` at ERROR (something the operator must look at)."""
        self._emit(logging.ERROR, "error", event, fields)


@functools.lru_cache(maxsize=1024)
def is_sensitive(key: str) -> bool:
    """True for field names that hold secrets (tokens, keys, card data...)."""
    return bool(_SENSITIVE.search(key))


def redact_text(text: str) -> str:
    """Mask bearer/basic credentials, Stripe-style keys and card-number-like digit runs."""
    if text in _CLEAN:
        return text
    out = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    out = _SECRETISH.sub(REDACTED, out)
    out = _PAN.sub(REDACTED, out)
    if out == text and len(text) <= _CLEAN_LEN:
        if len(_CLEAN) >= _CLEAN_MAX:
            _CLEAN.clear()
        _CLEAN[text] = None
    return out


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
    """A structlog processor that masks secrets in every field of an event.

    It changes values in place (no copy of the event), and leaves clean strings as they are.
    """
    keys, clean = _KEYS, _CLEAN
    for key, value in event_dict.items():  # replacing values never resizes the dict
        secret = keys.get(key)
        if secret is None:
            secret = _remember_key(key)
        if secret:
            event_dict[key] = REDACTED
        elif value.__class__ is str:  # the common case first: one dict lookup when clean
            if value not in clean:
                event_dict[key] = redact_text(value)
        elif value.__class__ in _SCALARS:
            continue
        elif isinstance(value, str):
            event_dict[key] = redact_text(value)
        elif isinstance(value, Mapping | list | tuple):
            event_dict[key] = redact(value)
    return event_dict


# Field names seen by `redact_processor` and whether they look secret (a plain dict: cheaper to
# ask than the lru_cache of `is_sensitive`). Bounded like `_CLEAN`.
_KEYS: dict[Any, bool] = {}


def _remember_key(key: Any) -> bool:
    secret = isinstance(key, str) and is_sensitive(key)
    if len(_KEYS) >= _CLEAN_MAX:
        _KEYS.clear()
    _KEYS[key] = secret
    return secret


_SCALARS = frozenset({int, float, bool, type(None)})
