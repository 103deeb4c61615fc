"""One attempt's outcome, and how an answer or an error is classified into one.

An outcome carries three facts the layers above act on: whether it counts against the circuit
breaker (`failure`), whether another attempt may help (`retryable`), and what the vendor saw
(`vendor`): `UNTOUCHED` (certainly not acted on: resend-safe whatever the call), `ANSWERED`
(its answer decides) or `UNKNOWN` (may have acted, no answer seen). Build one with the named
constructors, so a reader sees the meaning where it is made.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

from .._config import RetryPolicy
from .._errors import ConnectorError, TransportError
from .._models import Credentials, Response
from .._retry import parse_retry_after

__all__ = ["ANSWERED", "UNKNOWN", "UNTOUCHED", "Outcome", "from_error", "from_response"]

# What the vendor saw of one attempt.
UNTOUCHED = 0  # certainly not acted on (nothing sent, or a documented "not processed" answer)
ANSWERED = 1  # the vendor answered: its answer decides
UNKNOWN = 2  # may have reached the vendor, no answer seen (read timeout, reset after sending)

_new = tuple.__new__  # the constructors skip NamedTuple's generated __new__ (hot path)


class Outcome(NamedTuple):
    """One attempt's result as the retry loop sees it."""

    value: Any  # the Response (HTTP) or the factory's result (call)
    error: BaseException | None
    failure: bool  # counts against the circuit breaker
    retryable: bool  # worth another attempt, if sending it again is allowed
    vendor: int  # UNTOUCHED, ANSWERED or UNKNOWN
    retry_after: float | None = None
    reauth: Credentials | None = None  # 401 with these credentials, now refreshed: resend once
    status: int | None = None  # the HTTP status of the answer, if there was one

    @classmethod
    def success(cls, value: Any, status: int | None = None) -> Outcome:
        """The vendor answered and it is final: a 2xx, or the factory's result."""
        return _new(cls, (value, None, False, False, ANSWERED, None, None, status))

    @classmethod
    def rejected_credentials(cls, response: Response, credentials: Credentials) -> Outcome:
        """A 401 for `credentials`, which the provider has since replaced: the auth flow
        resends once. The vendor acted on nothing."""
        return _new(cls, (response, None, False, False, UNTOUCHED, None, credentials, 401))

    @classmethod
    def http_error(
        cls, response: Response, *, retryable: bool, resend_safe: bool, retry_after: float | None
    ) -> Outcome:
        """A non-2xx answer; a 5xx counts against the breaker."""
        status = response.status
        vendor = UNTOUCHED if resend_safe else ANSWERED
        return _new(
            cls, (response, None, status >= 500, retryable, vendor, retry_after, None, status)
        )

    @classmethod
    def retryable_failure(
        cls, error: BaseException, *, vendor: int, retry_after: float | None = None
    ) -> Outcome:
        """A transient failure (timeout, connection, 5xx): counted by the breaker, retryable."""
        return _new(cls, (None, error, True, True, vendor, retry_after, None, None))

    @classmethod
    def throttled(cls, error: BaseException, *, retry_after: float | None) -> Outcome:
        """The vendor refused for now and acted on nothing: retried, not counted."""
        return _new(cls, (None, error, False, True, UNTOUCHED, retry_after, None, None))

    @classmethod
    def final_error(
        cls, error: BaseException, *, vendor: int, retry_after: float | None = None
    ) -> Outcome:
        """An error that another attempt would not fix (a rejection, bad input)."""
        return _new(cls, (None, error, False, False, vendor, retry_after, None, None))


def from_response(response: Response, policy: RetryPolicy) -> Outcome:
    """Classify an HTTP answer; the policy's `retry_hint` (the vendor's own verdict, when its
    adapter gave one) overrides its retry statuses."""
    status = response.status
    if status < 300:
        return Outcome.success(response, status)
    headers = response.headers
    hint = policy.retry_hint
    verdict = None if hint is None else hint(response)
    retry_after = None
    if status in (429, 503) or "Retry-After" in headers:
        retry_after = parse_retry_after(headers.get("Retry-After"), time.time())
    return Outcome.http_error(
        response,
        retryable=verdict if verdict is not None else status in policy.retry_statuses,
        resend_safe=status in policy.always_safe_statuses,  # documented "not processed"
        retry_after=retry_after,
    )


def from_error(exc: ConnectorError, *, ran: bool = True) -> Outcome:
    """Classify an error raised by a guarded call (`ran`: its factory was called at all).

    Throttled: not acted on, retried after `retry_after`, not counted. Transient: counted and
    retryable; the vendor may have acted if the request was sent and no answer came (a
    `TransportError`), else it answered (a 5xx). Otherwise final.
    """
    if exc.throttled:
        return Outcome.throttled(exc, retry_after=exc.retry_after)
    if exc.sent is False or not ran:  # `not ran`: no slot came free, nothing was called
        vendor = UNTOUCHED
    elif isinstance(exc, TransportError):
        vendor = UNKNOWN  # sent, no answer: the vendor may have acted on it
    else:
        vendor = ANSWERED  # the vendor's own error (a rejection, a 5xx)
    if exc.transient:
        return Outcome.retryable_failure(exc, vendor=vendor, retry_after=exc.retry_after)
    return Outcome.final_error(exc, vendor=vendor, retry_after=exc.retry_after)


def from_transport_error(exc: ConnectorError) -> Outcome:
    """Classify an error the HTTP transport raised: transient ones may have reached the vendor.

    A non-transient error (bad input caught on the way out) acted on nothing.
    """
    if exc.transient:
        return Outcome.retryable_failure(exc, vendor=UNTOUCHED if exc.sent is False else UNKNOWN)
    return Outcome.final_error(exc, vendor=UNTOUCHED)
