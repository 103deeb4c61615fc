"""Twilio's form fields in and JSON answers out: URL checks, the Messages form, prices."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Final, TypeVar
from urllib.parse import urlsplit

import msgspec

from ..._errors import InvalidRequest
from ..._models import Response
from .._errors import VendorError
from .._money import Money
from .._sms import PhoneNumberInfo
from ._errors import TWILIO
from ._models import TwilioLookup

__all__ = [
    "check_media",
    "check_status_callback",
    "decode",
    "int_or_none",
    "message_form",
    "number_info",
    "price",
]

_T = TypeVar("_T")

_MAX_MEDIA: Final = 10


def _check_url(what: str, url: object) -> str:
    if not isinstance(url, str) or any(c in url for c in "\r\n\0 "):
        raise InvalidRequest(f"{what} must be a str without spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(f"{what} must be an absolute http(s) URL")
    return url


def check_status_callback(url: object) -> str:
    """`url` if Twilio can call it back with a message's status."""
    checked = _check_url("status_callback", url)
    if "_" in (urlsplit(checked).hostname or ""):
        # Twilio refuses callback hostnames with underscores (vendor-facts 3.2).
        raise InvalidRequest("status_callback hostname must not contain underscores")
    return checked


def check_media(media_urls: Sequence[str]) -> list[str]:
    """The MMS media URLs, at most `_MAX_MEDIA` absolute http(s) ones."""
    if isinstance(media_urls, str):
        raise InvalidRequest("media_urls must be a sequence of URLs, not one str")
    if not isinstance(media_urls, Sequence):
        raise InvalidRequest("media_urls must be a sequence of URLs (a tuple or list)")
    media = [_check_url("media URL", url) for url in media_urls]
    if len(media) > _MAX_MEDIA:
        raise InvalidRequest(f"Twilio takes at most {_MAX_MEDIA} media URLs, got {len(media)}")
    return media


def message_form(
    to: str,
    sender: list[tuple[str, str]],
    body: str,
    media: list[str],
    callback: str | None,
) -> list[tuple[str, str]]:
    """The Messages create form, fields in the order Twilio's SDK sends them."""
    form: list[tuple[str, str]] = [("To", to), *sender]
    if body:
        form.append(("Body", body))
    # One plain `MediaUrl` per URL: Twilio wants the key repeated, never `MediaUrl[0]`.
    form.extend(("MediaUrl", url) for url in media)
    if callback is not None:
        form.append(("StatusCallback", callback))
    return form


def decode(response: Response, decoder: Callable[[bytes], _T]) -> _T:
    """`decoder(response.body)`; a body that is not the expected JSON is a `VendorError`."""
    try:
        return decoder(response.body)
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise VendorError(
            response, vendor=TWILIO, message="response body is not the expected JSON"
        ) from None


def number_info(found: TwilioLookup, number: str) -> PhoneNumberInfo:
    """A Lookup v2 answer with `line_type_intelligence` as a `PhoneNumberInfo`."""
    line = found.line_type_intelligence
    return PhoneNumberInfo(
        number=found.phone_number or number,
        valid=found.valid,
        country_code=found.country_code,
        calling_country_code=found.calling_country_code,
        national_format=found.national_format,
        carrier_name=line.carrier_name if line else None,
        line_type=line.type if line else None,
        mobile_country_code=line.mobile_country_code if line else None,
        mobile_network_code=line.mobile_network_code if line else None,
        validation_errors=tuple(found.validation_errors or ()),
    )


def int_or_none(text: str | None) -> int | None:
    """Twilio's numeric strings (`num_segments`); None when absent or not a number."""
    return int(text) if text is not None and text.isdigit() else None


def price(amount: str | None, unit: str | None) -> Money | None:
    """Twilio's price is a negative string (a charge); we report the cost as positive Money."""
    if not amount or not unit:
        return None
    try:
        return Money.from_vendor(-Decimal(amount), unit)
    except (InvalidRequest, ArithmeticError, ValueError):
        return None
