"""Vendor error bodies that are not JSON, or not even UTF-8, still give typed vendor errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from nexus_connector_async import Response
from nexus_connector_async.adapters import VendorError
from nexus_connector_async.adapters.paypal._errors import error_from_response as paypal_error
from nexus_connector_async.adapters.stripe._errors import error_from_response as stripe_error
from nexus_connector_async.adapters.twilio._errors import error_from_response as twilio_error

BODIES = [
    b'{"error": {"message": "caf\xe9"}}',  # invalid UTF-8 inside a JSON string
    b"<html><body>502 Bad Gateway</body></html>",
    b"",
    b"\xff\xfe\x00",
]


@pytest.mark.parametrize("body", BODIES)
@pytest.mark.parametrize("parse", [stripe_error, paypal_error, twilio_error])
@pytest.mark.parametrize("status", [400, 402, 500])
def test_an_unreadable_error_body_is_still_a_typed_vendor_error(
    parse: Callable[..., Any], body: bytes, status: int
) -> None:
    error = parse(Response(status, {}, body))
    assert isinstance(error, VendorError)
    assert error.status == status
