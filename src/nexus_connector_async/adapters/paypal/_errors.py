"""PayPal's errors: both 401 shapes parsed, `details[].issue` as the code, `debug_id` kept.

Mapping (vendor-facts 2.5): 401/403 auth; 422 `INSTRUMENT_DECLINED`/`TRANSACTION_REFUSED`
and a DECLINED capture inside a 2xx are declines; 429 rate limit; 409 and 5xx vendor
failures; any other 4xx an invalid request.
"""

from __future__ import annotations

import msgspec

from ..._models import Response
from ..._scrub import Scrubber
from .._errors import (
    AuthenticationFailed,
    PaymentDeclined,
    VendorError,
    VendorRateLimited,
    VendorResponseError,
)
from ._models import ErrorBody, decode_error

__all__ = [
    "PayPalAPIError",
    "PayPalAuthenticationError",
    "PayPalDeclined",
    "PayPalError",
    "PayPalInvalidRequestError",
    "PayPalPayerActionRequired",
    "PayPalPermissionError",
    "PayPalRateLimitError",
    "PayPalResponseError",
    "error_from_response",
]

_DECLINE_ISSUES = frozenset({"INSTRUMENT_DECLINED", "TRANSACTION_REFUSED"})


class PayPalError(VendorError):
    """Any error answer from PayPal.

    `code` is the first `details[].issue` (else `name`, else the OAuth `error`); `issues` lists
    every issue; `name` is PayPal's error name; `request_id` is the `debug_id`.
    """

    name: str | None = None
    issues: tuple[str, ...] = ()


class PayPalDeclined(PayPalError, PaymentDeclined):
    """The payment was declined (422 INSTRUMENT_DECLINED/TRANSACTION_REFUSED, DECLINED capture)."""


class PayPalAuthenticationError(PayPalError, AuthenticationFailed):
    """401: bad client credentials or an unknown/expired token (after one refresh)."""


class PayPalPermissionError(PayPalAuthenticationError):
    """403: the app lacks permission (NOT_AUTHORIZED, PERMISSION_DENIED)."""


class PayPalInvalidRequestError(PayPalError):
    """400/404/415/422: the request cannot be done as sent; see `code` and `issues`."""


class PayPalRateLimitError(PayPalError, VendorRateLimited):
    """429 RATE_LIMIT_REACHED."""


class PayPalAPIError(PayPalError):
    """409 PREVIOUS_REQUEST_IN_PROGRESS, 5xx and unreadable answers."""


class PayPalResponseError(PayPalAPIError, VendorResponseError):
    """A 2xx that could not be read: PayPal may have acted; do not resend blindly."""


class PayPalPayerActionRequired(PayPalInvalidRequestError):
    """422 PAYER_ACTION_REQUIRED: the buyer must act (3-D Secure, approval) at `action_url`.

    Nothing was paid; send the buyer to `action_url` (PayPal's `payer-action` link), then
    capture or authorize the order again.
    """

    action_url: str | None = None


def debug_id(response: Response, body: ErrorBody | None = None) -> str | None:
    """PayPal's trace id: the body's `debug_id`, else the `PayPal-Debug-Id` header."""
    if body is not None and body.debug_id:
        return body.debug_id
    return response.headers.get("PayPal-Debug-Id")


def clean(text: str | None, secrets: Scrubber | tuple[str, ...]) -> str | None:
    """Vendor text with our secrets (in any encoding) and anything token-like masked."""
    if not text:
        return None
    if not isinstance(secrets, Scrubber):
        # A bare access token PayPal echoes is not one we know: mask token-like runs too.
        secrets = Scrubber(secrets, tokenish=True)
    return secrets(text)


def error_from_response(
    response: Response, secrets: Scrubber | tuple[str, ...] = ()
) -> PayPalError:
    """The typed error for a non-2xx PayPal response."""
    try:
        body: ErrorBody | None = decode_error(response.body)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        body = None
    issues = tuple(d.issue for d in (body.details if body else []) if d.issue)
    name = body.name if body else None
    code = issues[0] if issues else (name or (body.error if body else None))
    message = clean((body.message or body.error_description) if body else None, secrets)
    status = response.status
    cls: type[PayPalError]
    if status == 401:
        cls = PayPalAuthenticationError
    elif status == 403:
        cls = PayPalPermissionError
    elif status == 429:
        cls = PayPalRateLimitError
    elif status == 409 or status >= 500:
        cls = PayPalAPIError
    elif status == 422 and _DECLINE_ISSUES.intersection(issues):
        cls = PayPalDeclined
    elif status == 422 and "PAYER_ACTION_REQUIRED" in issues:
        cls = PayPalPayerActionRequired
    elif 400 <= status < 500:
        cls = PayPalInvalidRequestError
    else:
        cls = PayPalAPIError
    request_id = debug_id(response, body)
    exc: PayPalError
    if cls is PayPalDeclined:
        decline = next(i for i in issues if i in _DECLINE_ISSUES)
        exc = PayPalDeclined(
            response,
            vendor="paypal",
            code=code,
            message=message,
            request_id=request_id,
            decline_code=decline,
        )
    else:
        exc = cls(response, vendor="paypal", code=code, message=message, request_id=request_id)
    exc.name = name
    exc.issues = issues
    if isinstance(exc, PayPalPayerActionRequired) and body is not None:
        exc.action_url = next(
            (link.href for link in body.links if link.rel in ("payer-action", "approve")), None
        )
    return exc
