"""The pluggable contracts, as Protocols and the values they exchange (a typing side door).

Implement these to bring your own state backend, clock, HTTP transport, credentials or event
hooks; annotate with them in your own code. Everything here is also what the pipeline relies
on, so a type checker tells you when an implementation drifts.
"""

from __future__ import annotations

from ._clock import Clock
from ._events import Event, EventHook, EventSource
from ._transport import Transport
from .backends._base import (
    Admission,
    AdmissionReason,
    AdmissionStore,
    AdmitAsk,
    Backend,
    Claim,
    ClaimAdmitStore,
    ClaimState,
    IdempotencyStore,
    KeyValueStore,
    ProbePermit,
)
from .backends._slots import Adapt, Slot, SlotAsk, SlotStore
from .credentials._base import CredentialProvider, NamesAccount, RefreshesRejected

__all__ = [
    "Adapt",
    "Admission",
    "AdmissionReason",
    "AdmissionStore",
    "AdmitAsk",
    "Backend",
    "Claim",
    "ClaimAdmitStore",
    "ClaimState",
    "Clock",
    "CredentialProvider",
    "Event",
    "EventHook",
    "EventSource",
    "IdempotencyStore",
    "KeyValueStore",
    "NamesAccount",
    "ProbePermit",
    "RefreshesRejected",
    "Slot",
    "SlotAsk",
    "SlotStore",
    "Transport",
]
