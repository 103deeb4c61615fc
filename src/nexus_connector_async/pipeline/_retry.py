"""The retry loop: send an attempt, decide whether to go again, and when; end the call.

An attempt goes again only if its outcome is retryable, attempts are left, sending it again
is safe (the call is resend-safe, or the vendor was untouched), and it can finish before the
call's deadline. A vendor's 429 with Retry-After pauses the service for every worker.
"""

from __future__ import annotations

from typing import Any

from .._errors import ConnectorError, RequestTimeout
from .._events import BackendWriteFailed, CallFinished, RetryScheduled
from .._models import Response
from .._retry import backoff
from ._call import Call, Send, Settings, Wiring
from ._outcome import UNTOUCHED, Outcome

__all__ = ["Retry", "is_last"]


class Retry:
    """Runs a call's attempts until one is final; returns its value or raises its error."""

    __slots__ = ("_settings", "_wiring")

    def __init__(self, wiring: Wiring, settings: Settings) -> None:
        self._wiring = wiring
        self._settings = settings  # `max_shared_pause` caps the shared pause of a 429

    async def run(self, send: Send, call: Call) -> Any:
        """The loop: send (admitted), and go again after a delay while that is allowed."""
        wiring = self._wiring
        number = 0
        last: Outcome | None = None
        while True:
            number += 1
            outcome = await send(call, number, last is not None)
            if outcome is None:  # a retry refused by breaker, limiter or budget: last one stands
                assert last is not None
                return self.finish(call, last, number - 1)
            if outcome.retry_after is not None and outcome.status == 429:
                await self._pause(call, outcome.retry_after)
            if not outcome.retryable:  # final (every success): no backoff to work out
                return self.finish(call, outcome, number)
            delay = self.delay(call, outcome, number)
            if delay is None:
                return self.finish(call, outcome, number)
            wiring.events.emit(RetryScheduled(call.service, call.label, number, delay))
            last = outcome
            if delay > 0:
                await wiring.clock.sleep(delay)

    async def _pause(self, call: Call, retry_after: float) -> None:
        """Shared backpressure: every worker holds off this service until then."""
        wiring = self._wiring
        try:
            pause = min(retry_after, self._settings.max_shared_pause)
            await wiring.backend.pause(call.service, pause)
        except ConnectorError as exc:
            wiring.events.emit(BackendWriteFailed(call.service, "pause", type(exc).__name__))

    def delay(self, call: Call, outcome: Outcome, number: int) -> float | None:
        """Seconds to wait before the next attempt, or None when this outcome is final."""
        policy = call.retry
        if is_last(call, outcome, number):
            return None
        delay = backoff(policy, number)
        if outcome.retry_after is not None:
            delay = max(delay, min(outcome.retry_after, policy.max_delay))
        if (
            call.deadline_at is not None
            and self._wiring.clock.monotonic() + delay >= call.deadline_at
        ):
            return None  # a retry that cannot finish before the deadline is not started
        return delay

    def finish(self, call: Call, outcome: Outcome, attempts: int) -> Any:
        """End the call with `outcome`: report it, then return its value or raise its error."""
        wiring = self._wiring
        value = outcome.value
        status = None
        if isinstance(value, Response):
            value.attempts = attempts
            status = value.status
        error = outcome.error
        if wiring.per_call() or error is not None or (status or 0) >= 500:
            wiring.events.emit(
                CallFinished(
                    call.service,
                    call.tenant,
                    call.label,
                    status,
                    type(error).__name__ if error is not None else None,
                    attempts,
                    wiring.clock.monotonic() - call.started,
                )
            )
        if error is not None:
            if isinstance(error, RequestTimeout):  # say what the caller waited for, in all
                error.attempts = attempts
                error.elapsed = wiring.clock.monotonic() - call.started
            raise error
        return value


def is_last(call: Call, outcome: Outcome, number: int) -> bool:
    """Whether no attempt follows this one, whatever the backoff and the deadline: the outcome
    is final, the attempts are used up, or it may have reached a vendor that cannot
    deduplicate it (the gate leaves such an attempt's breaker record to the key's settle)."""
    if not outcome.retryable or number >= call.retry.max_attempts:
        return True
    return not (call.resend_safe or outcome.vendor == UNTOUCHED)
