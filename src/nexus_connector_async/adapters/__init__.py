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
    VendorResponseError,
)
from ._money import Money
from ._payments import Payment, PaymentGateway, PaymentStatus, Refund, RefundStatus
from ._phone import SmsSegments, count_segments, validate_e164
from ._sms import (
    BulkSendInterrupted,
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
    PayPalPayerActionRequired,
    PayPalPaymentAdapter,
    PayPalPermissionError,
    PayPalRateLimitError,
    PayPalResponseError,
)
from .sns import SnsClientError, SnsError, SnsSmsAdapter, SnsThrottled, SpendReport
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
    StripeResponseError,
)
from .twilio import (
    TwilioAccount,
    TwilioAccountProvider,
    TwilioError,
    TwilioSmsAdapter,
    TwilioThrottled,
)

__all__ = [
    "AuthenticationFailed",
    "BulkSendInterrupted",
    "InvalidPhoneNumber",
    "Money",
    "OptedOut",
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
    "SnsClientError",
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
    "StripeResponseError",
    "TwilioAccount",
    "TwilioAccountProvider",
    "TwilioError",
    "TwilioSmsAdapter",
    "TwilioThrottled",
    "VendorError",
    "VendorRateLimited",
    "VendorResponseError",
    "count_segments",
    "validate_e164",
]

# Tracebacks name the public path (`nexus_connector_async.adapters.StripeCardError`), not the
# private module the class lives in. Errors re-exported from the core keep their own path.
for _name in __all__:
    _obj = globals()[_name]
    if (
        isinstance(_obj, type)
        and issubclass(_obj, BaseException)
        and _obj.__module__.startswith(__name__ + ".")
    ):
        _obj.__module__ = __name__
del _name, _obj
