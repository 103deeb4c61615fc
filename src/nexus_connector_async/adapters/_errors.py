"""Typed errors the vendor adapters add on top of the connector's hierarchy."""

from __future__ import annotations

from typing import Required, TypedDict, Unpack

from .._errors import ConnectorError, HttpStatusError, InvalidRequest
from .._models import Response

__all__ = [
    "AuthenticationFailed",
    "InvalidPhoneNumber",
    "OptedOut",
    "PaymentDeclined",
    "RegionNotPermitted",
    "SpendLimitExceeded",
    "VendorError",
    "VendorFields",
    "VendorRateLimited",
    "VendorResponseError",
]


class VendorError(HttpStatusError):
    """A vendor answered with an error; carries its code, message and request id.

    `message` is the vendor's own description (never contains our secrets); `request_id` is what
    the vendor's support asks for (Stripe `Request-Id`, PayPal `debug_id`, Twilio error code...).
    """

    def __init__(
        self,
        response: Response,
        *,
        vendor: str,
        code: str | None = None,
        message: str | None = None,
        request_id: str | None = None,
    ) -> None:
        text = f"{vendor} error (HTTP {response.status})"
        if code:
            text += f" {code}"
        if message:
            text += f": {message}"
        super().__init__(response, text)
        self.vendor = vendor
        self.code = code
        self.vendor_message = message
        self.request_id = request_id


class VendorFields(TypedDict, total=False):
    """`VendorError`'s keyword arguments, taken whole by the subclasses that add their own."""

    vendor: Required[str]
    code: str | None
    message: str | None
    request_id: str | None


class VendorResponseError(VendorError):
    """The vendor answered 2xx but the answer could not be read (api.md rule 34).

    The operation may well have happened (a refund made, a charge taken), so this is never an
    `InvalidRequest` and must not be resent blindly: reconcile with the vendor first.
    `response` holds the raw answer (status, headers, body) for that.
    """


class PaymentDeclined(VendorError):
    """The payment was declined (Stripe 402 card_error, PayPal INSTRUMENT_DECLINED/DECLINED)."""

    def __init__(
        self, response: Response, *, decline_code: str | None = None, **fields: Unpack[VendorFields]
    ) -> None:
        super().__init__(response, **fields)
        self.decline_code = decline_code

    def __str__(self) -> str:
        text = super().__str__()
        code = self.decline_code
        # Only a plain code: the field comes from the vendor and ends up in logs.
        if code and len(code) <= 64 and code.replace("_", "").isalnum() and code.isascii():
            return f"{text} (decline code {code})"
        return text


class AuthenticationFailed(VendorError):
    """The vendor rejected our credentials or their permissions (401/403)."""


class VendorRateLimited(VendorError):
    """The vendor throttled the call (429, Twilio 20429, PayPal RATE_LIMIT_REACHED...)."""


class OptedOut(VendorError):
    """The recipient has opted out of messages from this sender (Twilio 21610, SNS OptedOut)."""


class RegionNotPermitted(VendorError):
    """The destination's country or region is not enabled for this account (Twilio 21408)."""


class InvalidPhoneNumber(InvalidRequest):
    """A phone number is not E.164 (or the vendor says it cannot receive SMS)."""

    def __init__(self, message: str, *, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


class SpendLimitExceeded(ConnectorError):
    """Sending would exceed the configured monthly SMS spend limit; nothing was sent."""
