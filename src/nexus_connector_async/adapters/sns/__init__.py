"""AWS SNS: direct-to-phone SMS through aioboto3 (the `sns` extra)."""

from ._adapter import SnsSmsAdapter
from ._errors import SnsClientError, SnsError, SnsThrottled
from ._models import SpendReport

__all__ = ["SnsClientError", "SnsError", "SnsSmsAdapter", "SnsThrottled", "SpendReport"]
