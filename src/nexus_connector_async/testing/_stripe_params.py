"""Stripe's parameter rules for `StripeSimulator`: its error shape, amounts, currencies,
booleans and metadata, as Stripe checks them (vendor-facts 1.9)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ._vendor_server import Answer, Answered, SimulatedRequest, new_id, parse_brackets

__all__ = [
    "CAPTURE_PARAMS",
    "CHARGE_CAPTURE_PARAMS",
    "CHARGE_PARAMS",
    "PI_PARAMS",
    "REFUND_PARAMS",
    "Invalid",
    "StripeError",
    "check_allowed",
    "check_amount",
    "check_boolean",
    "check_charge_amount",
    "check_currency",
    "check_metadata",
    "check_request",
    "in_use",
    "mask",
    "parse_form",
]

_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(\.[a-z]+)?")
_INTEGER = re.compile(r"[0-9]+")
_CURRENCY = re.compile(r"[a-z]{3}")
#: Stripe's amount steps in minor units (vendor-facts 1.9): the last digit(s) must be zero.
_STEPS = {
    **dict.fromkeys(("bhd", "jod", "kwd", "omr", "tnd"), 10),
    **dict.fromkeys(("isk", "ugx"), 100),
}
#: Stripe's minimum charge amounts (vendor-facts 1.9): minor units, and as Stripe writes them.
_MINIMUMS = {
    "usd": (50, "$0.50"),
    "eur": (50, "€0.50"),
    "gbp": (30, "£0.30"),
    "jpy": (50, "¥50"),
    "cad": (50, "$0.50"),
    "aud": (50, "$0.50"),
    "huf": (17500, "175.00 Ft"),
    "pln": (200, "2.00 zł"),
}

PI_PARAMS = frozenset(
    {
        "amount",
        "currency",
        "payment_method",
        "confirm",
        "capture_method",
        "automatic_payment_methods",
        "payment_method_types",
        "return_url",
        "description",
        "metadata",
        "off_session",
        "error_on_requires_action",
        "customer",
        "statement_descriptor_suffix",
    }
)
CAPTURE_PARAMS = frozenset({"amount_to_capture", "metadata", "final_capture"})
REFUND_PARAMS = frozenset({"payment_intent", "charge", "amount", "reason", "metadata"})
CHARGE_PARAMS = frozenset(
    {"amount", "currency", "source", "customer", "capture", "description", "metadata"}
)
CHARGE_CAPTURE_PARAMS = frozenset({"amount"})


class StripeError(Answered):
    """An error answer in Stripe's shape (with a fresh `Request-Id`, as Stripe sends)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        error: dict[str, Any] = {"type": type, "message": message}
        optional = {"code": code, "param": param, "decline_code": decline_code}
        error.update({k: v for k, v in optional.items() if v is not None})
        error.update(extra or {})
        super().__init__(Answer(status, {"error": error}, {"Request-Id": new_id("req_", 7)}))


class Invalid(StripeError):
    """A request that fails validation before execution: Stripe does not store it."""


def check_request(request: SimulatedRequest) -> dict[str, Any]:
    """The checks before a request is executed: version, method, form body, idempotency key."""
    version = request.headers.get("Stripe-Version")
    if version is None:
        raise StripeError(400, "This simulator requires a Stripe-Version header on every request.")
    if not _VERSION.fullmatch(version):
        raise StripeError(400, f"Invalid Stripe API version: {version}")
    if request.method == "GET":
        if request.body:
            raise StripeError(400, "GET requests must not have a body.")
        return parse_form(request.query)
    if request.method != "POST":
        raise StripeError(405, f"Unrecognized request URL ({request.method}: {request.path}).")
    content_type = request.headers.get("Content-Type", "")
    if request.body and not content_type.startswith("application/x-www-form-urlencoded"):
        raise StripeError(
            400,
            "Invalid request: the body must be application/x-www-form-urlencoded "
            f"(got {content_type or 'no Content-Type'}).",
        )
    key = request.headers.get("Idempotency-Key")
    if not key:
        raise StripeError(400, "This simulator requires an Idempotency-Key header on every POST.")
    if len(key) > 255:
        raise StripeError(400, "Idempotency keys can be at most 255 characters long.")
    return parse_form(request.body.decode("utf-8", errors="strict"))


def parse_form(text: str) -> dict[str, Any]:
    try:
        return parse_brackets(text)
    except ValueError as exc:
        raise Invalid(400, f"Invalid request: {exc}") from None


def check_allowed(params: Mapping[str, Any], names: frozenset[str]) -> None:
    for name in params:
        if name not in names:
            raise Invalid(400, f"Received unknown parameter: {name}", param=name)


def check_amount(
    params: Mapping[str, Any], name: str, *, required: bool = False, currency: str = "usd"
) -> int:
    value = params.get(name)
    if value is None:
        if required:
            raise Invalid(400, f"Missing required param: {name}.", param=name)
        return 0
    if not isinstance(value, str) or not _INTEGER.fullmatch(value):
        raise Invalid(400, f"Invalid integer: {value}", param=name)
    amount = int(value)
    if amount < 1:
        raise Invalid(400, "Amount must be at least 1.", code="amount_too_small", param=name)
    if amount > 99_999_999:
        raise Invalid(400, "Amount must be no more than 99999999.", param=name)
    step = _STEPS.get(currency, 1)
    if amount % step:
        raise Invalid(
            400,
            f"Invalid {name} for {currency}: the last {len(str(step)) - 1} digit(s) of an"
            f" amount in {currency} must be 0.",
            code="invalid_amount",
            param=name,
        )
    return amount


def check_charge_amount(params: Mapping[str, Any], currency: str) -> int:
    """A charge's `amount`: valid for its currency and at least Stripe's minimum charge."""
    amount = check_amount(params, "amount", required=True, currency=currency)
    minimum, shown = _MINIMUMS.get(currency, (1, ""))
    if amount < minimum:
        raise Invalid(
            400,
            f"Amount must be at least {shown} {currency}",
            code="amount_too_small",
            param="amount",
            extra={"doc_url": "https://stripe.com/docs/error-codes/amount-too-small"},
        )
    return amount


def in_use() -> StripeError:
    """Stripe's answer to a request whose idempotency key is still being processed."""
    return StripeError(
        409,
        "There is currently another in-progress request using this idempotency key (that "
        "probably means you submitted twice, and the other request is still going through)."
        " Please try again later.",
        code="idempotency_key_in_use",
        extra={"doc_url": "https://stripe.com/docs/error-codes/idempotency-key-in-use"},
    )


def check_currency(params: Mapping[str, Any]) -> str:
    value = params.get("currency")
    if value is None:
        raise Invalid(400, "Missing required param: currency.", param="currency")
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value):
        # Stripe documents currencies as lower-case ISO codes; be strict about it.
        raise Invalid(400, f"Invalid currency: {value}. Use a lower-case code.", param="currency")
    return value


def check_boolean(params: Mapping[str, Any], name: str, *, default: bool = False) -> bool:
    value = params.get(name)
    if value is None:
        return default
    if value not in ("true", "false"):
        raise Invalid(400, f"Invalid boolean: {value}", param=name)
    return bool(value == "true")


def check_metadata(params: Mapping[str, Any]) -> dict[str, str]:
    value = params.get("metadata", {})
    if value == "":
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise Invalid(400, "Invalid metadata: must be a hash of strings.", param="metadata")
    # Stripe's metadata limits: 50 keys, keys up to 40 characters, values up to 500.
    if len(value) > 50:
        raise Invalid(400, "Metadata can have up to 50 keys.", param="metadata")
    for key, item in value.items():
        if len(key) > 40 or len(item) > 500:
            raise Invalid(
                400,
                "Metadata keys can be up to 40 characters and values up to 500 characters.",
                param=f"metadata[{key[:40]}]",
            )
    return value


def mask(key: str) -> str:
    return f"{key[:8]}****{key[-4:]}" if len(key) > 12 else "****"
