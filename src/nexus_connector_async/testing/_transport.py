"""`MockTransport`: answer the connector's requests with a function instead of a server."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import NamedTuple

from .._config import Timeouts
from .._models import Response

__all__ = ["MockTransport", "RecordedRequest"]


class RecordedRequest(NamedTuple):
    """A request seen by `MockTransport`."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None
    timeout: Timeouts


Handler = Callable[[RecordedRequest], Response | Awaitable[Response]]


class MockTransport:
    """A `Transport` that answers with `handler(request)` and records every request.

    The handler may raise `RequestTimeout` or `ConnectionFailed` to simulate network faults.
    """

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[RecordedRequest] = []

    async def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: Timeouts,
    ) -> Response:
        """Record the request and return the handler's response (or raise its error)."""
        request = RecordedRequest(method, url, dict(headers), body, timeout)
        self.requests.append(request)
        result = self.handler(request)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def aclose(self) -> None:
        """Nothing to close."""
