"""Twilio's JSON replies, decoded into small Structs holding only the fields we use.

Twilio answers in snake_case; `num_segments`, `price` and `balance` are strings, `price` is
negative (a charge) and null at creation.
"""

from __future__ import annotations

import msgspec

__all__ = [
    "TwilioBalance",
    "TwilioErrorBody",
    "TwilioLineType",
    "TwilioLookup",
    "TwilioMessage",
    "decode_balance",
    "decode_error",
    "decode_lookup",
    "decode_message",
]


class TwilioMessage(msgspec.Struct):
    """The Message resource returned by Messages create (HTTP 201)."""

    sid: str
    status: str
    to: str | None = None
    num_segments: str | None = None
    price: str | None = None
    price_unit: str | None = None
    error_code: int | None = None
    error_message: str | None = None


class TwilioBalance(msgspec.Struct):
    """`GET .../Balance.json`: a string balance (null for subaccounts) and its currency."""

    balance: str | None = None
    currency: str | None = None


class TwilioLineType(msgspec.Struct):
    """Lookup v2 `line_type_intelligence` package."""

    carrier_name: str | None = None
    type: str | None = None
    mobile_country_code: str | None = None
    mobile_network_code: str | None = None
    error_code: int | None = None


class TwilioLookup(msgspec.Struct):
    """Lookup v2 `GET /v2/PhoneNumbers/{PhoneNumber}`."""

    valid: bool = False
    phone_number: str | None = None
    country_code: str | None = None
    calling_country_code: str | None = None
    national_format: str | None = None
    validation_errors: list[str] | None = None
    line_type_intelligence: TwilioLineType | None = None


class TwilioErrorBody(msgspec.Struct):
    """A legacy REST error (`code`, `message`, `more_info`, `status`) or RFC 9457 problem."""

    code: int | None = None
    message: str | None = None
    more_info: str | None = None
    title: str | None = None
    detail: str | None = None


decode_message = msgspec.json.Decoder(TwilioMessage).decode
decode_balance = msgspec.json.Decoder(TwilioBalance).decode
decode_lookup = msgspec.json.Decoder(TwilioLookup).decode
decode_error = msgspec.json.Decoder(TwilioErrorBody).decode
