"""Twilio error replies mapped to typed errors (vendor-facts 3.5).

Messages are built from Twilio's own code and text, never from our request (which holds the
Authorization header).
"""

from __future__ import annotations

import time
from typing import Any, Final

import msgspec

from ..._models import Response
from ..._retry import parse_retry_after
from ..._scrub import Scrubber, scrub_text
from .._errors import (
    AuthenticationFailed,
    OptedOut,
    RegionNotPermitted,
    VendorError,
    VendorRateLimited,
)
from .._sms import PhoneNumberRejected
from ._models import decode_error

__all__ = ["TWILIO", "TwilioError", "TwilioThrottled", "error_from_response"]

TWILIO: Final = "twilio"

_INVALID_TO: Final = 21211
_NOT_MOBILE: Final = 21614
_OPTED_OUT: Final = 21610
_GEO_PERMISSION: Final = 21408
_AUTH: Final = 20003
_TOO_MANY: Final = 20429


_NO_SECRETS: Final = Scrubber(())


class TwilioError(VendorError):
    """Any other Twilio error; `code` is Twilio's numeric code as a string (e.g. "21606")."""


class TwilioThrottled(VendorRateLimited):
    """429 / 20429: too many concurrent requests; Twilio did not process the message."""

    throttled = True

    def __init__(self, response: Response, **kw: Any) -> None:
        super().__init__(response, **kw)
        #: Seconds from `Retry-After`, when Twilio sent one.
        self.retry_after = parse_retry_after(response.headers.get("Retry-After"), time.time())


def error_from_response(response: Response, scrub: Scrubber | None = None) -> VendorError:
    """The typed error for a non-2xx Twilio response; its text goes through `scrub`.

    Twilio's error text can echo the request (the `Basic` header, the auth token): `scrub` is
    the adapter's shared `Scrubber` of its secrets.
    """
    code: int | None = None
    text: str | None = None
    try:
        body = decode_error(response.body)
    except (msgspec.DecodeError, UnicodeDecodeError):
        pass
    else:
        code = body.code
        text = scrub_text(body.message or body.detail or body.title, scrub or _NO_SECRETS)
    code_text = None if code is None else str(code)
    request_id = response.headers.get("Twilio-Request-Id")

    def make(cls: type[VendorError], **extra: str) -> VendorError:
        return cls(
            response,
            vendor=TWILIO,
            code=code_text,
            message=text,
            request_id=request_id,
            **extra,
        )

    status = response.status
    if code == _AUTH or status == 401:
        return make(AuthenticationFailed)
    if code == _TOO_MANY or status == 429:
        return make(TwilioThrottled)
    if code == _INVALID_TO:
        return make(PhoneNumberRejected, reason="invalid")
    if code == _NOT_MOBILE:
        return make(PhoneNumberRejected, reason="not_mobile")
    if code == _OPTED_OUT:
        return make(OptedOut)
    if code == _GEO_PERMISSION:
        return make(RegionNotPermitted)
    return make(TwilioError)
