"""The `Connector`: the composition root of the pipeline every outbound call goes through.

    execute(service, endpoint, payload)
      request          names checked, key scoped, request built       pipeline/_request.py
      1. idempotency   claim the key (or replay / wait / conflict);
                       then store the answer, release or keep unknown pipeline/_idempotency.py
      retry loop       again after backoff + jitter while safe        pipeline/_retry.py
      auth flow        a 401 refreshes and resends once (no retry)    pipeline/_auth.py
      2.+3. admission  breaker + limiter, one atomic step per send;
                       the outcome recorded with the breaker          pipeline/_admission.py
      4.+5. attempt    credentials, one HTTP exchange, classified     pipeline/_attempt.py

The layers are wired once in `__init__`; `execute()` stacks them per call with plain partials
(no wrapper coroutines: the hot path is measured), innermost first, then runs the outermost.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

import msgspec

from ._clock import SYSTEM_CLOCK, Clock
from ._config import (
    CircuitBreakerConfig,
    ConcurrencyLimit,
    Endpoint,
    RateLimitConfig,
    RetryPolicy,
    _number,
)
from ._errors import HttpStatusError, InvalidRequest
from ._events import EventBus, EventHook
from ._logging import get_logger
from ._models import IdempotencyKey, Response
from ._transport import DEFAULT_MAX_RESPONSE_BYTES, AiohttpTransport, Transport
from .backends._base import Backend
from .backends._memory import MemoryBackend
from .credentials._base import CredentialProvider
from .pipeline import _request as request
from .pipeline._admission import Gate
from .pipeline._attempt import Attempts
from .pipeline._auth import AuthFlow
from .pipeline._call import Send, Wiring
from .pipeline._concurrency import Slots
from .pipeline._idempotency import Idempotency, fingerprint, replay_response, store_response
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
        # The tunables the layers read off `self` per call (`Settings`), checked here.
        self.idempotency_wait = _number("Connector.idempotency_wait", idempotency_wait)
        self.idempotency_lease = _number(
            "Connector.idempotency_lease", idempotency_lease, strict=True
        )
        #: A vendor's Retry-After pauses the service for every worker, but never longer than
        #: this: one hostile or garbled header must not stop a fleet for years.
        self.max_shared_pause = _number("Connector.max_shared_pause", max_shared_pause)
        #: The deadline of a call whose endpoint and caller give none (attempts, backoff and
        #: rate-limit waits together); None lets it run as long as its attempts take.
        if default_deadline is not None:
            default_deadline = _number("Connector.default_deadline", default_deadline, strict=True)
        self.default_deadline = default_deadline
        self._clock = clock or SYSTEM_CLOCK
        self.backend: Backend = backend if backend is not None else MemoryBackend(clock=clock)
        self.credentials = credentials
        # Stdlib logging or structlog per line (structlog once the app configured it); a
        # `logger` given here is used as it is.
        self._log = logger if logger is not None else get_logger()
        #: Every event goes to the logger first, then to `events` hooks (metrics, your own).
        hooks = list(events)
        self.events = EventBus.wired(self._log, hooks, self.backend, credentials)
        self.shadow_services = frozenset(shadow_services)
        self._tasks = Tasks(self._log)
        wiring = Wiring(
            self.backend, self._clock, self.events, self._log, self._tasks, hooked=bool(hooks)
        )
        # The layers, outermost first; they read the tunables (`Settings`) off `self` per call.
        # (The gate first: the idempotency layer may admit a first attempt with its claim.)
        slots = Slots(wiring)
        self._gate = Gate(wiring, slots, self.shadow_services)
        self._idempotency = Idempotency(wiring, self, self._gate)
        self._retry = Retry(wiring, self)
        self._attempts = Attempts(
            wiring,
            http or AiohttpTransport(max_response_bytes=max_response_bytes, verify_ssl=verify_ssl),
            slots,
        )
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self._closed = False

    def __repr__(self) -> str:
        return f"Connector(backend={self.backend!r})"

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
        then = (self._attempts.transport.aclose, self.backend.aclose)
        await self._tasks.close(*self._closers, then=then)

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
        this call; `deadline` (seconds) bounds all attempts, backoff sleeps and rate-limit
        waits together. `idempotent` overrides whether a request that may have reached the
        vendor can be sent again (None: by method, or a key the endpoint's
        `idempotency_header` carries to the vendor). A keyed call that is not resendable is
        sent at most once: if its outcome is unknown, its key raises `OutcomeUnknown`.
        """
        request.check_names(service, tenant_id)
        provider = credentials if credentials is not None else self.credentials
        key = (
            None
            if idempotency_key is None
            else request.scoped_key(idempotency_key, provider, service, tenant_id)
        )
        method, url, body, hdrs = request.build(endpoint, payload, headers, key)
        headers = hdrs  # the caller's plain dict leaves this frame: tracebacks show the masked copy
        # The payload may hold card data: only its fingerprint stays in this frame's locals.
        fp = fingerprint(method, url, payload) if key is not None else ""
        del payload
        now, default = self._clock.monotonic(), self.default_deadline
        call = request.endpoint_call(
            now, default, service, tenant_id, endpoint, key, idempotent, deadline
        )
        # The stack, innermost first: the attempt (credentials, one exchange, classified) ...
        auth = None if provider is None or request.has_authorization(hdrs) else AuthFlow(provider)
        attempt = functools.partial(
            self._attempts.http, auth, method, url, hdrs, body, endpoint.timeout
        )
        # ... admitted per send and recorded with the breaker; a 401 resent once by the auth flow
        send: Send = functools.partial(self._gate.attempt, attempt)
        if auth is not None:
            send = functools.partial(auth.send, send)
        # ... in the retry loop, all of it under the idempotency key.
        if key is None:
            response: Response = await self._retry.run(send, call)
        else:
            store = functools.partial(store_response, endpoint.retry.unstored_statuses)
            attempts = functools.partial(self._retry.run, send)
            response = await self._idempotency.run(call, key, fp, attempts, store, replay_response)
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
        concurrency_limit: ConcurrencyLimit | None = None,
    ) -> T:
        """Guard any awaitable factory (an aioboto3 call, say) with the same policies.

        `fn` is called once per attempt. `ConnectorError`s with `transient=True` count against
        the breaker and are retried when `idempotent` is True or nothing was `sent`; those with
        `throttled=True` are retried after their `retry_after`. With an idempotency key the
        result is stored (msgpack, decoded as `result_type`) and replayed for repeats; unless
        `idempotent` is True it is sent at most once (a timeout leaves the key `unknown`).
        `concurrency_limit` makes each attempt hold a fleet-wide slot while `fn` runs, as an
        endpoint's does for its request (api.md rule 26).
        """
        request.check_names(service, tenant_id)
        now, default = self._clock.monotonic(), self.default_deadline
        policies = (rate_limit, circuit_breaker, retry, concurrency_limit)
        call = request.guarded_call(
            now, default, service, tenant_id, operation, deadline, timeout, idempotent, *policies
        )
        # The same stack, with the factory as the attempt (it brings its own credentials).
        attempt = functools.partial(self._attempts.guarded, fn, timeout)
        send = functools.partial(self._gate.attempt, attempt)
        key = request.as_key(idempotency_key)
        if key is None:
            result: T = await self._retry.run(send, call)
            return result
        fp = fingerprint("CALL", operation, fingerprint_data)
        attempts, replay = (
            functools.partial(self._retry.run, send),
            msgspec.msgpack.Decoder(result_type),
        )
        return await self._idempotency.run(  # type: ignore[no-any-return]
            call, key, fp, attempts, msgspec.msgpack.encode, replay.decode
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

        Afterwards a call with the key is sent again. Only an unknown key is cleared; returns
        True if one was. Give the `credentials` the call was made with, if it overrode ours.
        """
        request.check_names(service, tenant_id)
        provider = credentials if credentials is not None else self.credentials
        key = request.scoped_key(idempotency_key, provider, service, tenant_id)
        if key is None:
            raise InvalidRequest("forget() needs an idempotency key")
        return await self.backend.forget(service, tenant_id, key.digest)
