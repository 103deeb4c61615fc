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
from ._sms import (
    PhoneNumberInfo,
    PhoneNumberRejected,
    SmsGateway,
    SmsMessage,
    SmsResult,
)
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
from .sns import SnsError, SnsSmsAdapter, SnsThrottled, SpendReport
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
from .twilio import TwilioError, TwilioSmsAdapter, TwilioThrottled

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
    "PhoneNumberInfo",
    "PhoneNumberRejected",
    "Refund",
    "RefundStatus",
    "RegionNotPermitted",
    "SmsGateway",
    "SmsMessage",
    "SmsResult",
    "SmsSegments",
    "SnsError",
    "SnsSmsAdapter",
    "SnsThrottled",
    "SpendLimitExceeded",
    "SpendReport",
    "StripeAPIError",
    "StripeAuthenticationError",
    "StripeCardError",
    "StripeError",
    "StripeIdempotencyError",
    "StripeInvalidRequestError",
    "StripePaymentAdapter",
    "StripePermissionError",
    "StripeRateLimitError",
    "TwilioError",
    "TwilioSmsAdapter",
    "TwilioThrottled",
    "VendorError",
    "VendorRateLimited",
    "count_segments",
    "validate_e164",
]
