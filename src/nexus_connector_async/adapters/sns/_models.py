"""SNS values: the spend report and the SMS message attributes of a publish."""

from __future__ import annotations

import re
from typing import Final, Literal

import msgspec

from ..._errors import InvalidRequest
from .._money import Money

__all__ = ["SmsType", "SpendReport", "message_attributes", "validate_sender_id"]

SmsType = Literal["Transactional", "Promotional"]

# Developer guide rule (stricter than the API reference's 1-11): 3-11 letters, digits or
# hyphens, at least one letter, no spaces (vendor-facts 4.2).
_SENDER_ID: Final = re.compile(r"(?=[A-Za-z0-9-]*[A-Za-z])[A-Za-z0-9-]{3,11}")


class SpendReport(msgspec.Struct, frozen=True):
    """SMS spend this month.

    `month_to_date` is what this library's workers sent, estimated as price per segment times
    segments and shared through the backend (SNS itself reports spend only in CloudWatch
    `SMSMonthToDateSpentUSD`). `limit` is the limit sends are checked against: the adapter's
    `monthly_limit`, else the account's `MonthlySpendLimit`, which is `account_limit`.
    """

    month_to_date: Money
    limit: Money | None
    account_limit: Money | None = None
    month: str = ""


def validate_sender_id(sender_id: str) -> str:
    """Return `sender_id` if it is 3-11 letters, digits or hyphens with at least one letter."""
    if not isinstance(sender_id, str) or not _SENDER_ID.fullmatch(sender_id):
        raise InvalidRequest(
            "sender_id must be 3-11 letters, digits or hyphens with at least one letter"
        )
    return sender_id


def message_attributes(
    sms_type: SmsType, sender_id: str | None, max_price: Money | None
) -> dict[str, dict[str, str]]:
    """`MessageAttributes` for Publish: each value a `DataType` and a str `StringValue`."""
    attributes = {"AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": sms_type}}
    if sender_id is not None:
        attributes["AWS.SNS.SMS.SenderID"] = {"DataType": "String", "StringValue": sender_id}
    if max_price is not None:
        # Number type, but the value still travels as a string (vendor-facts 4.1).
        attributes["AWS.SNS.SMS.MaxPrice"] = {
            "DataType": "Number",
            "StringValue": f"{max_price.amount:f}",
        }
    return attributes
