"""Typed events reach every hook; structlog and OpenTelemetry are hooks like any other."""

from __future__ import annotations

import asyncio
import logging

import pytest
import structlog
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from nexus_connector_async import (
    AdmissionRejected,
    CallFinished,
    CircuitBreakerConfig,
    CircuitOpenError,
    CircuitStateChanged,
    ConcurrencyLimit,
    ConcurrencyLimitChanged,
    ConcurrencySlotHeld,
    ConcurrencySlotReleased,
    Connector,
    Endpoint,
    Event,
    HttpStatusError,
    OAuth2CredentialProvider,
    Response,
    RetryPolicy,
    TokenRefreshed,
)
from nexus_connector_async.otel import OpenTelemetryHook
from nexus_connector_async.testing import FakeClock, MockTransport, RecordedRequest

from ._stub import Stub, status


def endpoint(stub: Stub) -> Endpoint:
    return (
        Endpoint.create(stub.url(), "GET")
        .with_retry(RetryPolicy(max_attempts=2, base_delay=0.0, max_delay=0.0))
        .with_circuit_breaker(CircuitBreakerConfig(failure_threshold=2))
    )


async def test_hooks_receive_attempts_outcomes_replays_and_breaker_transitions(
    stub: Stub,
) -> None:
    seen: list[Event] = []
    stub.queue(status(500), status(500))
    async with Connector(clock=FakeClock(), events=[seen.append]) as c:
        with pytest.raises(HttpStatusError):
            await c.execute("vendor", endpoint(stub))
        with pytest.raises(CircuitOpenError):
            await c.execute("vendor", endpoint(stub))
        post = Endpoint.create(stub.url(), "POST")
        await c.execute("other", post, {"a": 1}, idempotency_key="k")
        await c.execute("other", post, {"a": 1}, idempotency_key="k")
    kinds = [type(e).__name__ for e in seen]
    assert kinds.count("AttemptFinished") == 3
    assert CircuitStateChanged("vendor", "open") in seen
    assert kinds.count("IdempotentReplay") == 1
    finished = [e for e in seen if isinstance(e, CallFinished)]
    assert [(e.service, e.status, e.attempts) for e in finished] == [
        ("vendor", 500, 2),
        ("other", 200, 1),
    ]


async def test_a_failing_hook_never_breaks_a_call(stub: Stub) -> None:
    def broken(event: Event) -> None:
        raise RuntimeError("observability bug")

    async with Connector(events=[broken]) as c:
        assert (await c.execute("vendor", Endpoint.create(stub.url(), "GET"))).status == 200


async def test_opentelemetry_hook_counts_calls_rejections_and_transitions(stub: Stub) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    stub.queue(status(500), status(500))
    async with Connector(clock=FakeClock(), events=[OpenTelemetryHook(provider)]) as c:
        with pytest.raises(HttpStatusError):
            await c.execute("vendor", endpoint(stub))
        with pytest.raises(CircuitOpenError):
            await c.execute("vendor", endpoint(stub))
        await c.execute("ok", Endpoint.create(stub.url(), "GET"))
    points: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for p in metric.data.data_points:
                    value = getattr(p, "value", None) or getattr(p, "count", 0)
                    points[(metric.name, tuple(sorted(p.attributes.items())))] = value
    assert points[("nexus.calls", (("outcome", "5xx"), ("service", "vendor")))] == 1
    assert points[("nexus.calls", (("outcome", "2xx"), ("service", "ok")))] == 1
    assert points[("nexus.attempts", (("outcome", "5xx"), ("service", "vendor")))] == 2
    assert points[("nexus.rejections", (("reason", "circuit_open"), ("service", "vendor")))] == 1
    assert points[("nexus.circuit.transitions", (("service", "vendor"), ("state", "open")))] == 1
    assert points[("nexus.call.duration", (("service", "vendor"),))] == 1


async def test_a_token_refresh_reaches_the_connectors_hooks(stub: Stub) -> None:
    def token_endpoint(request: RecordedRequest) -> Response:
        return Response(200, {"Content-Type": "application/json"}, b'{"access_token": "t1"}')

    provider = OAuth2CredentialProvider(
        "https://auth.example.test/token",
        "client-1",
        "secret-1",
        http=MockTransport(token_endpoint),
    )
    seen: list[Event] = []
    async with Connector(credentials=provider, events=[seen.append]) as c:
        await c.execute("vendor", Endpoint.create(stub.url(), "GET"), tenant_id="t")
    assert TokenRefreshed("vendor", "t") in seen
    assert stub.requests[0]["headers"]["Authorization"] == "Bearer t1"


async def test_a_quiet_logger_still_gets_failures_and_hooks_still_get_everything(
    stub: Stub,
) -> None:
    lines: list[str] = []

    def keep(_: object, __: str, event_dict: dict[str, object]) -> str:
        lines.append(str(event_dict["event"]))
        return ""

    quiet = structlog.wrap_logger(
        structlog.ReturnLogger(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        processors=[keep],
    )
    seen: list[Event] = []
    stub.queue(status(200), status(503))
    ep = Endpoint.create(stub.url(), "GET").with_retry(RetryPolicy(max_attempts=1))
    async with Connector(logger=quiet) as c:
        await c.execute("vendor", ep)
        with pytest.raises(HttpStatusError):
            await c.execute("vendor", ep)
    assert lines == ["nexus.call.failed"]  # info and debug dropped; the 503 is a warning
    async with Connector(logger=quiet, events=[seen.append]) as c:
        await c.execute("vendor", ep)
    assert [type(e).__name__ for e in seen] == ["AttemptFinished", "CallFinished"]


async def test_every_breaker_transition_is_an_event_open_half_open_closed(stub: Stub) -> None:
    clock = FakeClock()
    seen: list[Event] = []
    stub.queue(status(500), status(500))
    async with Connector(clock=clock, events=[seen.append]) as c:
        with pytest.raises(HttpStatusError):
            await c.execute("vendor", endpoint(stub))  # two failures open it
        clock.advance(30.0)
        assert (await c.execute("vendor", endpoint(stub))).status == 200  # the probe closes it
    transitions = [e.state for e in seen if isinstance(e, CircuitStateChanged)]
    assert transitions == ["open", "half_open", "closed"]


def test_opentelemetry_hook_reports_adaptive_limit_changes_and_the_current_limit() -> None:
    reader = InMemoryMetricReader()
    hook = OpenTelemetryHook(MeterProvider(metric_readers=[reader]))
    hook(ConcurrencyLimitChanged("twilio", None, 7, "throttled"))
    hook(ConcurrencyLimitChanged("twilio", None, 4, "throttled"))
    hook(ConcurrencyLimitChanged("twilio", None, 5, "recovered"))
    hook(AdmissionRejected("twilio", "concurrency_limit", 0.5, False))
    data = reader.get_metrics_data()
    assert data is not None
    points = {
        (metric.name, tuple(sorted(p.attributes.items()))): p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        for p in metric.data.data_points
    }
    changes = "nexus.concurrency.limit_changes"
    assert points[(changes, (("reason", "throttled"), ("service", "twilio")))].value == 2
    assert points[(changes, (("reason", "recovered"), ("service", "twilio")))].value == 1
    assert points[("nexus.concurrency.limit", (("service", "twilio"),))].value == 5
    rejected = (("reason", "concurrency_limit"), ("service", "twilio"))
    assert points[("nexus.rejections", rejected)].value == 1


async def test_slot_events_and_metrics_count_slots_in_use_and_waits() -> None:
    """A second attempt queues behind the one holding the only slot: two held, one wait."""
    gate = asyncio.Event()

    async def handler(request: RecordedRequest) -> Response:
        await gate.wait()
        return Response(200, {}, b"{}")

    transport = MockTransport(handler)
    seen: list[Event] = []
    reader = InMemoryMetricReader()
    hook = OpenTelemetryHook(MeterProvider(metric_readers=[reader]))
    ep = Endpoint.create("http://127.0.0.1:1/x", "GET").with_concurrency_limit(
        ConcurrencyLimit(1, max_wait=5.0)
    )
    async with Connector(http=transport, events=[seen.append, hook]) as c:
        first = asyncio.ensure_future(c.execute("vendor", ep))
        async with asyncio.timeout(5):
            while not transport.requests:  # the first attempt is at the vendor, holding the slot
                await asyncio.sleep(0)
        second = asyncio.ensure_future(c.execute("vendor", ep))
        for _ in range(20):  # let it be admitted and queue for the slot (one event loop, no I/O)
            await asyncio.sleep(0)
        assert len(transport.requests) == 1
        gate.set()
        await asyncio.gather(first, second)
    held = [e for e in seen if isinstance(e, ConcurrencySlotHeld)]
    released = [e for e in seen if isinstance(e, ConcurrencySlotReleased)]
    assert [e.waited == 0.0 for e in held] == [True, False]
    assert held[1].waited > 0.0
    assert released == [ConcurrencySlotReleased("vendor", None)] * 2
    data = reader.get_metrics_data()
    assert data is not None
    points = {
        metric.name: p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        for p in metric.data.data_points
    }
    assert points["nexus.concurrency.in_use"].value == 0  # +2 -2
    assert points["nexus.concurrency.waits"].value == 1
    assert points["nexus.concurrency.wait"].count == 1
