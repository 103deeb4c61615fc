"""Stripe's money rules: integer minor units with Stripe's own exponents (vendor-facts 1.9)."""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from ..._errors import InvalidRequest
from .._money import (
    DEFAULT_EXPONENT,
    VENDOR_CODE,
    Money,
    known_exponent,
    require_money,
    shorten,
    to_minor,
)

__all__ = ["from_stripe_minor", "stripe_currency", "to_stripe_minor"]

# Stripe's exceptions to the ISO exponent (vendor-facts 1.9). MGA is ISO two-decimal but
# zero-decimal on Stripe; ISK and UGX are ISO zero-decimal but sent x100 with "00" at the end.
# fmt: off
_STRIPE_ZERO_DECIMAL: Final = frozenset({
    "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "VND", "VUV", "XAF",
    "XOF", "XPF",
})
# fmt: on
_STRIPE_WHOLE_TIMES_100: Final = frozenset({"ISK", "UGX"})
_STRIPE_THREE_DECIMAL_LAST_ZERO: Final = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})


def _stripe_scale(currency: str) -> tuple[int, int]:
    """(decimal digits, required step in those units) for a Stripe `amount` in `currency`."""
    if currency in _STRIPE_ZERO_DECIMAL:
        return 0, 1
    if currency in _STRIPE_WHOLE_TIMES_100:
        return 2, 100
    if currency in _STRIPE_THREE_DECIMAL_LAST_ZERO:
        return 3, 10
    exponent = known_exponent(currency)
    return (DEFAULT_EXPONENT if exponent is None else exponent), 1


def to_stripe_minor(money: Money) -> int:
    """Stripe's integer `amount` for `money`: 10.00 USD -> 1000, 500 JPY -> 500, 5 ISK -> 500.

    Raises `InvalidRequest` when Stripe cannot carry the amount exactly (10.005 USD, 1.5 JPY,
    5.5 ISK, 5.125 KWD) rather than rounding it.
    """
    digits, step = _stripe_scale(require_money(money, "amount").currency)
    return to_minor(money, digits, step, "Stripe")


def from_stripe_minor(amount: int, currency: str) -> Money:
    """The `Money` for a Stripe `amount` and (lower-case) `currency`: 1000, "usd" -> 10.00 USD.

    Lenient on purpose (api.md rule 34): it reads what Stripe sent, so it does not re-check
    Stripe's input rules and takes any 3-letter code (retired BGN or HRK included). Raises
    `InvalidRequest` only for a value that is not an amount at all; adapters turn that into a
    vendor error carrying the response.
    """
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidRequest(f"Stripe amount must be an int, not {type(amount).__name__}")
    if not isinstance(currency, str) or not VENDOR_CODE.fullmatch(currency):
        raise InvalidRequest(f"Stripe currency {shorten(str(currency))} is not a 3-letter code")
    code = currency.upper()
    digits, _ = _stripe_scale(code)
    # Built from the tuple, not by arithmetic: exact for any int, and Money bounds its size.
    sign, coefficient, _ = Decimal(amount).as_tuple()
    return Money.from_vendor(Decimal((sign, coefficient, -digits)), code)


def stripe_currency(money: Money) -> str:
    """Stripe's spelling of the currency: the ISO code in lower case."""
    return require_money(money, "amount").currency.lower()
