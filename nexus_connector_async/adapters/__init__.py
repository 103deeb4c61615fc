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
from ._phone import SmsSegments, count_segments, validate_e164

__all__ = [
    "AuthenticationFailed",
    "InvalidPhoneNumber",
    "Money",
    "OptedOut",
    "PaymentDeclined",
    "RegionNotPermitted",
    "SmsSegments",
    "SpendLimitExceeded",
    "VendorError",
    "VendorRateLimited",
    "count_segments",
    "validate_e164",
]
