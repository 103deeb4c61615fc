"""Backoff arithmetic and the standard hint that steers it (`Retry-After`).

A vendor's own verdict (a header of its own) comes from its adapter as a
`RetryPolicy.retry_hint`: nothing here knows a vendor.
"""

from __future__ import annotations

import email.utils
import math
import random

from ._config import RetryPolicy

__all__ = ["backoff", "parse_retry_after", "set_testing"]

_testing = False


def set_testing(enabled: bool = True) -> None:
    """Turn backoff sleeps off (0 s) for the tests of apps that use this library."""
    global _testing  # noqa: PLW0603 - a process-wide switch, like stamina.set_testing
    _testing = enabled


def backoff(policy: RetryPolicy, retry_number: int) -> float:
    """Delay before retry `retry_number` (1-based): exponential, capped, with full jitter."""
    if _testing:
        return 0.0
    ceiling = min(policy.max_delay, policy.base_delay * 2.0 ** (retry_number - 1))
    return random.uniform(0.0, ceiling) if policy.jitter else ceiling


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a `Retry-After` value: delta-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - now
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)
