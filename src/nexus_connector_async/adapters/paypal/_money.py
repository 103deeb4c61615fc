"""PayPal's money rules: `{"currency_code", "value"}` objects in the currencies PayPal takes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Final

from ..._errors import InvalidRequest
from .._money import EXACT, Money, require_money, shorten, to_minor

__all__ = ["PAYPAL_CURRENCIES", "from_paypal_amount", "to_paypal_amount"]

#: Currencies PayPal's REST API accepts (vendor-facts 2.6; BRL, CNY and MYR in-country only).
# fmt: off
PAYPAL_CURRENCIES: Final = frozenset({
    "AUD", "BRL", "CAD", "CHF", "CNY", "CZK", "DKK", "EUR", "GBP", "HKD", "HUF", "ILS", "JPY",
    "MXN", "MYR", "NOK", "NZD", "PHP", "PLN", "RUB", "SEK", "SGD", "THB", "TWD", "USD",
})
# fmt: on
_PAYPAL_NO_DECIMALS: Final = frozenset({"HUF", "JPY", "TWD"})
_PAYPAL_VALUE = re.compile(r"(-?[0-9]+)|(-?([0-9]+)?[.][0-9]+)")
_PAYPAL_MAX_LEN: Final = 32


def to_paypal_amount(money: Money) -> dict[str, str]:
    """PayPal's `{"currency_code": "USD", "value": "10.00"}` for `money`, formatted exactly.

    HUF, JPY and TWD take no decimals and every other PayPal currency two; an amount that
    would need rounding, or a currency PayPal does not support, raises `InvalidRequest`.
    """
    code = require_money(money, "amount").currency
    if code not in PAYPAL_CURRENCIES:
        raise InvalidRequest(f"PayPal does not support {code}")
    digits = 0 if code in _PAYPAL_NO_DECIMALS else 2
    minor = to_minor(money, digits, 1, "PayPal")
    value = f"{Decimal(minor).scaleb(-digits, context=EXACT):f}"
    # The amount bounds keep this far below PayPal's 32 characters; the pattern is PayPal's.
    assert len(value) <= _PAYPAL_MAX_LEN
    assert _PAYPAL_VALUE.fullmatch(value)
    return {"currency_code": code, "value": value}


def from_paypal_amount(obj: Mapping[str, str]) -> Money:
    """The `Money` for a PayPal amount object such as `{"currency_code": "USD", "value": "1.5"}`.

    The value must match PayPal's own pattern; any 3-letter currency is accepted (rule 34),
    since this reads what PayPal sent.
    """
    try:
        code, value = obj["currency_code"], obj["value"]
    except (KeyError, TypeError):
        raise InvalidRequest("a PayPal amount needs 'currency_code' and 'value'") from None
    if not isinstance(value, str):
        raise InvalidRequest(f"PayPal amount value must be a str, not {type(value).__name__}")
    if len(value) > _PAYPAL_MAX_LEN or not _PAYPAL_VALUE.fullmatch(value):
        raise InvalidRequest(f"PayPal amount value {shorten(value)} is not a decimal string")
    return Money.from_vendor(value, code)
