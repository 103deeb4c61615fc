"""Twilio: Programmable Messaging, Balance and Lookup v2."""

from ._accounts import TwilioAccount, TwilioAccountProvider
from ._adapter import TwilioSmsAdapter
from ._errors import TwilioError, TwilioThrottled

__all__ = [
    "TwilioAccount",
    "TwilioAccountProvider",
    "TwilioError",
    "TwilioSmsAdapter",
    "TwilioThrottled",
]
