"""Stripe: PaymentIntents, Refunds and legacy Charges."""

from ._adapter import DEFAULT_API_VERSION, DEFAULT_BASE_URL, StripePaymentAdapter
from ._errors import (
    StripeAPIError,
    StripeAuthenticationError,
    StripeCardError,
    StripeError,
    StripeIdempotencyError,
    StripeInvalidRequestError,
    StripePermissionError,
    StripeRateLimitError,
    StripeResponseError,
)

__all__ = [
    "DEFAULT_API_VERSION",
    "DEFAULT_BASE_URL",
    "StripeAPIError",
    "StripeAuthenticationError",
    "StripeCardError",
    "StripeError",
    "StripeIdempotencyError",
    "StripeInvalidRequestError",
    "StripePaymentAdapter",
    "StripePermissionError",
    "StripeRateLimitError",
    "StripeResponseError",
]
