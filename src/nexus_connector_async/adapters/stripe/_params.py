"""The form parameters of Stripe's requests, checked before anything is sent."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ..._errors import InvalidRequest
from .._money import Money, require_positive
from .._payments import luhn_like
from .._vendor import check_text
from ._money import stripe_currency, to_stripe_minor

__all__ = [
    "add_notes",
    "amount_params",
    "check_metadata",
    "check_url",
    "minor_units",
    "optional",
]

_METADATA_KEYS: Final = 50
_METADATA_KEY_LEN: Final = 40
_METADATA_VALUE_LEN: Final = 500


def minor_units(amount: Money, what: str) -> int:
    """A positive `amount` in Stripe's minor units."""
    return to_stripe_minor(require_positive(amount, what))


def amount_params(amount: Money) -> dict[str, Any]:
    """`amount` and `currency` of a new PaymentIntent or Charge."""
    return {"amount": minor_units(amount, "amount"), "currency": stripe_currency(amount)}


def optional(params: dict[str, Any], name: str, value: object) -> None:
    """Set `params[name]` unless `value` is None (Stripe then keeps its default)."""
    if value is not None:
        params[name] = value


def add_notes(
    params: dict[str, Any], description: str | None, metadata: Mapping[str, str] | None
) -> None:
    """The optional `description` and `metadata` of a PaymentIntent or Charge, checked."""
    optional(params, "description", check_text(description, "description", 1000))
    optional(params, "metadata", check_metadata(metadata))


def check_url(value: object, what: str) -> str:
    """`value` if it is an http(s) URL."""
    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
        raise InvalidRequest(f"{what} must be an http(s) URL")
    return value


def check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str] | None:
    """Stripe's metadata limits, and no card-number-like values (Stripe forbids storing them)."""
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping) or len(metadata) > _METADATA_KEYS:
        raise InvalidRequest(f"metadata must be a mapping of at most {_METADATA_KEYS} entries")
    out: dict[str, str] = {}
    for key, value in metadata.items():
        if (
            not isinstance(key, str)
            or not 1 <= len(key) <= _METADATA_KEY_LEN
            or any(c in key for c in "[]")
        ):
            raise InvalidRequest(
                f"metadata keys must be str of 1-{_METADATA_KEY_LEN} characters without brackets"
            )
        if not isinstance(value, str) or len(value) > _METADATA_VALUE_LEN:
            raise InvalidRequest(
                f"metadata values must be str of at most {_METADATA_VALUE_LEN} characters"
            )
        if luhn_like(value) or luhn_like(key):
            # Named by position only: the message must not carry the number itself.
            raise InvalidRequest("metadata must not contain card numbers")
        out[key] = value
    return out
