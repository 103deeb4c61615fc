"""One attempt, the innermost layer: credentials, one exchange with the vendor, classified.

`http` sends one HTTP request (through the transport, holding a concurrency slot if the
endpoint has a limit); `guarded` runs one call of a `Connector.call()` factory. Both keep a
keyed call's `Progress` exact (`sending` is set only while the vendor may be acting) and
return an `Outcome`, never raising a classified error.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from .._config import Timeouts
from .._errors import CircuitOpenError, ConnectorError, RequestTimeout
from .._transport import Transport
from ._auth import AuthFlow
from ._call import Call, Wiring
from ._concurrency import Slots
from ._outcome import UNKNOWN, Outcome, from_error, from_response, from_transport_error

__all__ = ["Attempts"]

# An attempt is cut to the call's deadline only when that saves more than this: a first attempt
# whose timeout equals the deadline keeps its own (cached) timeout instead of a new one per call.
_DEADLINE_SLACK = 0.05


class Attempts:
    """Runs single attempts: HTTP through `transport`, or a guarded call's factory."""

    __slots__ = ("_wiring", "slots", "transport")

    def __init__(self, wiring: Wiring, transport: Transport, slots: Slots) -> None:
        self._wiring = wiring
        self.transport = transport
        self.slots = slots

    async def http(
        self,
        auth: AuthFlow | None,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: Timeouts,
        call: Call,
    ) -> Outcome:
        """Credentials, then one HTTP exchange, classified for the retry loop."""
        creds = None
        if auth is not None:
            headers, creds = await auth.authorize(call, headers)
        if call.deadline_at is not None:
            remaining = call.deadline_at - self._wiring.clock.monotonic()
            if remaining < timeout.total - _DEADLINE_SLACK:
                timeout = Timeouts(max(remaining, 0.001), timeout.connect, timeout.read)
        if call.probe:
            await self.renew_probe(call)
        progress = call.progress
        try:
            if call.concurrency is None:
                if progress is not None:
                    progress.sending = True
                response = await self.transport.send(method, url, headers, body, timeout)
            else:  # `sending` is set once the slot is ours: waiting for one sends nothing
                send = functools.partial(self.transport.send, method, url, headers, body, timeout)
                response = await self.slots.run(call, send, progress)
        except ConnectorError as exc:
            if progress is not None:
                progress.sending = False
            return from_transport_error(exc)
        # Cancelled (or crashed) at the vendor, `sending` stays set: the outcome is unknown.
        if progress is not None:
            progress.sending = False
        if response.status < 300:
            return Outcome.success(response, response.status)  # the happy path
        if response.status == 401 and creds is not None:
            assert auth is not None
            if await auth.refreshes(call, creds):
                return Outcome.rejected_credentials(response, creds)
        return from_response(response, call.retry)

    async def guarded(
        self, fn: Callable[[], Awaitable[Any]], timeout: float | None, call: Call
    ) -> Outcome:
        """One call of `fn`, within `timeout`; its `ConnectorError`s are classified."""
        if call.probe:
            await self.renew_probe(call)
        progress = call.progress
        ran = True
        try:
            if call.concurrency is None:
                if progress is not None:
                    progress.sending = True
                if timeout is None:
                    value = await fn()
                else:
                    async with asyncio.timeout(timeout):
                        value = await fn()
            else:  # `sending` is set once the slot is ours: waiting for one sends nothing
                ran = False

                async def run() -> Any:  # the timeout covers `fn` only, never the slot wait
                    nonlocal ran
                    ran = True
                    if timeout is None:
                        return await fn()
                    async with asyncio.timeout(timeout):
                        return await fn()

                value = await self.slots.run(call, run, progress)
        except TimeoutError:
            if progress is not None:
                progress.sending = False
            exc = RequestTimeout(f"{call.label} did not finish within {timeout:g}s")
            return Outcome.retryable_failure(exc, vendor=UNKNOWN)
        except ConnectorError as exc:
            if progress is not None:
                progress.sending = False
            return from_error(exc, ran=ran)
        if progress is not None:
            progress.sending = False
        return Outcome.success(value)

    async def renew_probe(self, call: Call) -> None:
        """Rule 25: a probe permit covers the whole attempt; renew it right before sending.

        The token wait and the credential fetch may have outlasted its lease; if the permit was
        lost meanwhile (another probe may hold its slot), the request is not sent.
        """
        if not await self._wiring.backend.renew_probe(call.service, call.probe, call.probe_lease):
            raise CircuitOpenError(
                f"circuit open for {call.service!r}: the probe permit lapsed before sending",
                retry_after=call.probe_lease,
            )
