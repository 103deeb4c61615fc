"""Twilio: Programmable Messaging, Balance and Lookup v2."""

from ._adapter import TwilioSmsAdapter
from ._errors import TwilioError, TwilioThrottled

__all__ = ["TwilioError", "TwilioSmsAdapter", "TwilioThrottled"]
