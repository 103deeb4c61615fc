"""The bodies of PayPal's Orders v2 / Payments v2 requests, checked before anything is sent."""

from __future__ import annotations

import re
from typing import Any, Final, Literal

from ..._errors import InvalidRequest
from .._money import Money, require_positive
from .._payments import check_id
from .._vendor import check_text
from ._money import to_paypal_amount

__all__ = [
    "ORDER_ID",
    "Intent",
    "SourceType",
    "amount_field",
    "order_body",
    "vaulted_source",
    "wallet_source",
]

Intent = Literal["CAPTURE", "AUTHORIZE"]
SourceType = Literal["card", "paypal", "venmo"]
_SOURCES: Final = frozenset({"card", "paypal", "venmo"})
#: Order ids in the Orders v2 spec: ^[A-Z0-9]+$, at most 36 characters.
ORDER_ID: Final = re.compile(r"[A-Z0-9]{1,36}")


def order_body(amount: Money, intent: str, reference_id: str | None) -> dict[str, Any]:
    """A create-order body: the intent and one purchase unit of `amount`."""
    if not isinstance(intent, str) or intent not in ("CAPTURE", "AUTHORIZE"):
        raise InvalidRequest("intent must be 'CAPTURE' or 'AUTHORIZE'")
    unit: dict[str, Any] = {"amount": to_paypal_amount(require_positive(amount))}
    if reference_id is not None:
        if not check_text(reference_id, "reference_id", 256):
            raise InvalidRequest("reference_id must not be empty")
        unit = {"reference_id": reference_id, **unit}
    return {"intent": intent, "purchase_units": [unit]}


def wallet_source(return_url: str | None, cancel_url: str | None) -> dict[str, Any]:
    """`payment_source` for the PayPal wallet redirect back to `return_url` / `cancel_url`."""
    context = {"return_url": _url(return_url), "cancel_url": _url(cancel_url)}
    context = {k: v for k, v in context.items() if v is not None}
    return {"paypal": {"experience_context": context}}


def vaulted_source(source: str, payment_method: str) -> dict[str, Any]:
    """`payment_source` paying from a vaulted `card`, `paypal` or `venmo` source."""
    if not isinstance(source, str) or source not in _SOURCES:
        raise InvalidRequest(f"source must be one of {sorted(_SOURCES)}")
    vault_id = check_id(payment_method, "payment_method (a PayPal vault id)")
    return {source: {"vault_id": vault_id}}


def amount_field(amount: Money | None, what: str) -> dict[str, Any]:
    """`{"amount": ...}` for a partial capture or refund; `{}` for all of it."""
    if amount is None:
        return {}
    return {"amount": to_paypal_amount(require_positive(amount, what))}


def _url(value: str | None) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.startswith("https://")):
        # PayPal requires https return/cancel URLs for the buyer redirect.
        raise InvalidRequest("return_url and cancel_url must be https:// URLs")
    return value
