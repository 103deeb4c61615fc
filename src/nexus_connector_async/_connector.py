"""The `Connector`: the composition root of the pipeline every outbound call goes through.

    execute(service, endpoint, payload)
      request          names checked, key scoped, request built        pipeline/_request.py
      1. idempotency   claim the key (or replay / wait / conflict);
                       the final answer stored, released or "unknown"  pipeline/_idempotency.py
      retry loop       attempt, backoff + jitter while safe to resend  pipeline/_retry.py
      4. auth flow     a 401 refreshes and resends once (not a retry)  pipeline/_auth.py
      2.+3. admission  breaker + limiter in one atomic step per send;
                       the outcome recorded with the breaker           pipeline/_admission.py
      5. attempt       credentials, one HTTP exchange, classified      pipeline/_attempt.py

Each layer is a small object wired once in `__init__`; `execute()` stacks them per call, from
the outside in, with plain calls (partials, no wrapper coroutines).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

import msgspec

from ._clock import SYSTEM_CLOCK, Clock
from ._config import CircuitBreakerConfig, Endpoint, RateLimitConfig, RetryPolicy, _number
from ._errors import HttpStatusError, InvalidRequest
from ._events import EventBus, EventHook, EventSource, StructlogHook
from ._logging import get_logger
from ._models import IdempotencyKey, Response
from ._retry import resend_safe
from ._scrub import url_label
from ._transport import DEFAULT_MAX_RESPONSE_BYTES, AiohttpTransport, Transport
from .backends._base import Backend
from .backends._memory import MemoryBackend
from .credentials._base import CredentialProvider
from .pipeline._admission import Gate
from .pipeline._attempt import Attempts
from .pipeline._auth import AuthFlow
from .pipeline._call import Wiring
from .pipeline._concurrency import Slots
from .pipeline._idempotency import Idempotency, fingerprint, replay_response, store_response
from .pipeline._request import as_key, build, check_names, has_authorization, new_call, scoped_key
from .pipeline._retry import Retry
from .pipeline._tasks import Tasks

__all__ = ["Connector"]

T = TypeVar("T")


class Connector:
    """Runs vendor calls through idempotency, breaker, limiter, credentials and retries.

    One per process, shared by all tasks; it owns one aiohttp session (unless `http` is given).
    State lives in `backend` (in-memory by default; `RedisBackend` to share it between workers).
    """

    def __init__(
        self,
        backend: Backend | None = None,
        credentials: CredentialProvider | None = None,
        http: Transport | None = None,
        logger: Any = None,
        idempotency_wait: float = 10.0,
        *,
        clock: Clock | None = None,
        idempotency_lease: float = 30.0,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        shadow_services: frozenset[str] | set[str] = frozenset(),
        verify_ssl: bool = True,
        events: Iterable[EventHook] = (),
        max_shared_pause: float = 300.0,
        default_deadline: float | None = 30.0,
    ) -> None:
        idempotency_wait = _number("Connector.idempotency_wait", idempotency_wait)
        max_shared_pause = _number("Connector.max_shared_pause", max_shared_pause)
        idempotency_lease = _number("Connector.idempotency_lease", idempotency_lease, strict=True)
        #: The deadline of a call whose endpoint and caller give none: all attempts, backoff and
        #: rate-limit waits together. 30 s fits a web request; None lets a call run as long as
        #: its attempts take (max_attempts x Timeouts.total, plus backoff).
        self.default_deadline = (
            None
            if default_deadline is None
            else _number("Connector.default_deadline", default_deadline, strict=True)
        )
        self._clock = clock or SYSTEM_CLOCK
        self.backend: Backend = backend if backend is not None else MemoryBackend(clock=clock)
        self.credentials = credentials
        # The library's logger picks stdlib logging or structlog per line (structlog once the
        # app configured it, even after this point); a `logger` given here is used as it is.
        self._log = logger if logger is not None else get_logger()
        #: Every event goes to the logger first, then to `events` hooks (metrics, your own).
        hooks = list(events)
        self.events = EventBus([StructlogHook(self._log), *hooks])
        # Parts that report their own events (token refreshes, backend outages) send them here.
        parts: tuple[object, ...] = (self.backend, credentials)
        for part in parts:
            if isinstance(part, EventSource):
                part.bind_events(self.events.emit)
        self.shadow_services = frozenset(shadow_services)
        self._tasks = Tasks(self._log)
        wiring = Wiring(
            self.backend, self._clock, self.events, self._log, self._tasks, hooked=bool(hooks)
        )
        # The layers, outermost first (see the module docstring); each holds only the wiring.
        self._idempotency = Idempotency(wiring, float(idempotency_wait), float(idempotency_lease))
        self._retry = Retry(wiring, max_shared_pause)
        slots = Slots(wiring)
        self._gate = Gate(wiring, slots, self.shadow_services)
        self._attempts = Attempts(
            wiring,
            http or AiohttpTransport(max_response_bytes=max_response_bytes, verify_ssl=verify_ssl),
            slots,
        )
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self._closed = False

    def __repr__(self) -> str:
        return f"Connector(backend={self.backend!r})"

    @property
    def idempotency_wait(self) -> float:
        """How long a call waits for another one holding its idempotency key (seconds)."""
        return self._idempotency.wait

    @idempotency_wait.setter
    def idempotency_wait(self, seconds: float) -> None:
        self._idempotency.wait = float(seconds)

    @property
    def idempotency_lease(self) -> float:
        """The lease of a claimed key, extended while its call runs (seconds)."""
        return self._idempotency.lease

    @property
    def max_shared_pause(self) -> float:
        """The longest a vendor's Retry-After pauses the service for every worker (seconds)."""
        return self._retry.max_shared_pause

    @property
    def _transport(self) -> Transport:
        return self._attempts.transport

    @_transport.setter
    def _transport(self, transport: Transport) -> None:
        self._attempts.transport = transport

    async def __aenter__(self) -> Connector:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def on_close(self, closer: Callable[[], Awaitable[None]]) -> None:
        """Register a coroutine to run at `close()` (adapters close their clients here)."""
        self._closers.append(closer)

    async def close(self) -> None:
        """Close the HTTP session, adapter clients and the backend. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._tasks.mark_closing()
        for closer in reversed(self._closers):
            await closer()
        await self._tasks.drain()
        await self._attempts.transport.aclose()
        await self.backend.aclose()

    # -- public entry points ------------------------------------------------------------------

    async def execute(
        self,
        service: str,
        endpoint: Endpoint,
        payload: Any = None,
        *,
        idempotency_key: IdempotencyKey | str | None = None,
        tenant_id: str | None = None,
        raise_for_status: bool = True,
        headers: Mapping[str, str] | None = None,
        credentials: CredentialProvider | None = None,
        deadline: float | None = None,
        idempotent: bool | None = None,
    ) -> Response:
        """Send one request to `service` through the whole pipeline and return its response.

        `headers` adds per-call headers; `credentials` overrides the connector's provider for
        this call (adapters with their own OAuth client use it); `deadline` (seconds) bounds all
        attempts, backoff sleeps and rate-limit waits together. `idempotent` overrides whether a
        request that may have reached the vendor can be sent again: None decides by method, or
        an idempotency key the endpoint's `idempotency_header` carries to the vendor; a key
        alone is not enough. A keyed call that is not resendable is sent at most once: if its
        outcome is unknown, later calls with the key raise `OutcomeUnknown`.
        """
        # The request: checked names, the scoped key, method, URL, body and headers.
        check_names(service, tenant_id)
        provider = credentials if credentials is not None else self.credentials
        key = scoped_key(idempotency_key, provider, service, tenant_id)
        method, url, body, hdrs = build(endpoint, payload, headers, key)
        headers = hdrs  # the caller's plain dict leaves this frame: tracebacks show the masked copy
        # The payload may hold card data: only its fingerprint stays in this frame's locals.
        fp = fingerprint(method, url, payload) if key is not None else ""
        del payload
        call = new_call(
            self._clock.monotonic(),
            self.default_deadline,
            service,
            tenant_id,
            endpoint.circuit_breaker,
            endpoint.rate_limit,
            endpoint.retry,
            resend_safe(
                method,
                vendor_dedupes=key is not None and endpoint.idempotency_header is not None,
                idempotent=idempotent,
            ),
            endpoint.timeout.total,
            deadline if deadline is not None else endpoint.deadline,
            f"{method} {url_label(endpoint.url)}",  # no query: its values may be secrets
        )
        if endpoint.concurrency_limit is not None:
            call = call._replace(concurrency=endpoint.concurrency_limit)
        # The stack, innermost first. 5. the attempt: credentials, one exchange, classified.
        auth = None if provider is None or has_authorization(hdrs) else AuthFlow(provider)
        attempt = functools.partial(
            self._attempts.http, auth, method, url, hdrs, body, endpoint.timeout
        )
        # 2.+3. admitted by breaker and limiter, recorded with the breaker; 4. the auth flow.
        send: Any = functools.partial(self._gate.attempt, attempt)
        if auth is not None:
            send = functools.partial(auth.send, send)
        # The retry loop, then 1. idempotency around it all.
        if key is None:
            response: Response = await self._retry.run(send, call)
        else:
            response = await self._idempotency.run(
                call,
                key,
                fp,
                functools.partial(self._retry.run, send),
                functools.partial(store_response, endpoint.retry.unstored_statuses),
                replay_response,
            )
        if raise_for_status and not 200 <= response.status < 300:
            raise HttpStatusError(response)
        return response

    async def call(
        self,
        service: str,
        operation: str,
        fn: Callable[[], Awaitable[T]],
        *,
        idempotency_key: IdempotencyKey | str | None = None,
        tenant_id: str | None = None,
        rate_limit: RateLimitConfig | None = None,
        circuit_breaker: CircuitBreakerConfig | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = 30.0,
        idempotent: bool | None = None,
        fingerprint_data: Any = None,
        result_type: Any = Any,
        deadline: float | None = None,
    ) -> T:
        """Guard any awaitable factory (an aioboto3 call, say) with the same policies.

        `fn` is called once per attempt. Exceptions with `transient=True` (timeouts, connection
        failures, 5xx) count against the breaker and are retried when `idempotent` is True, or
        the error says nothing was sent; exceptions with `throttled=True` are retried after
        their `retry_after`. With an idempotency key the result is stored (msgpack, decoded as
        `result_type`) and replayed for repeats; unless `idempotent` is True the call is sent
        at most once (a timeout leaves the key `unknown`: `OutcomeUnknown` until forgotten).
        """
        check_names(service, tenant_id)
        if not isinstance(operation, str) or not operation:
            raise InvalidRequest("operation must be a non-empty str")
        key = as_key(idempotency_key)
        call = new_call(
            self._clock.monotonic(),
            self.default_deadline,
            service,
            tenant_id,
            circuit_breaker or CircuitBreakerConfig(),
            rate_limit,
            retry or RetryPolicy(),
            bool(idempotent),
            timeout or 30.0,
            deadline,
            operation,
        )
        # The same stack, with the factory as the attempt (no credentials: fn brings its own).
        attempt = functools.partial(self._attempts.guarded, fn, timeout)
        send = functools.partial(self._gate.attempt, attempt)
        if key is None:
            result: T = await self._retry.run(send, call)
            return result
        decoder = msgspec.msgpack.Decoder(result_type)
        return await self._idempotency.run(  # type: ignore[no-any-return]
            call,
            key,
            fingerprint("CALL", operation, fingerprint_data),
            functools.partial(self._retry.run, send),
            msgspec.msgpack.encode,
            decoder.decode,
        )

    async def forget(
        self,
        service: str,
        idempotency_key: IdempotencyKey | str,
        tenant_id: str | None = None,
        *,
        credentials: CredentialProvider | None = None,
    ) -> bool:
        """Clear a key left `unknown` (api.md rule 19), once you have reconciled it with the vendor.

        Afterwards a call with the key is sent again. Only an unknown key is cleared: a key in
        progress or with a stored answer is left alone. Returns True if one was cleared. Give
        the `credentials` the call was made with, if it overrode the connector's.
        """
        check_names(service, tenant_id)
        provider = credentials if credentials is not None else self.credentials
        key = scoped_key(idempotency_key, provider, service, tenant_id)
        if key is None:
            raise InvalidRequest("forget() needs an idempotency key")
        return await self.backend.forget(service, tenant_id, key.digest)
