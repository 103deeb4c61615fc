"""Money: exact amounts, ISO 4217 currencies, and the Stripe and PayPal encodings."""

from __future__ import annotations

import copy
import pickle
import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nexus_connector_async import InvalidRequest
from nexus_connector_async.adapters._money import (
    ISO_4217_EXPONENTS,
    Money,
    require_non_negative,
    require_positive,
)
from nexus_connector_async.adapters.paypal._money import (
    PAYPAL_CURRENCIES,
    from_paypal_amount,
    to_paypal_amount,
)
from nexus_connector_async.adapters.stripe._money import (
    from_stripe_minor,
    stripe_currency,
    to_stripe_minor,
)

# Written out again here (from vendor-facts 1.9) so the tests do not just echo the module.
STRIPE_ZERO_DECIMAL = [
    *("BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA"),
    *("PYG", "RWF", "VND", "VUV", "XAF", "XOF", "XPF"),
]
STRIPE_TIMES_100 = ["ISK", "UGX"]
STRIPE_THREE_DECIMAL = ["BHD", "JOD", "KWD", "OMR", "TND"]
PAYPAL_VALUE = re.compile(r"^((-?[0-9]+)|(-?([0-9]+)?[.][0-9]+))$")
USABLE_CURRENCIES = sorted(code for code, exp in ISO_4217_EXPONENTS.items() if exp is not None)


def stripe_scale(currency: str) -> tuple[int, int]:
    """(decimal digits, step) Stripe expects for `currency`, per vendor-facts 1.9."""
    if currency in STRIPE_ZERO_DECIMAL:
        return 0, 1
    if currency in STRIPE_TIMES_100:
        return 2, 100
    if currency in STRIPE_THREE_DECIMAL:
        return 3, 10
    exponent = ISO_4217_EXPONENTS[currency]
    assert exponent is not None
    return exponent, 1


# --- building Money ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("10.00", "USD", Decimal("10.00")),
        (Decimal("5"), "JPY", Decimal("5")),
        (7, "EUR", Decimal("7")),
        ("-1.5", "EUR", Decimal("-1.5")),
        ("+2", "EUR", Decimal("2")),
        (".5", "EUR", Decimal("0.5")),
        ("5.", "EUR", Decimal("5")),
        (Decimal("1E+3"), "USD", Decimal("1000")),
        ("0.000000000000000000000001", "USD", Decimal("1E-24")),
    ],
)
def test_money_accepts_decimals_plain_decimal_strings_and_ints(
    amount: Any, currency: str, expected: Decimal
) -> None:
    money = Money(amount, currency)
    assert money.amount == expected
    assert isinstance(money.amount, Decimal)


@pytest.mark.parametrize(
    ("amount", "problem"),
    [
        (10.0, "float"),
        (0.1, "float"),
        (True, "bool"),
        (None, "NoneType"),
        (b"10", "bytes"),
        ("NaN", "finite"),
        ("sNaN", "finite"),
        ("Infinity", "finite"),
        ("-inf", "finite"),
        (Decimal("NaN"), "finite"),
        (Decimal("-Infinity"), "finite"),
        ("", "plain decimal"),
        (" 5", "plain decimal"),
        ("5\n", "plain decimal"),
        ("1e3", "plain decimal"),
        ("1_000", "plain decimal"),
        ("1,000.00", "plain decimal"),
        ("1.2.3", "plain decimal"),
        ("\u0661\u0660", "plain decimal"),  # Arabic-Indic digits, which Decimal() would take
        ("ten", "plain decimal"),
        ("1" * 25, "too large"),
        (10**24, "too large"),
        (Decimal("1E+30"), "too large"),
        ("0." + "0" * 24 + "1", "decimal places"),
    ],
)
def test_money_refuses_amounts_that_are_not_exact_finite_numbers(amount: Any, problem: str) -> None:
    with pytest.raises(InvalidRequest, match=problem):
        Money(amount, "USD")


def test_an_error_about_a_huge_amount_string_does_not_echo_all_of_it() -> None:
    with pytest.raises(InvalidRequest) as caught:
        Money("9" * 10_000 + "x", "USD")
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize("currency", ["usd", "Usd", "USD"])
def test_money_upper_cases_the_currency_code(currency: str) -> None:
    assert Money("1", currency).currency == "USD"


@pytest.mark.parametrize(
    ("currency", "problem"),
    [
        ("US", "not an active ISO 4217 code"),
        ("USDD", "not an active ISO 4217 code"),
        ("ABC", "not an active ISO 4217 code"),
        ("", "not an active ISO 4217 code"),
        ("HRK", "not an active ISO 4217 code"),  # withdrawn when Croatia took the euro
        ("BGN", "not an active ISO 4217 code"),  # withdrawn when Bulgaria took the euro
        ("\uff35\uff33\uff24", "not an active ISO 4217 code"),  # full-width USD
        ("XAU", "no minor unit"),
        ("XXX", "no minor unit"),
        (840, "must be a str"),
        (None, "must be a str"),
    ],
)
def test_money_refuses_currencies_that_are_not_active_iso_4217_codes(
    currency: Any, problem: str
) -> None:
    with pytest.raises(InvalidRequest, match=problem):
        Money("1", currency)


def test_the_iso_4217_table_holds_the_current_list_with_its_exponents() -> None:
    assert len(ISO_4217_EXPONENTS) == 178
    assert all(re.fullmatch("[A-Z]{3}", code) for code in ISO_4217_EXPONENTS)
    assert set(ISO_4217_EXPONENTS.values()) == {0, 2, 3, 4, None}
    assert {"XCG", "ZWG", "XAD", "SLE", "VED"} <= ISO_4217_EXPONENTS.keys()
    assert not {"ANG", "BGN", "CUC", "HRK", "SLL", "ZWL"} & ISO_4217_EXPONENTS.keys()
    expected = {"USD": 2, "JPY": 0, "ISK": 0, "KWD": 3, "IQD": 3, "CLF": 4, "MGA": 2, "XDR": None}
    assert {code: ISO_4217_EXPONENTS[code] for code in expected} == expected


def test_money_exposes_the_iso_exponent_of_its_currency() -> None:
    assert [Money("1", c).exponent for c in ("USD", "JPY", "KWD", "CLF")] == [2, 0, 3, 4]


def test_money_equality_and_hash_go_by_value() -> None:
    assert Money("10", "USD") == Money("10.00", "usd")
    assert hash(Money("10", "USD")) == hash(Money("10.00", "USD"))
    assert Money("10", "USD") != Money("10", "EUR")
    assert Money("10", "USD") != Money("10.01", "USD")
    assert Money("10", "USD") != Decimal("10")
    assert len({Money("1", "USD"), Money("1.0", "USD"), Money("1", "EUR")}) == 2


def test_money_is_immutable() -> None:
    money = Money("10.00", "USD")
    with pytest.raises(AttributeError):
        money.amount = Decimal(5)  # type: ignore[misc]
    with pytest.raises(AttributeError):
        money._amount = Decimal(5)
    with pytest.raises(AttributeError):
        del money._currency
    with pytest.raises(AttributeError):
        money.note = "x"  # type: ignore[attr-defined]
    assert money == Money("10.00", "USD")


def test_money_has_a_readable_repr_and_str_in_plain_notation() -> None:
    assert repr(Money("10.00", "usd")) == "Money('10.00', 'USD')"
    assert repr(Money(Decimal("1E-7"), "USD")) == "Money('0.0000001', 'USD')"
    assert str(Money("-3.5", "EUR")) == "-3.5 EUR"


def test_money_survives_pickling_and_copying() -> None:
    money = Money("10.00", "USD")
    assert repr(pickle.loads(pickle.dumps(money))) == "Money('10.00', 'USD')"
    assert copy.deepcopy(money) == money


# --- sign checks ------------------------------------------------------------------------------


def test_require_positive_returns_a_positive_amount_unchanged() -> None:
    money = Money("0.01", "USD")
    assert require_positive(money) is money


@pytest.mark.parametrize("amount", ["0", "0.00", "-0", "-1"])
def test_require_positive_refuses_zero_and_negative_amounts_naming_the_field(amount: str) -> None:
    with pytest.raises(InvalidRequest, match="refund amount must be greater than zero"):
        require_positive(Money(amount, "USD"), "refund amount")


def test_require_non_negative_allows_zero_but_refuses_negative_amounts() -> None:
    zero = Money("0", "USD")
    assert require_non_negative(zero) is zero
    with pytest.raises(InvalidRequest, match="limit must not be negative"):
        require_non_negative(Money("-0.01", "USD"), "limit")


@pytest.mark.parametrize("check", [require_positive, require_non_negative])
def test_sign_checks_refuse_something_that_is_not_money(check: Any) -> None:
    with pytest.raises(InvalidRequest, match="amount must be a Money, not Decimal"):
        check(Decimal(5))


# --- Stripe -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("10.00", "USD", 1000),
        ("0.5", "usd", 50),
        ("-10", "USD", -1000),
        ("0", "EUR", 0),
        ("500", "JPY", 500),
        ("100", "KRW", 100),
        ("10", "MGA", 10),  # ISO two-decimal, Stripe zero-decimal
        ("5", "ISK", 500),
        ("5", "UGX", 500),
        ("175.00", "HUF", 17500),
        ("1.25", "TWD", 125),
        ("5.12", "KWD", 5120),
        ("5.120", "KWD", 5120),
        ("1.5", "BHD", 1500),
        ("1.234", "IQD", 1234),  # three-decimal in ISO, not in Stripe's last-digit-0 list
        ("0.0001", "CLF", 1),
    ],
)
def test_stripe_minor_units_follow_stripes_currency_rules(
    amount: str, currency: str, minor: int
) -> None:
    assert to_stripe_minor(Money(amount, currency)) == minor


@pytest.mark.parametrize(
    ("amount", "currency"),
    [
        ("10.005", "USD"),
        ("0.001", "HUF"),
        ("1.5", "JPY"),
        ("0.5", "MGA"),
        ("5.5", "ISK"),
        ("0.01", "UGX"),
        ("5.124", "KWD"),
        ("5.125", "KWD"),
        ("1.001", "TND"),
        ("0.00001", "CLF"),
    ],
)
def test_stripe_conversion_refuses_amounts_it_would_have_to_round(
    amount: str, currency: str
) -> None:
    with pytest.raises(InvalidRequest, match=f"cannot be sent to Stripe exactly.*{currency}"):
        to_stripe_minor(Money(amount, currency))


def test_stripe_currency_is_the_lower_case_code() -> None:
    assert stripe_currency(Money("1", "USD")) == "usd"


@pytest.mark.parametrize(
    ("minor", "currency", "expected"),
    [
        (1000, "usd", Money("10.00", "USD")),
        (500, "jpy", Money("500", "JPY")),
        (500, "isk", Money("5", "ISK")),
        (5120, "kwd", Money("5.12", "KWD")),
        (0, "eur", Money("0", "EUR")),
        (-250, "EUR", Money("-2.50", "EUR")),
    ],
)
def test_stripe_minor_units_read_back_as_money(minor: int, currency: str, expected: Money) -> None:
    assert from_stripe_minor(minor, currency) == expected


def test_stripe_amounts_read_back_keep_the_cents_in_the_repr() -> None:
    assert repr(from_stripe_minor(1000, "usd")) == "Money('10.00', 'USD')"


@pytest.mark.parametrize(
    ("minor", "currency", "problem"),
    [
        (True, "usd", "must be an int"),
        (10.0, "usd", "must be an int"),
        ("1000", "usd", "must be an int"),
        (1000, "z1z", "not a 3-letter code"),  # any 3 letters are read (rule 34), not this
        (1000, "usdd", "not a 3-letter code"),
        (10**40, "usd", "too large"),
    ],
)
def test_stripe_amounts_that_cannot_be_money_are_refused(
    minor: Any, currency: str, problem: str
) -> None:
    with pytest.raises(InvalidRequest, match=problem):
        from_stripe_minor(minor, currency)


@given(
    currency=st.sampled_from(
        [
            *("USD", "EUR", "HUF", "TWD", "IQD", "CLF"),
            *STRIPE_ZERO_DECIMAL,
            *STRIPE_TIMES_100,
            *STRIPE_THREE_DECIMAL,
        ]
    ),
    units=st.integers(min_value=-(10**15), max_value=10**15),
)
def test_stripe_minor_units_round_trip_for_every_class_of_currency(
    currency: str, units: int
) -> None:
    digits, step = stripe_scale(currency)
    minor = units * step
    money = from_stripe_minor(minor, currency.lower())
    assert money.amount == Decimal(minor).scaleb(-digits)
    assert to_stripe_minor(money) == minor
    assert to_stripe_minor(Money(money.amount, currency)) == minor


@given(
    currency=st.sampled_from(USABLE_CURRENCIES),
    units=st.integers(min_value=-(10**15), max_value=10**15),
)
def test_stripe_minor_units_round_trip_for_every_iso_currency(currency: str, units: int) -> None:
    _, step = stripe_scale(currency)
    money = from_stripe_minor(units * step, currency.lower())
    assert to_stripe_minor(money) == units * step


@given(
    currency=st.sampled_from(STRIPE_TIMES_100 + STRIPE_THREE_DECIMAL),
    units=st.integers(min_value=-(10**15), max_value=10**15),
    data=st.data(),
)
def test_stripe_amounts_off_the_allowed_step_are_always_refused(
    currency: str, units: int, data: st.DataObject
) -> None:
    digits, step = stripe_scale(currency)
    off = data.draw(st.integers(min_value=1, max_value=step - 1))
    money = Money(Decimal(units * step + off).scaleb(-digits), currency)
    with pytest.raises(InvalidRequest):
        to_stripe_minor(money)


# --- PayPal -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "value"),
    [
        ("10.00", "USD", "10.00"),
        ("10", "usd", "10.00"),
        ("10.5", "EUR", "10.50"),
        ("0.01", "GBP", "0.01"),
        ("-1.5", "USD", "-1.50"),
        ("-0", "USD", "0.00"),
        ("1000", "JPY", "1000"),
        ("1000.00", "HUF", "1000"),
        ("250.0", "TWD", "250"),
        ("123456789012345678901234.00", "USD", "123456789012345678901234.00"),
    ],
)
def test_paypal_amounts_are_exact_strings_with_the_currencys_decimals(
    amount: str, currency: str, value: str
) -> None:
    encoded = to_paypal_amount(Money(amount, currency))
    assert encoded == {"currency_code": currency.upper(), "value": value}
    assert PAYPAL_VALUE.match(encoded["value"])
    assert len(encoded["value"]) <= 32


@pytest.mark.parametrize(
    ("amount", "currency", "problem"),
    [
        ("0.001", "USD", "cannot be sent to PayPal exactly"),
        ("10.005", "EUR", "cannot be sent to PayPal exactly"),
        ("1.5", "JPY", "cannot be sent to PayPal exactly"),
        ("0.5", "HUF", "cannot be sent to PayPal exactly"),
        ("1000.01", "TWD", "cannot be sent to PayPal exactly"),
        ("1", "KWD", "PayPal does not support KWD"),
        ("1", "ISK", "PayPal does not support ISK"),
        ("1", "INR", "PayPal does not support INR"),
    ],
)
def test_paypal_conversion_refuses_inexact_amounts_and_unsupported_currencies(
    amount: str, currency: str, problem: str
) -> None:
    with pytest.raises(InvalidRequest, match=problem):
        to_paypal_amount(Money(amount, currency))


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"currency_code": "USD", "value": "10.00"}, Money("10.00", "USD")),
        ({"currency_code": "JPY", "value": "1000"}, Money("1000", "JPY")),
        ({"currency_code": "EUR", "value": ".5"}, Money("0.5", "EUR")),
        ({"currency_code": "EUR", "value": "-2.5"}, Money("-2.5", "EUR")),
        ({"currency_code": "usd", "value": "1"}, Money("1", "USD")),
    ],
)
def test_paypal_amount_objects_read_back_as_money(obj: dict[str, str], expected: Money) -> None:
    assert from_paypal_amount(obj) == expected


@pytest.mark.parametrize(
    ("obj", "problem"),
    [
        ({"currency_code": "USD"}, "needs 'currency_code' and 'value'"),
        ({"value": "1.00"}, "needs 'currency_code' and 'value'"),
        (["USD", "1.00"], "needs 'currency_code' and 'value'"),
        ({"currency_code": "USD", "value": 1.0}, "must be a str"),
        ({"currency_code": "USD", "value": ""}, "not a decimal string"),
        ({"currency_code": "USD", "value": "1e3"}, "not a decimal string"),
        ({"currency_code": "USD", "value": "+1"}, "not a decimal string"),
        ({"currency_code": "USD", "value": "1."}, "not a decimal string"),
        ({"currency_code": "USD", "value": " 1"}, "not a decimal string"),
        ({"currency_code": "USD", "value": "1" * 33}, "not a decimal string"),
        ({"currency_code": "Z9Z", "value": "1"}, "not a 3-letter code"),
    ],
)
def test_malformed_paypal_amount_objects_are_refused(obj: Any, problem: str) -> None:
    with pytest.raises(InvalidRequest, match=problem):
        from_paypal_amount(obj)


@given(
    currency=st.sampled_from(sorted(PAYPAL_CURRENCIES)),
    units=st.integers(min_value=-(10**20), max_value=10**20),
)
def test_paypal_values_round_trip_and_always_match_paypals_pattern(
    currency: str, units: int
) -> None:
    digits = 0 if currency in {"HUF", "JPY", "TWD"} else 2
    money = Money(Decimal(units).scaleb(-digits), currency)
    encoded = to_paypal_amount(money)
    assert PAYPAL_VALUE.match(encoded["value"])
    assert len(encoded["value"]) <= 32
    assert from_paypal_amount(encoded) == money
    assert to_paypal_amount(from_paypal_amount(encoded)) == encoded
