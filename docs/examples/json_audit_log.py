"""A fast JSON audit log: one JSON line per call on stdout, secrets masked.

Call `configure_json_audit_log()` once at start-up, before or after building the `Connector`.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import MutableMapping
from typing import IO, Any

import msgspec
import structlog

from nexus_connector_async import redact_processor

# Built once: msgspec's encoder writes JSON bytes several times faster than json.dumps.
_encode = msgspec.json.Encoder(enc_hook=str).encode


class _UtcTimestamp:
    """`timestamp`: ISO 8601 in UTC with microseconds, the date and time formatted once a second.

    structlog's TimeStamper(fmt="iso") builds a datetime per line, which costs more than
    everything else in this pipeline together.
    """

    def __init__(self) -> None:
        self._cached = (-1, "")  # (second, "YYYY-MM-DDTHH:MM:SS"): replaced whole, thread-safe

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        now = time.time()
        second = int(now)
        cached = self._cached
        if cached[0] != second:
            cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
            self._cached = cached
        event_dict["timestamp"] = f"{cached[1]}.{int((now - second) * 1e6):06d}Z"
        return event_dict


def _json_line(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> bytes:
    return _encode(event_dict)  # BytesLogger adds the newline


def configure_json_audit_log(file: IO[bytes] | None = None, level: int = logging.INFO) -> None:
    """Route every structlog line (the library's and yours) to `file` as one JSON line."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,  # request ids bound by your web framework
            redact_processor,  # masks secrets in your own lines too, in place
            structlog.processors.add_log_level,
            _UtcTimestamp(),
            _json_line,
        ],
        # The level check happens before any event is built: DEBUG lines cost nothing.
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.BytesLoggerFactory(file or sys.stdout.buffer),
        cache_logger_on_first_use=True,  # bind each logger once, not on every line
    )
