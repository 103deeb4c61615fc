"""Helpers for testing code that uses nexus_connector_async (and for our own tests).

- `FakeClock`: time that moves only when told to (or jumps to the next sleeper with `autojump`).
- `set_testing()`: backoff sleeps become 0 s, so retries in your tests are instant.
- `MockTransport`: answer requests with a function instead of a server.
- `capture_logs`: structlog's context manager, re-exported for asserting on our events.
- `VendorSimulator`, `StripeSimulator`, `PayPalSimulator`, `TwilioSimulator`, `SnsSimulator`:
  vendor imitations on 127.0.0.1, all on one base: `sim.url`, `sim.requests` (each a
  `SimulatedRequest`), `sim.inject(...)` for faults, `sim.hold(event)` for a slow vendor.
"""

from __future__ import annotations

from structlog.testing import capture_logs

from .._retry import set_testing
from ._clock import FakeClock
from ._paypal import PayPalSimulator
from ._simulator import VendorSimulator
from ._sns import SnsSimulator
from ._stripe import StripeSimulator
from ._transport import MockTransport, RecordedRequest
from ._twilio import SimulatedMessage, TwilioSimulator
from ._vendor_server import SimulatedRequest

__all__ = [
    "FakeClock",
    "MockTransport",
    "PayPalSimulator",
    "RecordedRequest",
    "SimulatedMessage",
    "SimulatedRequest",
    "SnsSimulator",
    "StripeSimulator",
    "TwilioSimulator",
    "VendorSimulator",
    "capture_logs",
    "set_testing",
]
