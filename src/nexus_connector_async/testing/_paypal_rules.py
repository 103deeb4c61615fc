"""PayPal's rules for `PayPalSimulator`: its error shape, amounts and currencies (vendor-facts
2.6), `Prefer`, and the vault ids that drive outcomes."""

from __future__ import annotations

import re
import secrets
from decimal import Decimal
from typing import Any

from ._vendor_server import Answer, Answered, SimulatedRequest

__all__ = [
    "OAuthError",
    "PayPalError",
    "check_amount",
    "error_body",
    "find_vault_id",
    "fmt_value",
    "json_object",
    "paypal_id",
    "prefer",
    "public",
]

_NO_DECIMALS = frozenset({"HUF", "JPY", "TWD"})
_VALUE = re.compile(r"(-?[0-9]+)|(-?([0-9]+)?[.][0-9]+)")
_CURRENCY = re.compile(r"[A-Z]{3}")
#: PayPal's REST currency list (vendor-facts 2.6); BRL, CNY and MYR are in-country only.
_CURRENCIES = frozenset(
    {
        *("AUD", "BRL", "CAD", "CHF", "CNY", "CZK", "DKK", "EUR", "GBP", "HKD", "HUF", "ILS"),
        *("JPY", "MXN", "MYR", "NOK", "NZD", "PHP", "PLN", "RUB", "SEK", "SGD", "THB", "TWD"),
        "USD",
    }
)
_MAX_VALUE = Decimal("999999999999999.99")
_NAMES = {
    400: (
        "INVALID_REQUEST",
        "Request is not well-formed, syntactically incorrect, or violates schema.",
    ),
    401: (
        "AUTHENTICATION_FAILURE",
        "Authentication failed due to invalid authentication credentials.",
    ),
    403: ("NOT_AUTHORIZED", "Authorization failed due to insufficient permissions."),
    404: ("RESOURCE_NOT_FOUND", "The specified resource does not exist."),
    409: ("RESOURCE_CONFLICT", "The server has detected a conflict while processing this request."),
    415: (
        "UNSUPPORTED_MEDIA_TYPE",
        "The server does not support the request payload's media type.",
    ),
    422: (
        "UNPROCESSABLE_ENTITY",
        "The requested action could not be performed, semantically incorrect, or failed "
        "business validation.",
    ),
    429: ("RATE_LIMIT_REACHED", "Too many requests. Blocked due to rate limiting."),
    500: ("INTERNAL_SERVER_ERROR", "An internal server error has occurred."),
    503: ("SERVICE_UNAVAILABLE", "Service Unavailable."),
}


def paypal_id(size: int = 17) -> str:
    alphabet = "ABCDEFGHJKLMNPRSTUVWXY0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(size))


class PayPalError(Answered):
    """An error answer in PayPal's standard shape, with its `PayPal-Debug-Id`."""

    def __init__(
        self,
        status: int,
        issue: str | None = None,
        description: str = "",
        field: str | None = None,
        links: list[dict[str, str]] | None = None,
    ) -> None:
        body = error_body(status, issue, description, field, links)
        super().__init__(Answer(status, body, {"PayPal-Debug-Id": body["debug_id"]}))


def error_body(
    status: int,
    issue: str | None,
    description: str = "",
    field: str | None = None,
    links: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """PayPal's standard error body for `status` with one `details` entry (and `links`)."""
    name, message = _NAMES.get(status, ("UNKNOWN_ERROR", "An unknown error occurred."))
    body: dict[str, Any] = {"name": name, "message": message, "debug_id": secrets.token_hex(6)}
    if issue is not None:
        detail: dict[str, Any] = {"issue": issue, "description": description or issue}
        if field is not None:
            detail["field"] = field
            detail["location"] = "body"
        body["details"] = [detail]
    if links:
        body["links"] = links
    return body


class OAuthError(Answered):
    """401 in the OAuth shape, as PayPal answers an unknown or expired token."""

    def __init__(self) -> None:
        body = {"error": "invalid_token", "error_description": "Access Token not found in cache"}
        super().__init__(Answer(401, body, {"PayPal-Debug-Id": secrets.token_hex(6)}))


def prefer(request: SimulatedRequest, status: int, payload: Any) -> Any:
    """The body `Prefer` asks for: PayPal's default `return=minimal` keeps id, status, links."""
    if request.method != "POST" or not 200 <= status < 300 or not isinstance(payload, dict):
        return payload
    prefer = request.headers.get("Prefer", "return=minimal").replace(" ", "")
    if "return=representation" in prefer.split(","):
        return payload
    return {k: payload[k] for k in ("id", "status", "links") if k in payload}


def public(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if not isinstance(v, Decimal)}


def json_object(body: Any) -> dict[str, Any]:
    if body is None:
        raise PayPalError(
            400, "MALFORMED_REQUEST_JSON", "A JSON object body is required (send {})."
        )
    if not isinstance(body, dict):
        raise PayPalError(400, "MALFORMED_REQUEST_JSON")
    return body


def find_vault_id(source: dict[str, Any]) -> str | None:
    for kind in ("card", "paypal", "venmo"):
        entry = source.get(kind)
        if isinstance(entry, dict) and isinstance(entry.get("vault_id"), str):
            return str(entry["vault_id"])
    return None


def fmt_value(value: Decimal, currency: str) -> str:
    return f"{value:.0f}" if currency in _NO_DECIMALS else f"{value:.2f}"


def check_amount(obj: Any, field: str) -> dict[str, str]:
    if not isinstance(obj, dict):
        raise PayPalError(400, "MISSING_REQUIRED_PARAMETER", field=field)
    code, value = obj.get("currency_code"), obj.get("value")
    if not isinstance(code, str) or not _CURRENCY.fullmatch(code):
        raise PayPalError(
            422,
            "INVALID_CURRENCY_CODE",
            "Currency code must be 3 upper-case letters.",
            f"{field}/currency_code",
        )
    if code not in _CURRENCIES:
        raise PayPalError(
            422,
            "CURRENCY_NOT_SUPPORTED",
            f"Currency code {code} is not currently supported.",
            f"{field}/currency_code",
        )
    if not isinstance(value, str) or len(value) > 32 or not _VALUE.fullmatch(value):
        raise PayPalError(
            400, "INVALID_PARAMETER_SYNTAX", "value must be a decimal string.", f"{field}/value"
        )
    decimals = len(value.partition(".")[2])
    if code in _NO_DECIMALS and "." in value:
        raise PayPalError(
            422, "DECIMALS_NOT_SUPPORTED", f"{code} does not support decimals.", f"{field}/value"
        )
    if decimals > 2:
        raise PayPalError(422, "DECIMAL_PRECISION", "At most two decimal places.", f"{field}/value")
    if Decimal(value) <= 0:
        raise PayPalError(422, "CANNOT_BE_ZERO_OR_NEGATIVE", field=f"{field}/value")
    if Decimal(value) > _MAX_VALUE:
        raise PayPalError(
            422, "MAX_VALUE_EXCEEDED", "Value exceeds 999999999999999.99.", f"{field}/value"
        )
    return {"currency_code": code, "value": value}
