"""What every layer shares: one call's facts (`Call`), a keyed call's progress, and the wiring."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, Protocol

from .._clock import Clock
from .._config import CircuitBreakerConfig, ConcurrencyLimit, RateLimitConfig, RetryPolicy
from .._events import EventBus
from ..backends._base import Admission, Backend
from ..backends._slots import Slot
from ._outcome import Outcome
from ._tasks import Tasks

__all__ = ["Attempt", "Call", "Held", "Progress", "Send", "Settings", "Wiring"]


class Progress:
    """How far a keyed call got, so that its key is settled right when it ends."""

    __slots__ = ("admitted", "last", "sending", "unrecorded")

    def __init__(self, admitted: Admission | None = None) -> None:
        self.sending = False  # an attempt is at the vendor (request started, no outcome yet)
        self.last: Outcome | None = None  # the latest attempt's outcome
        # The first attempt's admission, decided with the claim (taken once, by that attempt).
        self.admitted = admitted
        # The last attempt's breaker record (its outcome and probe permit), left for the key's
        # settle to send along: one round trip for both.
        self.unrecorded: tuple[Outcome, str] | None = None


class Held:
    """A concurrency slot held by one attempt, from admission until it is given back."""

    __slots__ = ("announced", "released", "slot", "taken_at")

    def __init__(self, slot: Slot, taken_at: float) -> None:
        self.slot = slot
        self.taken_at = taken_at  # clock.monotonic(): its lease runs from here
        self.released = False
        self.announced = False  # a ConcurrencySlotHeld went out: its release is reported too


class Call(NamedTuple):
    """What the layers need to know about one call (and, per attempt, what it holds)."""

    service: str
    tenant: str | None
    breaker: CircuitBreakerConfig
    limit: RateLimitConfig | None
    retry: RetryPolicy
    #: May be sent again after it may have reached the vendor (api.md rule 18): the method is
    #: idempotent, the vendor deduplicates it, or the caller said so. An attempt whose outcome
    #: is `UNTOUCHED` is resend-safe whatever this says.
    resend_safe: bool
    probe_lease: float
    deadline_at: float | None
    label: str  # "POST https://..." or the operation name, for logs
    started: float  # clock.monotonic() when the call began
    probe: str = ""  # the half-open probe permit this attempt holds, renewed before sending
    progress: Progress | None = None  # keyed calls only
    concurrency: ConcurrencyLimit | None = None  # a fleet-wide slot per attempt (api.md 26)
    held: Held | None = None  # the slot this attempt holds (taken with its admission)


class Settings(Protocol):
    """The connector's tunable attributes, read by the layers on each call (so they may change)."""

    idempotency_wait: float
    idempotency_lease: float
    max_shared_pause: float


class Wiring:
    """The parts every layer uses: state backend, clock, events, logger, background tasks."""

    __slots__ = ("_hooked", "backend", "clock", "events", "log", "per_attempt", "per_call", "tasks")

    def __init__(
        self,
        backend: Backend,
        clock: Clock,
        events: EventBus,
        log: Any,
        tasks: Tasks,
        *,
        hooked: bool,
    ) -> None:
        self.backend = backend
        self.clock = clock
        self.events = events
        self.log = log
        self.tasks = tasks
        # The two events of every call are built only if someone takes them: with a silent or
        # filtering logger and no hooks, a happy call builds no event at all (the hot path).
        self._hooked = hooked
        enabled: Callable[[int], bool] | None = getattr(log, "is_enabled_for", None)
        #: Whether anyone takes the per-attempt event / the audit event of a finished call,
        #: asked per call (logging may be configured meanwhile). Without hooks, the logger's
        #: own check, bound once: no frame of ours in between on the hot path.
        self.per_attempt: Callable[[], bool] = _always
        self.per_call: Callable[[], bool] = _always
        if not hooked and enabled is not None:
            self.per_attempt = functools.partial(enabled, logging.DEBUG)
            self.per_call = functools.partial(enabled, logging.INFO)

    @property
    def hooked(self) -> bool:
        """Whether event hooks beyond the logger are registered (metrics-only events)."""
        return self._hooked


def _always() -> bool:
    return True


#: The innermost layer: one attempt of this call (holding its probe and slot), classified.
Attempt = Callable[[Call], Awaitable[Outcome]]
#: One admitted attempt: (call, attempt number, is it a retry) -> its outcome, or None when a
#: retry was refused admission. The retry loop calls it; the auth flow may wrap it.
Send = Callable[[Call, int, bool], Awaitable[Outcome | None]]
