"""Twilio: Programmable Messaging, Balance and Lookup v2."""

from ._adapter import TwilioAccount, TwilioAccountProvider, TwilioSmsAdapter
from ._errors import TwilioError, TwilioThrottled

__all__ = [
    "TwilioAccount",
    "TwilioAccountProvider",
    "TwilioError",
    "TwilioSmsAdapter",
    "TwilioThrottled",
]
