"""The structlog hook skips building lines that a filtering logger would drop anyway."""

from __future__ import annotations

import logging

import structlog
from structlog.testing import LogCapture

from nexus_connector_async import CallFinished, CircuitStateChanged
from nexus_connector_async._events import StructlogHook


def _hook(min_level: int) -> tuple[StructlogHook, LogCapture]:
    capture = LogCapture()
    logger = structlog.wrap_logger(
        structlog.PrintLogger(),
        wrapper_class=structlog.make_filtering_bound_logger(min_level),
        processors=[capture],
    )
    return StructlogHook(logger), capture


def test_a_warning_level_logger_gets_failures_and_state_changes_but_no_completions() -> None:
    hook, capture = _hook(logging.WARNING)
    hook(CallFinished("stripe", None, "GET https://x", 200, None, 1, 0.0123))
    hook(CallFinished("stripe", None, "GET https://x", 503, "HttpStatusError", 3, 0.5))
    hook(CircuitStateChanged("stripe", "open"))
    events = [(e["event"], e["log_level"]) for e in capture.entries]
    assert events == [("nexus.call.failed", "warning"), ("nexus.circuit.state_changed", "warning")]
    assert capture.entries[0]["duration_ms"] == 500.0
    assert capture.entries[0]["attempts"] == 3


def test_an_info_level_logger_still_gets_completed_calls_with_their_fields() -> None:
    hook, capture = _hook(logging.INFO)
    hook(CallFinished("stripe", "t1", "GET https://x", 200, None, 1, 0.0123))
    (entry,) = capture.entries
    assert entry["event"] == "nexus.call.completed"
    assert entry["duration_ms"] == 12.3
    assert entry["tenant"] == "t1"
