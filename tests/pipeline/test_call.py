"""`Connector.call` guards any awaitable factory with the same breaker, limiter and retries."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from nexus_connector_async import (
    CircuitBreakerConfig,
    CircuitOpenError,
    ConnectionFailed,
    Connector,
    ConnectorError,
    RateLimitConfig,
    RateLimitExceeded,
    RequestTimeout,
    RetryPolicy,
)
from nexus_connector_async.testing import FakeClock

FAST = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0)


class Throttled(ConnectorError):
    throttled = True
    retry_after = 0.0


class Receipt(msgspec.Struct):
    id: str
    segments: int


class Flaky:
    """Fails with the given exceptions first, then returns its value; counts calls."""

    def __init__(self, *failures: BaseException, value: object = "ok") -> None:
        self.failures = list(failures)
        self.value = value
        self.calls = 0

    async def __call__(self) -> object:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return self.value


async def test_an_unsent_failure_is_retried_even_when_not_idempotent() -> None:
    fn = Flaky(ConnectionFailed(sent=False), ConnectionFailed(sent=False))
    async with Connector() as c:
        assert await c.call("sns", "publish", fn, retry=FAST) == "ok"
    assert fn.calls == 3


async def test_a_failure_after_sending_is_not_retried_unless_idempotent() -> None:
    async with Connector() as c:
        fn = Flaky(RequestTimeout())
        with pytest.raises(RequestTimeout):
            await c.call("sns", "publish", fn, retry=FAST)
        assert fn.calls == 1
        fn = Flaky(RequestTimeout())
        assert await c.call("sns", "get_attrs", fn, retry=FAST, idempotent=True) == "ok"
        assert fn.calls == 2


async def test_throttling_is_retried_and_does_not_count_against_the_breaker() -> None:
    fn = Flaky(Throttled(), Throttled())
    breaker = CircuitBreakerConfig(failure_threshold=1)
    async with Connector() as c:
        assert await c.call("sns", "publish", fn, retry=FAST, circuit_breaker=breaker) == "ok"
        assert c.backend.breaker_state("sns") == "closed"  # type: ignore[attr-defined]
    assert fn.calls == 3


async def test_transient_failures_open_the_breaker_for_guarded_calls_too() -> None:
    breaker = CircuitBreakerConfig(failure_threshold=2)
    async with Connector() as c:
        for _ in range(2):
            with pytest.raises(ConnectionFailed):
                await c.call("sns", "publish", Flaky(ConnectionFailed()), circuit_breaker=breaker)
        fn = Flaky()
        with pytest.raises(CircuitOpenError):
            await c.call("sns", "publish", fn, circuit_breaker=breaker)
        assert fn.calls == 0


async def test_other_exceptions_pass_through_untouched_and_are_not_retried() -> None:
    fn = Flaky(KeyError("bug"))
    async with Connector() as c:
        with pytest.raises(KeyError):
            await c.call("sns", "publish", fn, retry=FAST)
    assert fn.calls == 1


async def test_a_slow_factory_times_out() -> None:
    async def never() -> None:
        await asyncio.Event().wait()

    async with Connector() as c:
        with pytest.raises(RequestTimeout):
            await c.call("sns", "publish", never, timeout=0.05)


async def test_the_rate_limit_applies_to_guarded_calls() -> None:
    clock = FakeClock()
    async with Connector(clock=clock) as c:
        limit = RateLimitConfig.per_second(2)
        for _ in range(2):
            await c.call("sns", "publish", Flaky(), rate_limit=limit)
        with pytest.raises(RateLimitExceeded):
            await c.call("sns", "publish", Flaky(), rate_limit=limit)


async def test_an_idempotent_guarded_call_replays_its_typed_result() -> None:
    fn = Flaky(value=Receipt("msg-1", 2))
    async with Connector() as c:
        first = await c.call(
            "sns",
            "publish",
            fn,
            idempotency_key="k",
            result_type=Receipt,
            fingerprint_data={"to": "+14155550100"},
        )
        again = await c.call(
            "sns",
            "publish",
            fn,
            idempotency_key="k",
            result_type=Receipt,
            fingerprint_data={"to": "+14155550100"},
        )
    assert first == again == Receipt("msg-1", 2)
    assert fn.calls == 1
