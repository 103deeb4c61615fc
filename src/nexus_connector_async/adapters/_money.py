"""Exact money amounts: the shared `Money` type, ISO 4217 tables and the exact conversions.

Each vendor's own encoding lives in its folder (`stripe/_money.py`: minor units;
`paypal/_money.py`: value strings), built on `to_minor` and `known_exponent` here.

Amounts are `Decimal`s end to end: floats are refused at the door, and a conversion that
would need rounding raises `InvalidRequest` instead of charging a slightly different amount.
"""

from __future__ import annotations

import decimal
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from .._errors import InvalidRequest

__all__ = [
    "DEFAULT_EXPONENT",
    "EXACT",
    "ISO_4217_EXPONENTS",
    "RETIRED_EXPONENTS",
    "VENDOR_CODE",
    "Money",
    "known_exponent",
    "require_money",
    "require_non_negative",
    "require_positive",
    "shorten",
    "to_minor",
]

#: Active ISO 4217 codes (list one, as amended up to 2026: XAD, XCG and ZWG in; ANG, BGN, CUC,
#: HRK, SLL and ZWL out) mapped to their minor-unit exponent. `None` is ISO's "N.A.": metals,
#: bond-market and accounting units, XTS and XXX. Those are listed so the table is complete, but
#: `Money` refuses them: nothing here charges or refunds an ounce of gold.
# fmt: off
ISO_4217_EXPONENTS: Final[Mapping[str, int | None]] = {
    "AED": 2, "AFN": 2, "ALL": 2, "AMD": 2, "AOA": 2, "ARS": 2, "AUD": 2, "AWG": 2, "AZN": 2,
    "BAM": 2, "BBD": 2, "BDT": 2, "BHD": 3, "BIF": 0, "BMD": 2, "BND": 2, "BOB": 2, "BOV": 2,
    "BRL": 2, "BSD": 2, "BTN": 2, "BWP": 2, "BYN": 2, "BZD": 2,
    "CAD": 2, "CDF": 2, "CHE": 2, "CHF": 2, "CHW": 2, "CLF": 4, "CLP": 0, "CNY": 2, "COP": 2,
    "COU": 2, "CRC": 2, "CUP": 2, "CVE": 2, "CZK": 2,
    "DJF": 0, "DKK": 2, "DOP": 2, "DZD": 2,
    "EGP": 2, "ERN": 2, "ETB": 2, "EUR": 2,
    "FJD": 2, "FKP": 2,
    "GBP": 2, "GEL": 2, "GHS": 2, "GIP": 2, "GMD": 2, "GNF": 0, "GTQ": 2, "GYD": 2,
    "HKD": 2, "HNL": 2, "HTG": 2, "HUF": 2,
    "IDR": 2, "ILS": 2, "INR": 2, "IQD": 3, "IRR": 2, "ISK": 0,
    "JMD": 2, "JOD": 3, "JPY": 0,
    "KES": 2, "KGS": 2, "KHR": 2, "KMF": 0, "KPW": 2, "KRW": 0, "KWD": 3, "KYD": 2, "KZT": 2,
    "LAK": 2, "LBP": 2, "LKR": 2, "LRD": 2, "LSL": 2, "LYD": 3,
    "MAD": 2, "MDL": 2, "MGA": 2, "MKD": 2, "MMK": 2, "MNT": 2, "MOP": 2, "MRU": 2, "MUR": 2,
    "MVR": 2, "MWK": 2, "MXN": 2, "MXV": 2, "MYR": 2, "MZN": 2,
    "NAD": 2, "NGN": 2, "NIO": 2, "NOK": 2, "NPR": 2, "NZD": 2,
    "OMR": 3,
    "PAB": 2, "PEN": 2, "PGK": 2, "PHP": 2, "PKR": 2, "PLN": 2, "PYG": 0,
    "QAR": 2,
    "RON": 2, "RSD": 2, "RUB": 2, "RWF": 0,
    "SAR": 2, "SBD": 2, "SCR": 2, "SDG": 2, "SEK": 2, "SGD": 2, "SHP": 2, "SLE": 2, "SOS": 2,
    "SRD": 2, "SSP": 2, "STN": 2, "SVC": 2, "SYP": 2, "SZL": 2,
    "THB": 2, "TJS": 2, "TMT": 2, "TND": 3, "TOP": 2, "TRY": 2, "TTD": 2, "TWD": 2, "TZS": 2,
    "UAH": 2, "UGX": 0, "USD": 2, "USN": 2, "UYI": 0, "UYU": 2, "UYW": 4, "UZS": 2,
    "VED": 2, "VES": 2, "VND": 0, "VUV": 0,
    "WST": 2,
    "XAD": 2, "XAF": 0, "XAG": None, "XAU": None, "XBA": None, "XBB": None, "XBC": None,
    "XBD": None, "XCD": 2, "XCG": 2, "XDR": None, "XOF": 0, "XPD": None, "XPF": 0, "XPT": None,
    "XSU": None, "XTS": None, "XUA": None, "XXX": None,
    "YER": 2,
    "ZAR": 2, "ZMW": 2, "ZWG": 2,
}

#: Codes withdrawn from ISO 4217 that vendors still report for older payments (BGN and HRK
#: after the euro, ANG after XCG...), with the exponent they had. Only read-back uses them.
RETIRED_EXPONENTS: Final[Mapping[str, int]] = {
    "ANG": 2, "BGN": 2, "CUC": 2, "HRK": 2, "SLL": 2, "ZWL": 2,
}
# fmt: on
VENDOR_CODE = re.compile(r"[A-Za-z]{3}")
#: The exponent assumed for a code we do not know at all (Stripe's and ISO's usual two).
DEFAULT_EXPONENT: Final = 2


# Plain decimal notation only: no exponent, spaces, underscores or non-ASCII digits, which
# Decimal() would otherwise accept ("1_000", " 5 ", "1e3", Arabic-Indic digits).
_AMOUNT_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_NOT_FINITE: Final = frozenset({"nan", "snan", "inf", "infinity"})
# Bounds keep every conversion exact under EXACT's precision and stop "1e999999"-style input
# from turning into a million-digit integer.
_MAX_INT_DIGITS: Final = 24
_MAX_FRACTION_DIGITS: Final = 24
_ONE: Final = Decimal(1)
EXACT: Final = decimal.Context(
    prec=_MAX_INT_DIGITS + _MAX_FRACTION_DIGITS + 8,
    traps=[decimal.Inexact, decimal.Rounded, decimal.InvalidOperation],
)


def shorten(text: str, limit: int = 40) -> str:
    """`repr` of user input, cut so an error message never carries a huge payload."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _parse_amount(amount: object) -> Decimal:
    # bool is an int subclass and a float is already inexact: both are refused outright.
    if isinstance(amount, bool) or not isinstance(amount, Decimal | str | int):
        hint = " (floats cannot hold money exactly)" if isinstance(amount, float) else ""
        raise InvalidRequest(
            f"amount must be a Decimal, str or int, not {type(amount).__name__}{hint}"
        )
    if isinstance(amount, str) and not _AMOUNT_TEXT.fullmatch(amount):
        if amount.strip().lstrip("+-").lower() in _NOT_FINITE:
            raise InvalidRequest(f"amount must be a finite number, got {shorten(amount)}")
        raise InvalidRequest(
            f"amount {shorten(amount)} is not a plain decimal number"
            " (ASCII digits, an optional sign and decimal point; no spaces or exponent)"
        )
    value = Decimal(amount)
    if not value.is_finite():
        raise InvalidRequest(f"amount must be a finite number, got {value}")
    if value and value.adjusted() >= _MAX_INT_DIGITS:
        raise InvalidRequest(f"amount is too large (more than {_MAX_INT_DIGITS} integer digits)")
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # a finite Decimal always has an integer exponent
    if exponent < -_MAX_FRACTION_DIGITS:
        raise InvalidRequest(f"amount has more than {_MAX_FRACTION_DIGITS} decimal places")
    if exponent > 0:  # Decimal("1E+3") from arithmetic: keep it as the plain integer 1000
        value = value.quantize(_ONE, context=EXACT)
    return value


def _parse_currency(currency: object) -> str:
    if not isinstance(currency, str):
        raise InvalidRequest(f"currency must be a str, not {type(currency).__name__}")
    code = currency.upper()
    if len(code) != 3 or not code.isascii() or code not in ISO_4217_EXPONENTS:
        raise InvalidRequest(f"currency {shorten(currency)} is not an active ISO 4217 code")
    if ISO_4217_EXPONENTS[code] is None:
        raise InvalidRequest(
            f"currency {code} has no minor unit in ISO 4217 (metal, fund unit or test code)"
            " and cannot be used for payments"
        )
    return code


class Money:
    """An exact amount in one currency: `Money("10.00", "USD")`, `Money(Decimal("5"), "jpy")`.

    Immutable and compared by value (`Money("10", "USD") == Money("10.00", "USD")`). The
    amount may have any sign and any number of decimals; the vendor conversions decide what
    each vendor accepts, and adapters call `require_positive` where a charge needs it.
    """

    __slots__ = ("_amount", "_currency")

    _amount: Decimal
    _currency: str

    def __init__(self, amount: Decimal | str | int, currency: str) -> None:
        object.__setattr__(self, "_amount", _parse_amount(amount))
        object.__setattr__(self, "_currency", _parse_currency(currency))

    if not TYPE_CHECKING:  # hidden from type checkers, which then still flag `m.amount = x`

        def __setattr__(self, name: str, value: object) -> None:
            raise AttributeError(f"Money is immutable: cannot set {name!r}")

        def __delattr__(self, name: str) -> None:
            raise AttributeError(f"Money is immutable: cannot delete {name!r}")

    @classmethod
    def from_vendor(cls, amount: Decimal | str | int, currency: str) -> Money:
        """A `Money` read back from a vendor: any 3-letter currency code is accepted.

        Vendors report amounts in currencies that left ISO 4217 (a BGN payment made before
        2026, HRK, ANG) or that this table does not know yet; refusing them after the vendor
        acted would hide a done payment or refund. The amount is checked as strictly as ever.
        Such a `Money` can be passed back to the vendor (a refund of that BGN payment).
        """
        if not isinstance(currency, str) or not VENDOR_CODE.fullmatch(currency):
            raise InvalidRequest(f"currency {shorten(str(currency))} is not a 3-letter code")
        money = object.__new__(cls)
        object.__setattr__(money, "_amount", _parse_amount(amount))
        object.__setattr__(money, "_currency", currency.upper())
        return money

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        # Pickle and copy rebuild through a constructor, which re-validates.
        if ISO_4217_EXPONENTS.get(self._currency) is None:
            return Money.from_vendor, (f"{self._amount:f}", self._currency)
        return Money, (f"{self._amount:f}", self._currency)

    @property
    def amount(self) -> Decimal:
        """The amount, exactly as given (trailing zeros kept)."""
        return self._amount

    @property
    def currency(self) -> str:
        """The upper-case ISO 4217 code."""
        return self._currency

    @property
    def exponent(self) -> int:
        """The currency's ISO 4217 minor-unit digits (2 for USD, 0 for JPY, 3 for KWD).

        A retired code has its former exponent; a code read back from a vendor that no table
        knows is assumed to have 2.
        """
        exponent = known_exponent(self._currency)
        return DEFAULT_EXPONENT if exponent is None else exponent

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        return self._amount == other._amount and self._currency == other._currency

    def __hash__(self) -> int:
        return hash((self._amount, self._currency))

    def __repr__(self) -> str:
        return f"Money({f'{self._amount:f}'!r}, {self._currency!r})"

    def __str__(self) -> str:
        return f"{self._amount:f} {self._currency}"


def known_exponent(code: str) -> int | None:
    """The exponent of an active or retired code with a minor unit, else None."""
    exponent = ISO_4217_EXPONENTS.get(code)
    return RETIRED_EXPONENTS.get(code) if exponent is None else exponent


def require_money(money: object, what: str) -> Money:
    if not isinstance(money, Money):
        raise InvalidRequest(f"{what} must be a Money, not {type(money).__name__}")
    return money


def require_positive(money: Money, what: str = "amount") -> Money:
    """Return `money` if it is greater than zero, else raise `InvalidRequest` naming `what`."""
    if not require_money(money, what).amount > 0:
        raise InvalidRequest(f"{what} must be greater than zero, got {money}")
    return money


def require_non_negative(money: Money, what: str = "amount") -> Money:
    """Return `money` if it is zero or more (a zero refund or limit), else raise."""
    if require_money(money, what).amount < 0:
        raise InvalidRequest(f"{what} must not be negative, got {money}")
    return money


def to_minor(money: Money, digits: int, step: int, vendor: str) -> int:
    """`money` in units of 10**-digits, refusing anything that is not a multiple of `step`."""
    minor = money.amount.scaleb(digits, context=EXACT)
    if minor != minor.to_integral_value() or int(minor) % step:
        unit = Decimal(step).scaleb(-digits).normalize()
        raise InvalidRequest(
            f"{money} cannot be sent to {vendor} exactly: {vendor} takes {money.currency} in"
            f" steps of {unit:f}; round it explicitly first (nothing is rounded silently)"
        )
    return int(minor)
