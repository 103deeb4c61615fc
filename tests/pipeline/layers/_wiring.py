"""A layer's wiring for unit tests: memory backend, fake clock, events collected in a list."""

from __future__ import annotations

from typing import Any

from nexus_connector_async import (
    CircuitBreakerConfig,
    MemoryBackend,
    RateLimitConfig,
    Response,
    RetryPolicy,
)
from nexus_connector_async._events import Event, EventBus
from nexus_connector_async._logging import get_logger
from nexus_connector_async.pipeline._call import Call, Wiring
from nexus_connector_async.pipeline._request import new_call
from nexus_connector_async.pipeline._tasks import Tasks
from nexus_connector_async.testing import FakeClock


class Settings:
    """The tunables a connector gives its layers."""

    def __init__(self, wait: float = 5.0, lease: float = 30.0, pause: float = 300.0) -> None:
        self.idempotency_wait = wait
        self.idempotency_lease = lease
        self.max_shared_pause = pause


class Parts:
    """The wiring plus what a test looks at: the clock, the backend and the events."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock(autojump=True)
        self.backend = MemoryBackend(clock=self.clock)
        self.seen: list[Event] = []
        log = get_logger()
        self.tasks = Tasks(log)
        self.wiring = Wiring(
            self.backend, self.clock, EventBus([self.seen.append]), log, self.tasks, hooked=True
        )

    def call(
        self,
        *,
        resend_safe: bool = True,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreakerConfig | None = None,
        limit: RateLimitConfig | None = None,
        deadline: float | None = None,
    ) -> Call:
        return new_call(
            self.clock.monotonic(),
            None,
            "svc",
            None,
            breaker or CircuitBreakerConfig(),
            limit,
            retry or RetryPolicy(max_attempts=3, jitter=False),
            resend_safe,
            10.0,
            deadline,
            "POST /x",
        )

    def kinds(self) -> list[str]:
        return [type(event).__name__ for event in self.seen]


def response(status: int, **headers: Any) -> Response:
    return Response(status, list(headers.items()), b"{}")
