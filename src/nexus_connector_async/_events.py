"""Typed events: what the pipeline reports, and the hooks that receive them.

Logging is one hook (`StructlogHook`, always on); metrics (`OpenTelemetryHook`) or your own
`EventHook` callables are others. Events carry only what is safe to log: names, counts, timings
and hashes, never a payload, header or token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol, runtime_checkable

import msgspec

__all__ = [
    "AdmissionRejected",
    "AttemptFinished",
    "BackendUnavailableEvent",
    "BackendWriteFailed",
    "CallFinished",
    "CircuitStateChanged",
    "ConcurrencyLimitChanged",
    "ConcurrencySlotHeld",
    "ConcurrencySlotReleased",
    "Event",
    "EventBus",
    "EventHook",
    "EventSource",
    "IdempotentReplay",
    "OutcomeUnknownEvent",
    "RetryScheduled",
    "ShadowWouldBlock",
    "StructlogHook",
    "TokenRefreshed",
]


class AttemptFinished(msgspec.Struct, frozen=True):
    """One HTTP attempt (or guarded call) ended: a status, or the error's type name."""

    service: str
    tenant: str | None
    call: str
    attempt: int
    status: int | None
    error: str | None
    duration: float


class RetryScheduled(msgspec.Struct, frozen=True):
    """Another attempt will follow after `delay` seconds."""

    service: str
    call: str
    attempt: int
    delay: float


class AdmissionRejected(msgspec.Struct, frozen=True):
    """The breaker, limiter or retry budget refused an attempt (`reason` says which)."""

    service: str
    reason: str  # "circuit_open" | "rate_limited" | "retry_budget" | "concurrency_limit"
    retry_after: float
    retry: bool


class ShadowWouldBlock(msgspec.Struct, frozen=True):
    """Shadow mode: the breaker or limiter would have refused this attempt, but let it go."""

    service: str
    reason: str


class CircuitStateChanged(msgspec.Struct, frozen=True):
    """A breaker transition, reported once fleet-wide by the worker whose script made it."""

    service: str
    state: str  # "open" | "half_open" | "closed"


class ConcurrencyLimitChanged(msgspec.Struct, frozen=True):
    """An adaptive concurrency limit moved, reported by the worker whose signal moved it."""

    service: str
    tenant: str | None
    limit: int
    reason: str  # "throttled" | "slow" | "recovered"


class ConcurrencySlotHeld(msgspec.Struct, frozen=True):
    """An attempt started holding a concurrency slot; `waited` is the time it queued for it
    (0.0 when the slot came with its admission). Emitted only when a hook is registered."""

    service: str
    tenant: str | None
    waited: float


class ConcurrencySlotReleased(msgspec.Struct, frozen=True):
    """An attempt gave back the slot of a `ConcurrencySlotHeld` (every way out, once)."""

    service: str
    tenant: str | None


class IdempotentReplay(msgspec.Struct, frozen=True):
    """A call got the stored response for its key; nothing was sent."""

    service: str
    tenant: str | None
    idempotency_key: str  # a hash, never the key itself


class CallFinished(msgspec.Struct, frozen=True):
    """The outcome of a whole call, after all attempts."""

    service: str
    tenant: str | None
    call: str
    status: int | None
    error: str | None
    attempts: int
    duration: float

    @property
    def failed(self) -> bool:
        """An error, or a final 5xx: the vendor did not do its job."""
        return self.error is not None or (self.status or 0) >= 500


class TokenRefreshed(msgspec.Struct, frozen=True):
    """A credential provider fetched a new token for (service, tenant)."""

    service: str
    tenant: str | None


class BackendUnavailableEvent(msgspec.Struct, frozen=True):
    """The shared backend could not be reached; `mode` says what the backend did instead."""

    backend: str
    mode: str
    error: str


class BackendWriteFailed(msgspec.Struct, frozen=True):
    """A backend write after the vendor answered failed; the caller still got its answer.

    `operation` is `record`, `pause`, `admit` (a retry's admission) or, for the idempotency key
    (`idempotency_key` is its digest), `complete`, `release` or `mark_unknown`, which are then
    retried in the background until the backend takes them (`final=True`: given up at close).
    """

    service: str
    operation: str
    error: str
    idempotency_key: str | None = None
    final: bool = False


class OutcomeUnknownEvent(msgspec.Struct, frozen=True):
    """A non-resendable call may have reached the vendor unanswered: its key is now `unknown`."""

    service: str
    tenant: str | None
    idempotency_key: str  # the digest, never the caller's key


Event = (
    AttemptFinished
    | RetryScheduled
    | AdmissionRejected
    | ShadowWouldBlock
    | CircuitStateChanged
    | ConcurrencyLimitChanged
    | ConcurrencySlotHeld
    | ConcurrencySlotReleased
    | IdempotentReplay
    | CallFinished
    | TokenRefreshed
    | BackendUnavailableEvent
    | BackendWriteFailed
    | OutcomeUnknownEvent
)


@runtime_checkable
class EventHook(Protocol):
    """Receives every event. Must be fast and must not raise (errors are swallowed)."""

    def __call__(self, event: Event, /) -> None: ...


@runtime_checkable
class EventSource(Protocol):
    """A part that reports its own events (token refreshes, backend outages).

    The connector hands its backend and credential provider its `emit` at start-up, so what
    they report reaches the same hooks as the pipeline's own events.
    """

    def bind_events(self, emit: Callable[[Event], None], /) -> None:
        """Send future events to `emit`."""
        ...


_LOG_EVENTS: dict[type[Any], tuple[str, str]] = {
    AttemptFinished: ("debug", "nexus.http.attempt"),
    RetryScheduled: ("warning", "nexus.http.retry"),
    AdmissionRejected: ("warning", "nexus.admission.rejected"),
    ShadowWouldBlock: ("warning", "nexus.shadow.would_block"),
    CircuitStateChanged: ("warning", "nexus.circuit.state_changed"),
    ConcurrencyLimitChanged: ("warning", "nexus.concurrency.limit_changed"),
    IdempotentReplay: ("info", "nexus.idempotency.replayed"),
    BackendWriteFailed: ("error", "nexus.backend.write_failed"),
    OutcomeUnknownEvent: ("warning", "nexus.idempotency.outcome_unknown"),
}


_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class StructlogHook:
    """Turns events into structlog lines named `nexus.<component>.<event>`.

    Token refreshes and backend outages are logged by the provider and the backend themselves
    (`nexus.oauth.*`, `nexus.redis.*`, with more detail), so this hook skips them.
    """

    def __init__(self, logger: Any) -> None:
        self._log = logger
        self._enabled = getattr(logger, "is_enabled_for", None)
        # The library's own logger answers "where does this line go" in one call.
        self._emitter = getattr(logger, "emitter", None)

    def __call__(self, event: Event) -> None:
        if isinstance(event, CallFinished):
            level, name = (
                ("warning", "nexus.call.failed")
                if event.failed
                else ("info", "nexus.call.completed")
            )
        else:
            spec = _LOG_EVENTS.get(type(event))
            if spec is None:
                return
            level, name = spec
        if self._emitter is not None:
            emit = self._emitter(_LEVELS[level], level)
            if emit is None:
                return  # don't build fields a silent or filtering logger throws away
        elif self._enabled is not None and not self._enabled(_LEVELS[level]):
            return
        else:
            emit = getattr(self._log, level)
        fields = msgspec.structs.asdict(event)
        if isinstance(event, AttemptFinished | CallFinished):
            fields["duration_ms"] = round(fields.pop("duration") * 1000.0, 2)
        emit(name, **fields)


class EventBus:
    """Fans each event out to the hooks; a failing hook never breaks a call."""

    __slots__ = ("hooks",)

    def __init__(self, hooks: Iterable[EventHook] = ()) -> None:
        self.hooks: list[EventHook] = list(hooks)

    @classmethod
    def wired(cls, log: Any, hooks: Iterable[EventHook], *sources: object) -> EventBus:
        """Every event to the logger first, then to `hooks`; each `EventSource` among
        `sources` (a backend's outages, a provider's token refreshes) reports here too."""
        bus = cls([StructlogHook(log), *hooks])
        for source in sources:
            if isinstance(source, EventSource):
                source.bind_events(bus.emit)
        return bus

    def emit(self, event: Event) -> None:
        for hook in self.hooks:
            try:
                hook(event)
            except Exception:  # noqa: S112 - observability must not break payments
                continue
