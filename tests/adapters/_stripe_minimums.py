"""Stripe's minimum charge amounts (vendor-facts 1.9), kept apart from the simulator's table.

Charges below them get `amount_too_small`; tests that charge arbitrary amounts start here.
"""

from __future__ import annotations

from decimal import Decimal

MINIMUMS = {
    "USD": Decimal("0.50"),
    "EUR": Decimal("0.50"),
    "GBP": Decimal("0.30"),
    "JPY": Decimal("50"),
    "CAD": Decimal("0.50"),
    "AUD": Decimal("0.50"),
    "HUF": Decimal("175.00"),
    "PLN": Decimal("2.00"),
}


def at_least_minimum(amount: Decimal, currency: str) -> Decimal:
    """`amount` raised by the currency's minimum, so any positive amount becomes chargeable."""
    return amount + MINIMUMS.get(currency, Decimal(0))
