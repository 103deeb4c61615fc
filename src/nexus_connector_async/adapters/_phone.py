"""Phone numbers and SMS bodies: strict E.164 checks and segment counting.

Numbers are checked, never rewritten: guessing a country for "0412..." or stripping spaces
would send a message to someone else, so anything but `+` and 2 to 15 digits is refused.
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec

from .._errors import InvalidRequest
from ._errors import InvalidPhoneNumber

__all__ = ["SmsSegments", "count_segments", "validate_e164", "validate_sms_body"]

_E164_MIN_DIGITS: Final = 2
_E164_MAX_DIGITS: Final = 15

# GSM 03.38 default alphabet (ESC at 0x1B left out: it is not a character anyone types) and
# its extension table, whose characters are sent as ESC + char and so take two septets.
_GSM_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION: Final = frozenset("\f^{}\\[~]|€")

# (single-segment limit, per-part limit once concatenated): the UDH takes the difference.
_GSM_LIMITS: Final = (160, 153)
_UCS2_LIMITS: Final = (70, 67)


def _shorten(text: str, limit: int = 20) -> str:
    """`repr` of user input, cut so an error message never carries a huge payload."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def validate_e164(number: str) -> str:
    """Return `number` unchanged if it is E.164 (`+`, then 2 to 15 digits, the first not 0).

    Anything else raises `InvalidPhoneNumber` whose `reason` is one of "not_a_string",
    "empty", "not_e164", "bad_country_code", "too_short" or "too_long".
    """
    if not isinstance(number, str):
        raise InvalidPhoneNumber(
            f"phone number must be a str, not {type(number).__name__}", reason="not_a_string"
        )
    if not number:
        raise InvalidPhoneNumber("phone number is empty", reason="empty")
    shown = _shorten(number)
    if not number.startswith("+"):
        raise InvalidPhoneNumber(
            f"phone number {shown} must start with '+' and the country code (E.164, e.g."
            " +14155552671); national formats and 00/011 prefixes are not converted",
            reason="not_e164",
        )
    digits = number[1:]
    if digits and not (digits.isascii() and digits.isdigit()):
        raise InvalidPhoneNumber(
            f"phone number {shown} may contain only digits after '+'"
            " (no spaces, dashes, dots or brackets)",
            reason="not_e164",
        )
    if digits.startswith("0"):
        raise InvalidPhoneNumber(
            f"phone number {shown} has a country code starting with 0", reason="bad_country_code"
        )
    if len(digits) < _E164_MIN_DIGITS:
        raise InvalidPhoneNumber(
            f"phone number {shown} has {len(digits)} digits; E.164 needs {_E164_MIN_DIGITS}"
            f" to {_E164_MAX_DIGITS}",
            reason="too_short",
        )
    if len(digits) > _E164_MAX_DIGITS:
        raise InvalidPhoneNumber(
            f"phone number {shown} has {len(digits)} digits; E.164 allows at most"
            f" {_E164_MAX_DIGITS}",
            reason="too_long",
        )
    return number


class SmsSegments(msgspec.Struct, frozen=True):
    """How an SMS body is sent: its encoding, its length in that encoding, and the part count.

    `units` are GSM-7 septets (extension characters count 2) or UTF-16 code units for UCS-2
    (an emoji counts 2); vendors bill per segment.
    """

    encoding: Literal["GSM-7", "UCS-2"]
    units: int
    segments: int


def _parts(widths: list[int], single: int, per_part: int) -> int:
    """Parts needed when no character (escape sequence, surrogate pair) is split between two."""
    total = sum(widths)
    if total == 0:
        return 0
    if total <= single:
        return 1
    parts, used = 1, 0
    for width in widths:
        if used + width > per_part:
            parts, used = parts + 1, 0
        used += width
    return parts


def count_segments(body: str) -> SmsSegments:
    """Count the segments `body` is sent as: GSM-7 when every character allows it, else UCS-2.

    GSM-7 fits 160 septets in one SMS or 153 per part; UCS-2 fits 70 code units or 67 per part.
    An empty body is 0 segments.
    """
    if not isinstance(body, str):
        raise InvalidRequest(f"SMS body must be a str, not {type(body).__name__}")
    if all(ch in _GSM_BASIC or ch in _GSM_EXTENSION for ch in body):
        widths = [2 if ch in _GSM_EXTENSION else 1 for ch in body]
        return SmsSegments("GSM-7", sum(widths), _parts(widths, *_GSM_LIMITS))
    # Characters outside the BMP are a surrogate pair in UTF-16; counting per code point (not
    # by encoding) also copes with lone surrogates, which a Python str may hold.
    widths = [2 if ord(ch) > 0xFFFF else 1 for ch in body]
    return SmsSegments("UCS-2", sum(widths), _parts(widths, *_UCS2_LIMITS))


def validate_sms_body(body: str, *, max_chars: int = 1600) -> str:
    """Return `body` unchanged if it is sendable text of at most `max_chars` characters.

    Refuses (with `InvalidRequest`) a non-str, an empty or whitespace-only body, a NUL
    character (vendors truncate or reject at it) and anything longer than `max_chars`, which
    defaults to the 1,600 characters Twilio and SNS accept.
    """
    if not isinstance(body, str):
        raise InvalidRequest(f"SMS body must be a str, not {type(body).__name__}")
    if not body:
        raise InvalidRequest("SMS body is empty")
    if body.isspace():
        raise InvalidRequest("SMS body is only whitespace")
    if "\x00" in body:
        raise InvalidRequest(f"SMS body contains a NUL character at position {body.index(chr(0))}")
    if len(body) > max_chars:
        raise InvalidRequest(f"SMS body has {len(body)} characters; the limit is {max_chars}")
    return body
