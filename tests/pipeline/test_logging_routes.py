"""The library logs like httpx or redis-py: silent by default, stdlib `logging` until the app
configures structlog, then structlog's pipeline (even when configured after the Connector)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog
from structlog.testing import capture_logs

from nexus_connector_async import Connector, Endpoint, RetryPolicy
from nexus_connector_async._logging import LOGGER_NAME, get_logger

from ._stub import Stub, status

CALLS = 200


@pytest.fixture(autouse=True)
def unconfigured_structlog() -> Iterator[None]:
    """Each test starts as a fresh app: structlog untouched (capture_logs configures it)."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


async def _calls(stub: Stub, n: int = CALLS) -> None:
    async with Connector() as connector:
        for _ in range(n):
            await connector.execute("vendor", Endpoint.create(stub.url(), "GET"))


async def test_a_default_connector_prints_nothing_for_200_successful_calls(
    stub: Stub, capfd: pytest.CaptureFixture[str]
) -> None:
    assert not structlog.is_configured()
    await _calls(stub)
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


async def test_a_default_connector_prints_no_warning_either(
    stub: Stub, capfd: pytest.CaptureFixture[str]
) -> None:
    """Failures go to stdlib WARNING; with no logging configured nothing reaches stderr."""
    stub.queue(status(503), status(503))
    endpoint = Endpoint.create(stub.url(), "GET").with_retry(
        RetryPolicy(max_attempts=2, base_delay=0.0, max_delay=0.0)
    )
    async with Connector() as connector:
        response = await connector.execute("vendor", endpoint, raise_for_status=False)
    assert response.status == 503
    assert capfd.readouterr() == ("", "")


async def test_basic_config_info_shows_one_audit_line_per_call_through_stdlib(
    stub: Stub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    await _calls(stub)
    records = [r for r in caplog.records if r.name == LOGGER_NAME]
    assert len(records) == CALLS
    assert {r.levelno for r in records} == {logging.INFO}
    first = records[0]
    assert first.getMessage().startswith("nexus.call.completed service=vendor")
    assert "status=200" in first.getMessage()
    assert first.event == "nexus.call.completed"  # type: ignore[attr-defined]
    assert first.event_fields["attempts"] == 1  # type: ignore[attr-defined]


async def test_debug_adds_the_attempt_lines(stub: Stub, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER_NAME)
    await _calls(stub, 3)
    events = [r.event for r in caplog.records if r.name == LOGGER_NAME]  # type: ignore[attr-defined]
    assert events == ["nexus.http.attempt", "nexus.call.completed"] * 3


async def test_retries_and_failures_log_at_warning(
    stub: Stub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER_NAME)
    stub.queue(status(503), status(503))
    endpoint = Endpoint.create(stub.url(), "GET").with_retry(
        RetryPolicy(max_attempts=2, base_delay=0.0, max_delay=0.0)
    )
    async with Connector() as connector:
        await connector.execute("vendor", endpoint, raise_for_status=False)
    levels = {r.event: r.levelno for r in caplog.records}  # type: ignore[attr-defined]
    assert levels == {"nexus.http.retry": logging.WARNING, "nexus.call.failed": logging.WARNING}


async def test_structlog_configured_after_the_connector_was_built_takes_the_lines(
    stub: Stub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER_NAME)
    async with Connector() as connector:
        await connector.execute("vendor", Endpoint.create(stub.url(), "GET"))
        assert len(caplog.records) == 2  # stdlib while structlog is not configured
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
        with capture_logs() as logs:
            for _ in range(CALLS):
                await connector.execute("vendor", Endpoint.create(stub.url(), "GET"))
    assert len(caplog.records) == 2  # nothing more went to stdlib
    assert [e["event"] for e in logs] == ["nexus.call.completed"] * CALLS
    assert logs[0]["service"] == "vendor"
    assert logs[0]["log_level"] == "info"


async def test_a_reconfigured_level_applies_to_an_existing_connector(stub: Stub) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    async with Connector() as connector:
        with capture_logs() as quiet:
            await connector.execute("vendor", Endpoint.create(stub.url(), "GET"))
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
        with capture_logs() as loud:
            await connector.execute("vendor", Endpoint.create(stub.url(), "GET"))
    assert quiet == []
    assert [e["event"] for e in loud] == ["nexus.http.attempt", "nexus.call.completed"]


async def test_structlog_routed_to_stdlib_follows_the_stdlib_level(
    stub: Stub, caplog: pytest.LogCaptureFixture
) -> None:
    # A common app set-up: structlog's stdlib wrapper, whose level check is `isEnabledFor`.
    structlog.configure(
        processors=[structlog.stdlib.render_to_log_kwargs],
        wrapper_class=structlog.stdlib.BoundLogger,
        logger_factory=structlog.stdlib.LoggerFactory(),
    )
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    await _calls(stub, 3)
    assert [r.getMessage() for r in caplog.records] == ["nexus.call.completed"] * 3
    caplog.clear()
    caplog.set_level(logging.DEBUG, logger=LOGGER_NAME)  # the same logger, now at DEBUG
    await _calls(stub, 1)
    assert [r.getMessage() for r in caplog.records] == [
        "nexus.http.attempt",
        "nexus.call.completed",
    ]


def test_stdlib_lines_mask_secret_fields_and_values(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    get_logger().bind(tenant="t1").info(
        "nexus.test", api_key="sk_live_abc123", note="Bearer abc.def", status=200
    )
    (record,) = caplog.records
    message = record.getMessage()
    assert "sk_live_abc123" not in message
    assert "abc.def" not in message
    assert message.startswith("nexus.test tenant=t1 api_key=*** note='Bearer ***' status=200")


def test_a_silent_logger_is_asked_once_and_builds_nothing() -> None:
    log = get_logger()
    assert not log.is_enabled_for(logging.INFO)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    assert log.is_enabled_for(logging.INFO)
    assert not log.is_enabled_for(logging.DEBUG)


def test_redact_processor_masks_in_place_including_str_subclasses_and_nested_values() -> None:
    from nexus_connector_async import redact_processor  # noqa: PLC0415

    class Text(str):
        pass

    clean = "GET https://api.stripe.com/v1/charges"
    event = {
        "call": clean,
        "note": Text("key sk_live_abcdef123"),
        "client_secret": "pi_1_secret_x",
        "body": {"card": {"number": "4242424242424242"}, "items": ["Bearer abc.def"]},
        "status": 200,
    }
    for _ in range(2):  # the second pass goes through the caches of clean strings and names
        out = redact_processor(None, "info", dict(event))
        assert out["call"] is clean
        assert out["note"] == "key ***"
        assert out["client_secret"] == "***"
        assert out["body"] == {"card": "***", "items": ["Bearer ***"]}
        assert out["status"] == 200
