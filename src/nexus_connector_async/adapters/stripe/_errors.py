"""Stripe's errors, classified by HTTP status first (vendor-facts 1.6), as stripe-python does.

Each class also subclasses the vendor-neutral type where one exists, so callers can catch
`PaymentDeclined` for any vendor or `StripeCardError` for Stripe only.
"""

from __future__ import annotations

import msgspec

from ..._models import Response
from ..._scrub import Scrubber, scrub_text
from .._errors import (
    AuthenticationFailed,
    PaymentDeclined,
    VendorError,
    VendorRateLimited,
    VendorResponseError,
)
from ._models import ErrorObject, decode_error

__all__ = [
    "StripeAPIError",
    "StripeAuthenticationError",
    "StripeCardError",
    "StripeError",
    "StripeIdempotencyError",
    "StripeInvalidRequestError",
    "StripePermissionError",
    "StripeRateLimitError",
    "StripeResponseError",
    "error_from_response",
]


class StripeError(VendorError):
    """Any error answer from Stripe. `error_type` and `param` are Stripe's `type`/`param`."""

    error_type: str | None = None
    param: str | None = None
    doc_url: str | None = None


class StripeCardError(StripeError, PaymentDeclined):
    """402: the parameters were valid but the payment failed (`code`, `decline_code`).

    `payment_intent_id` and `charge_id` name the objects Stripe attached to the error (the
    PaymentIntent goes back to `requires_payment_method`); `advice_code` and
    `network_decline_code` say whether and how to retry (e.g. `do_not_try_again`).
    """

    payment_intent_id: str | None = None
    payment_intent_status: str | None = None
    charge_id: str | None = None
    advice_code: str | None = None
    network_decline_code: str | None = None


class StripeAuthenticationError(StripeError, AuthenticationFailed):
    """401: missing or invalid API key."""


class StripePermissionError(StripeAuthenticationError):
    """403: the key lacks permission for this request."""


class StripeInvalidRequestError(StripeError):
    """400/404: a missing or invalid parameter, or an unknown object. Fix it; use a new key."""


class StripeIdempotencyError(StripeInvalidRequestError):
    """An idempotency key was reused with different parameters (`type: idempotency_error`)."""


class StripeRateLimitError(StripeError, VendorRateLimited):
    """429 (or a pre-2015 400 with `code: rate_limit`): too many requests."""


class StripeAPIError(StripeError):
    """409 conflicts, 424 upstream failures, 5xx and unreadable answers."""


class StripeResponseError(StripeAPIError, VendorResponseError):
    """A 2xx whose body could not be read: Stripe may have acted; do not resend blindly."""


def _class_for(status: int, error: ErrorObject) -> type[StripeError]:
    # By HTTP status first: a bad key is a 401 whose body says invalid_request_error.
    if status == 402:
        return StripeCardError
    if status == 401:
        return StripeAuthenticationError
    if status == 403:
        return StripePermissionError
    if status == 429 or (status == 400 and error.code == "rate_limit"):
        return StripeRateLimitError
    if status in (400, 404):
        if error.type == "idempotency_error":
            return StripeIdempotencyError
        return StripeInvalidRequestError
    return StripeAPIError


def error_from_response(
    response: Response, secrets: Scrubber | tuple[str, ...] = ()
) -> StripeError:
    """The typed error for a non-2xx Stripe response.

    Stripe's message goes through the shared `Scrubber` of `secrets` (the API key, also in its
    encoded forms), so the error never carries a key even if the vendor echoed one.
    """
    try:
        body = decode_error(response.body)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        body = None
    if body is not None and isinstance(body.error, ErrorObject):
        error = body.error
    elif body is not None and isinstance(body.error, str):  # OAuth-style body
        error = ErrorObject(code=body.error, message=body.error_description)
    else:
        error = ErrorObject()
    cls = _class_for(response.status, error)
    message = scrub_text(error.message, secrets)
    request_id = response.headers.get("Request-Id")
    exc: StripeError
    if issubclass(cls, PaymentDeclined):
        exc = cls(
            response,
            vendor="stripe",
            code=error.code,
            message=message,
            request_id=request_id,
            decline_code=error.decline_code,
        )
    else:
        exc = cls(
            response, vendor="stripe", code=error.code, message=message, request_id=request_id
        )
    exc.error_type = error.type
    exc.param = error.param
    exc.doc_url = error.doc_url
    if isinstance(exc, StripeCardError):
        intent = error.payment_intent
        if isinstance(intent, str):
            exc.payment_intent_id = intent
        elif intent is not None:
            exc.payment_intent_id = intent.id
            exc.payment_intent_status = intent.status
        charge = error.charge
        exc.charge_id = charge if isinstance(charge, str) else (charge.id if charge else None)
        exc.advice_code = error.advice_code
        exc.network_decline_code = error.network_decline_code
    return exc
