"""Vendor adapters: Stripe and PayPal (payments), Twilio and AWS SNS (SMS)."""

from ._errors import (
    AuthenticationFailed,
    InvalidPhoneNumber,
    OptedOut,
    PaymentDeclined,
    RegionNotPermitted,
    SpendLimitExceeded,
    VendorError,
    VendorRateLimited,
)
from ._money import Money
from ._payments import Payment, PaymentGateway, PaymentStatus, Refund, RefundStatus
from ._phone import SmsSegments, count_segments, validate_e164
from .paypal import (
    PayPalAPIError,
    PayPalAuthenticationError,
    PayPalDeclined,
    PayPalError,
    PayPalInvalidRequestError,
    PayPalPaymentAdapter,
    PayPalPermissionError,
    PayPalRateLimitError,
)
from .stripe import (
    StripeAPIError,
    StripeAuthenticationError,
    StripeCardError,
    StripeError,
    StripeIdempotencyError,
    StripeInvalidRequestError,
    StripePaymentAdapter,
    StripePermissionError,
    StripeRateLimitError,
)

__all__ = [
    "AuthenticationFailed",
    "InvalidPhoneNumber",
    "Money",
    "OptedOut",
    "PayPalAPIError",
    "PayPalAuthenticationError",
    "PayPalDeclined",
    "PayPalError",
    "PayPalInvalidRequestError",
    "PayPalPaymentAdapter",
    "PayPalPermissionError",
    "PayPalRateLimitError",
    "Payment",
    "PaymentDeclined",
    "PaymentGateway",
    "PaymentStatus",
    "Refund",
    "RefundStatus",
    "RegionNotPermitted",
    "SmsSegments",
    "SpendLimitExceeded",
    "StripeAPIError",
    "StripeAuthenticationError",
    "StripeCardError",
    "StripeError",
    "StripeIdempotencyError",
    "StripeInvalidRequestError",
    "StripePaymentAdapter",
    "StripePermissionError",
    "StripeRateLimitError",
    "VendorError",
    "VendorRateLimited",
    "count_segments",
    "validate_e164",
]
