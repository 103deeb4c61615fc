"""OpenTelemetry metrics for the pipeline (the `otel` extra).

Use it as `Connector(events=[OpenTelemetryHook()])`.

Instruments (all with a `service` attribute):
- `nexus.calls` counter, by `outcome` (the status class like `2xx`, or the error type);
- `nexus.call.duration` histogram in seconds, attempts and backoff included;
- `nexus.attempts` counter, by `outcome`;
- `nexus.rejections` counter, by `reason` (`circuit_open`, `rate_limited`, `retry_budget`), and
  `shadow` rejections that shadow mode let through;
- `nexus.circuit.transitions` counter, by `state`; `nexus.idempotency.replays` counter;
- `nexus.concurrency.limit_changes` counter, by `reason` (`throttled`, `slow`, `recovered`), and
  `nexus.concurrency.limit`, a gauge of each adaptive limit's last reported value (concurrency
  limit refusals count in `nexus.rejections` as `concurrency_limit`); `nexus.concurrency.in_use`,
  an up-down counter of the slots this process's attempts hold (summed over workers: the
  fleet's), `nexus.concurrency.waits`, a counter of attempts that queued for a slot, and
  `nexus.concurrency.wait`, a histogram of that queueing time in seconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from ._events import (
    AdmissionRejected,
    AttemptFinished,
    CallFinished,
    CircuitStateChanged,
    ConcurrencyLimitChanged,
    ConcurrencySlotHeld,
    ConcurrencySlotReleased,
    Event,
    IdempotentReplay,
    ShadowWouldBlock,
)

__all__ = ["OpenTelemetryHook"]


def _outcome(status: int | None, error: str | None) -> str:
    if error is not None:
        return error
    return f"{(status or 0) // 100}xx"


class OpenTelemetryHook:
    """An `EventHook` that records pipeline events as OpenTelemetry metrics."""

    def __init__(self, meter_provider: Any = None, *, name: str = "nexus_connector_async") -> None:
        meter = (meter_provider or metrics.get_meter_provider()).get_meter(name)
        self._calls = meter.create_counter("nexus.calls", description="calls by outcome")
        self._duration = meter.create_histogram(
            "nexus.call.duration", unit="s", description="call duration, retries included"
        )
        self._attempts = meter.create_counter("nexus.attempts", description="HTTP attempts")
        self._rejections = meter.create_counter(
            "nexus.rejections", description="attempts refused by breaker, limiter or budget"
        )
        self._transitions = meter.create_counter(
            "nexus.circuit.transitions", description="circuit breaker state changes"
        )
        self._replays = meter.create_counter(
            "nexus.idempotency.replays", description="stored responses replayed"
        )
        self._limit_changes = meter.create_counter(
            "nexus.concurrency.limit_changes", description="adaptive concurrency limit moves"
        )
        self._in_use = meter.create_up_down_counter(
            "nexus.concurrency.in_use", description="concurrency slots held by attempts"
        )
        self._waits = meter.create_counter(
            "nexus.concurrency.waits", description="attempts that queued for a concurrency slot"
        )
        self._wait = meter.create_histogram(
            "nexus.concurrency.wait", unit="s", description="time queued for a concurrency slot"
        )
        self._limits: dict[tuple[str, str | None], int] = {}
        meter.create_observable_gauge(
            "nexus.concurrency.limit",
            callbacks=[self._observe_limits],
            description="the adaptive concurrency limit last reported, per service (and tenant)",
        )

    def _observe_limits(self, options: CallbackOptions) -> Iterable[Observation]:
        for (service, tenant), limit in list(self._limits.items()):
            attrs = (
                {"service": service} if tenant is None else {"service": service, "tenant": tenant}
            )
            yield Observation(limit, attrs)

    def __call__(self, event: Event) -> None:
        if isinstance(event, CallFinished):
            attrs = {"service": event.service, "outcome": _outcome(event.status, event.error)}
            self._calls.add(1, attrs)
            self._duration.record(event.duration, {"service": event.service})
        elif isinstance(event, AttemptFinished):
            outcome = _outcome(event.status, event.error)
            self._attempts.add(1, {"service": event.service, "outcome": outcome})
        elif isinstance(event, AdmissionRejected):
            self._rejections.add(1, {"service": event.service, "reason": event.reason})
        elif isinstance(event, ShadowWouldBlock):
            attrs = {"service": event.service, "reason": f"shadow_{event.reason}"}
            self._rejections.add(1, attrs)
        elif isinstance(event, CircuitStateChanged):
            self._transitions.add(1, {"service": event.service, "state": event.state})
        elif isinstance(event, IdempotentReplay):
            self._replays.add(1, {"service": event.service})
        elif isinstance(event, ConcurrencyLimitChanged):
            self._limit_changes.add(1, {"service": event.service, "reason": event.reason})
            self._limits[(event.service, event.tenant)] = event.limit
        elif isinstance(event, ConcurrencySlotHeld):
            attrs = {"service": event.service}
            self._in_use.add(1, attrs)
            if event.waited > 0.0:
                self._waits.add(1, attrs)
                self._wait.record(event.waited, attrs)
        elif isinstance(event, ConcurrencySlotReleased):
            self._in_use.add(-1, {"service": event.service})
