"""Admission: each attempt asks the breaker, the limiter and the retry budget first.

The backend answers all three (and the concurrency slot) in one atomic operation. An admitted
attempt holds what it was granted (a half-open probe permit, a slot) until its outcome is
recorded with the breaker, and gives it back on every way out.
"""

from __future__ import annotations

from collections.abc import Iterable

from .._config import ConcurrencyLimit
from .._errors import CircuitOpenError, ConcurrencyLimitExceeded, ConnectorError, RateLimitExceeded
from .._events import (
    AdmissionRejected,
    AttemptFinished,
    BackendWriteFailed,
    CircuitStateChanged,
    ShadowWouldBlock,
)
from ..backends._base import (
    ADMITTED,
    BUDGET_EXHAUSTED,
    CIRCUIT_OPEN,
    CONCURRENCY_LIMITED,
    RATE_LIMITED,
    Admission,
    AdmitAsk,
)
from ..backends._slots import Slot, SlotAsk
from ._call import Attempt, Call, Held, Wiring
from ._concurrency import Slots
from ._outcome import Outcome
from ._retry import is_last

__all__ = ["Gate"]

_REASONS = {
    CIRCUIT_OPEN: "circuit_open",
    RATE_LIMITED: "rate_limited",
    BUDGET_EXHAUSTED: "retry_budget",
    CONCURRENCY_LIMITED: "concurrency_limit",
}

_NO_SLOT: dict[str, SlotAsk] = {}
_new = tuple.__new__


class Gate:
    """Admits attempts, runs them, and feeds their outcome to the breaker."""

    __slots__ = ("_shadow", "_slots", "_wiring")

    def __init__(self, wiring: Wiring, slots: Slots, shadow_services: Iterable[str]) -> None:
        self._wiring = wiring
        self._slots = slots
        self._shadow = frozenset(shadow_services)

    async def attempt(
        self, attempt: Attempt, call: Call, number: int, is_retry: bool
    ) -> Outcome | None:
        """One admitted attempt: admit, run `attempt`, record its outcome, report it.

        A refused first attempt raises; a refused retry returns None, so the retry loop
        surfaces the last real outcome instead.
        """
        wiring = self._wiring
        progress = call.progress
        if progress is not None and progress.admitted is not None and not is_retry:
            adm, progress.admitted = progress.admitted, None  # decided with the key's claim
        else:
            # Inline, not a coroutine of its own: one frame fewer on the hot path.
            ask = self.ask(call)
            try:
                adm = await wiring.backend.admit(
                    call.service,
                    call.tenant,
                    ask.breaker,
                    ask.limit,
                    probe_lease=ask.probe_lease,
                    budget=ask.budget,
                    is_retry=is_retry,
                    shadow=ask.shadow,
                    # `slot=` only when asked for: a backend of its own without slots works.
                    **(_NO_SLOT if ask.slot is None else {"slot": ask.slot}),
                )
            except ConnectorError as exc:
                if not is_retry:
                    raise
                # A retry the backend cannot admit: the vendor's last answer stands (rule 16).
                wiring.events.emit(BackendWriteFailed(call.service, "admit", type(exc).__name__))
                return None
        if adm.half_opened or adm.would_block != ADMITTED or adm.reason != ADMITTED or adm.wait > 0:
            if self._unusual(call, adm, is_retry) is None:
                return None
            if adm.wait > 0 and await self._wait_for_token(call, adm, is_retry) is None:
                return None
        clock = wiring.clock
        per_attempt = wiring.per_attempt()  # asked once: logging may be configured meanwhile
        started = clock.monotonic() if per_attempt else 0.0
        held = None
        if adm.slot:
            held = Held(Slot(adm.slot, 0.0, adm.slot_generation), clock.monotonic())
        try:
            outcome = await attempt(
                call._replace(probe=adm.probe, held=held) if adm.probe or held else call
            )
        except BaseException:
            if held is not None and not held.released:  # never got to the request
                self._slots.release(call, held)
            if adm.probe:  # cancelled mid-flight: give the probe permit back
                await wiring.tasks.cleanup(wiring.backend.release_probe(call.service, adm.probe))
            raise
        if held is not None and not held.released:
            self._slots.release(call, held)
        if call.progress is not None:
            call.progress.last = outcome
        if outcome.failure or not adm.clean or adm.probe:
            # A keyed call's last attempt (not a 401 the auth flow resends at once): recorded
            # with the key's settle. Any other attempt here, before the next one is admitted.
            if progress is not None and outcome.reauth is None and is_last(call, outcome, number):
                progress.unrecorded = (outcome, adm.probe)
            else:
                await self.record(call, outcome, adm.probe)
        if per_attempt:
            error = outcome.error
            wiring.events.emit(
                AttemptFinished(
                    call.service,
                    call.tenant,
                    call.label,
                    number,
                    outcome.status,
                    type(error).__name__ if error else None,
                    clock.monotonic() - started,
                )
            )
        return outcome

    def ask(self, call: Call) -> AdmitAsk:
        """The admission an attempt of `call` asks for (a backend may decide the first one
        together with the idempotency claim: `ClaimAdmitStore`)."""
        shadow = call.service in self._shadow
        limit = call.concurrency
        # Every field given: built without NamedTuple's generated `__new__` (the hot path).
        return _new(
            AdmitAsk,
            (
                call.breaker,
                call.limit,
                call.probe_lease,
                call.retry if call.retry.budget_ratio is not None else None,
                shadow,
                None if limit is None or shadow else _slot_ask(call, limit),
            ),
        )

    async def discard(self, call: Call, adm: Admission) -> None:
        """Give back what an admission no attempt used holds (its probe permit and slot)."""
        if adm.slot:
            self._slots.release(call, Held(Slot(adm.slot, 0.0, adm.slot_generation), 0.0))
        if adm.probe:
            await self._wiring.backend.release_probe(call.service, adm.probe)

    async def record(self, call: Call, outcome: Outcome, probe: str) -> None:
        """Feed the breaker. Cancelled meanwhile, the record still lands (and frees a probe
        permit). A failed record never costs the caller the vendor's answer (rule 16).

        A keyed call's last attempt is recorded by the idempotency layer, together with the
        key's settle (`Progress.unrecorded`): the two writes share one round trip."""
        wiring = self._wiring
        try:
            state = await wiring.tasks.shielded(
                wiring.backend.record(
                    call.service, call.breaker, success=not outcome.failure, probe=probe
                )
            )
        except ConnectorError as exc:
            wiring.events.emit(BackendWriteFailed(call.service, "record", type(exc).__name__))
            state = None
        if state is not None:
            wiring.events.emit(CircuitStateChanged(call.service, state))

    def _unusual(self, call: Call, adm: Admission, is_retry: bool) -> Admission | None:
        """Report a half-open move or a shadow refusal; a refusal raises for a first attempt
        and gives None for a retry (its last outcome stands)."""
        events = self._wiring.events
        if adm.half_opened:  # reported once fleet-wide: only one admission makes the move
            events.emit(CircuitStateChanged(call.service, "half_open"))
        if adm.would_block != ADMITTED:
            events.emit(ShadowWouldBlock(call.service, _REASONS[adm.would_block]))
        if adm.reason != ADMITTED:
            self._refused(call, adm, is_retry)  # raises for a first attempt
            return None
        return adm

    def _refused(self, call: Call, adm: Admission, is_retry: bool) -> None:
        """Report a refusal; raise it for a first attempt (a retry's last outcome stands)."""
        self._wiring.events.emit(
            AdmissionRejected(call.service, _REASONS[adm.reason], adm.wait, is_retry)
        )
        if is_retry:
            return
        if adm.reason == CIRCUIT_OPEN:
            raise CircuitOpenError(f"circuit open for {call.service!r}", retry_after=adm.wait)
        if adm.reason == CONCURRENCY_LIMITED:
            raise ConcurrencyLimitExceeded(
                f"concurrency limit of {call.service!r} reached", retry_after=adm.wait
            )
        raise RateLimitExceeded(f"rate limit exceeded for {call.service!r}", retry_after=adm.wait)

    async def _wait_for_token(self, call: Call, adm: Admission, is_retry: bool) -> Admission | None:
        """Sleep until the reserved token is due, unless that ends after the call's deadline."""
        wiring = self._wiring
        backend = wiring.backend
        if call.deadline_at is not None and wiring.clock.monotonic() + adm.wait > call.deadline_at:
            if adm.probe:
                await backend.release_probe(call.service, adm.probe)
            if is_retry:
                return None
            raise RateLimitExceeded(
                f"no token for {call.service!r} before the deadline", retry_after=adm.wait
            )
        try:
            await wiring.clock.sleep(adm.wait)
        except BaseException:
            if adm.probe:  # cancelled while waiting for a token: give the probe back
                await wiring.tasks.cleanup(backend.release_probe(call.service, adm.probe))
            raise
        return adm


def _slot_ask(call: Call, limit: ConcurrencyLimit) -> SlotAsk:
    """The slot to take with the admission: the limit's scope, lease and fail-fast."""
    return SlotAsk(
        call.tenant if limit.scope == "tenant" else None,
        limit.max_in_flight,
        limit.lease if limit.lease is not None else call.probe_lease,
        limit.max_wait <= 0,
    )
