"""PayPal: Checkout Orders v2 and Payments v2."""

from ._adapter import LIVE_URL, SANDBOX_URL, PayPalPaymentAdapter
from ._errors import (
    PayPalAPIError,
    PayPalAuthenticationError,
    PayPalDeclined,
    PayPalError,
    PayPalInvalidRequestError,
    PayPalPayerActionRequired,
    PayPalPermissionError,
    PayPalRateLimitError,
    PayPalResponseError,
)

__all__ = [
    "LIVE_URL",
    "SANDBOX_URL",
    "PayPalAPIError",
    "PayPalAuthenticationError",
    "PayPalDeclined",
    "PayPalError",
    "PayPalInvalidRequestError",
    "PayPalPayerActionRequired",
    "PayPalPaymentAdapter",
    "PayPalPermissionError",
    "PayPalRateLimitError",
    "PayPalResponseError",
]
