"""The `Connector`: the pipeline every outbound call goes through, declared once, top to bottom.

    execute(service, endpoint, payload)
      1. idempotency     claim the key (or replay / wait / conflict)         _idempotent()
      2. circuit breaker \
      3. rate limiter     > one atomic admission per attempt                 _admit()
      4. credentials     Authorization from the provider; one refresh on 401 _http_attempt()
      5. HTTP            one attempt with its timeout; retry loop with
                         backoff + jitter where a resend is safe             _attempts()
      6. store result    final answer stored for the key (or the key released,
                         or kept "unknown"); retried in the background       _idempotent()
         log, record     one event per attempt and outcome; breaker fed      _attempts()

Resending (api.md rules 16-19) rests on two facts: whether the *call* is `resendable` (the method
is idempotent, the vendor deduplicates it by its idempotency header, or the caller said so), and
what each *attempt's* vendor saw (`UNTOUCHED`: certainly not acted on; `ANSWERED`; `UNKNOWN`: may
have acted, no answer seen). An attempt is sent again only if the call is resendable or the vendor
was untouched; a non-resendable call whose outcome is unknown keeps its key `unknown`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, NamedTuple, TypeVar

import msgspec

from ._clock import SYSTEM_CLOCK, Clock, wait_or_timeout
from ._config import (
    CircuitBreakerConfig,
    ConcurrencyLimit,
    Endpoint,
    RateLimitConfig,
    RetryPolicy,
    Timeouts,
    _number,
    check_header_value,
)
from ._encoding import encode_form, encode_json, fingerprint, form_pairs, urlencode_pairs
from ._errors import (
    CircuitOpenError,
    ConcurrencyLimitExceeded,
    ConnectionFailed,
    ConnectorError,
    HttpStatusError,
    IdempotencyConflict,
    IdempotencyInProgress,
    InvalidRequest,
    OutcomeUnknown,
    RateLimitExceeded,
    RequestTimeout,
    ResponseTooLarge,
    StoredRecordInvalid,
)
from ._events import (
    AdmissionRejected,
    AttemptFinished,
    BackendWriteFailed,
    CallFinished,
    CircuitStateChanged,
    ConcurrencyLimitChanged,
    EventBus,
    EventHook,
    IdempotentReplay,
    OutcomeUnknownEvent,
    RetryScheduled,
    ShadowWouldBlock,
    StructlogHook,
)
from ._logging import get_logger
from ._models import Credentials, FinalKey, IdempotencyKey, Response, ScopedKey
from ._retry import backoff, parse_retry_after, resendable
from ._scrub import MaskedBody, MaskedHeaders, MaskedUrl, url_label
from ._transport import DEFAULT_MAX_RESPONSE_BYTES, AiohttpTransport, Transport
from .backends._base import (
    ADMITTED,
    BUDGET_EXHAUSTED,
    CIRCUIT_OPEN,
    CONCURRENCY_LIMITED,
    RATE_LIMITED,
    Admission,
    Backend,
    Claim,
)
from .backends._memory import MemoryBackend
from .backends._slots import Adapt, Slot, SlotAsk
from .credentials._base import CredentialProvider, NamesAccount, RefreshesRejected

__all__ = ["Connector"]

T = TypeVar("T")

_REASONS = {
    CIRCUIT_OPEN: "circuit_open",
    RATE_LIMITED: "rate_limited",
    BUDGET_EXHAUSTED: "retry_budget",
    CONCURRENCY_LIMITED: "concurrency_limit",
}
_CONTENT_TYPES = {"json": "application/json", "form": "application/x-www-form-urlencoded"}


class _Stored(msgspec.Struct, array_like=True):
    """What the idempotency store keeps for a finished call."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    attempts: int


_encode_stored = msgspec.msgpack.Encoder().encode
_decode_stored = msgspec.msgpack.Decoder(_Stored).decode


# What the vendor saw of one attempt.
UNTOUCHED = 0  # certainly not acted on (nothing sent, or a documented "not processed" answer)
ANSWERED = 1  # the vendor answered: its answer decides
UNKNOWN = 2  # may have reached the vendor, no answer seen (read timeout, reset after sending)


class _Outcome(NamedTuple):
    """One attempt's result as the retry loop sees it."""

    value: Any  # the Response (HTTP) or the factory's result (call)
    error: BaseException | None
    failure: bool  # counts against the circuit breaker
    retryable: bool  # worth another attempt, if sending it again is allowed
    vendor: int  # UNTOUCHED, ANSWERED or UNKNOWN
    retry_after: float | None = None
    reauth: Credentials | None = None  # 401 with these credentials: refresh, resend once


class _Held:
    """A concurrency slot held by one attempt, from admission until it is given back."""

    __slots__ = ("released", "slot", "taken_at")

    def __init__(self, slot: Slot, taken_at: float) -> None:
        self.slot = slot
        self.taken_at = taken_at  # clock.monotonic(): its lease runs from here
        self.released = False


class _Progress:
    """How far a keyed call got, so that its key is settled right when it ends."""

    __slots__ = ("last", "sending")

    def __init__(self) -> None:
        self.sending = False  # an attempt is at the vendor (request started, no outcome yet)
        self.last: _Outcome | None = None  # the latest attempt's outcome


# How a claimed key is settled when its call ends.
_STORE, _RELEASE, _UNKNOWN = "complete", "release", "mark_unknown"
_SETTLE_FIRST_DELAY, _SETTLE_MAX_DELAY = 0.05, 5.0  # background retries of a settle
# An attempt is cut to the call's deadline only when that saves more than this: a first attempt
# whose timeout equals the deadline keeps its own (cached) timeout instead of a new one per call.
_DEADLINE_SLACK = 0.05


class _Call(NamedTuple):
    """What the retry loop needs to know about one call."""

    service: str
    tenant: str | None
    breaker: CircuitBreakerConfig
    limit: RateLimitConfig | None
    retry: RetryPolicy
    resendable: bool  # may be sent again after it may have reached the vendor (rule 18)
    probe_lease: float
    deadline_at: float | None
    label: str  # "POST https://..." or the operation name, for logs
    started: float  # clock.monotonic() when the call began
    reauthed: bool = False  # a 401 already forced a refresh: another 401 is final
    probe: str = ""  # the half-open probe permit this attempt holds, renewed before sending
    progress: _Progress | None = None  # keyed calls only
    concurrency: ConcurrencyLimit | None = None  # a fleet-wide slot per attempt (api.md 26)
    held: _Held | None = None  # the slot this attempt holds (taken with its admission)


@functools.lru_cache(maxsize=4096)
def _check_name(what: str, value: object, limit: int) -> None:
    """Service and tenant names end up in storage keys: printable ASCII, no braces or spaces.

    Cached: the same few names come back on every call, and this runs on the hot path.
    """
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= limit
        or any(not (" " < c <= "~") or c in "{}" for c in value)
    ):
        raise InvalidRequest(
            f"{what} must be 1-{limit} printable ASCII characters without spaces or braces"
        )


def _check_names(service: str, tenant: str | None) -> None:
    if not isinstance(service, str):
        raise InvalidRequest("service must be a str")
    _check_name("service", service, 100)
    if tenant is not None:
        if not isinstance(tenant, str):
            raise InvalidRequest("tenant_id must be a str or None")
        _check_name("tenant_id", tenant, 200)


def _has_authorization(headers: Mapping[str, str]) -> bool:
    """Whether the application set its own Authorization header, in any case of the name."""
    if "Authorization" in headers or "authorization" in headers:
        return True
    return any(name.lower() == "authorization" for name in headers)


def _as_key(key: IdempotencyKey | str | None) -> IdempotencyKey | None:
    if key is None or isinstance(key, IdempotencyKey):
        return key
    return IdempotencyKey(key)


def _scoped(
    key: IdempotencyKey | None,
    provider: CredentialProvider | None,
    service: str,
    tenant: str | None,
) -> IdempotencyKey | None:
    """The caller's key as stored and sent: derived from (tenant, account, key) (rule 28).

    The account is the provider's `account_id` when it names one (`NamesAccount`). A key
    without a tenant or an account, and an adapter's key (`FinalKey`: scoped already, or
    generated), pass unchanged.
    """
    if key is None or isinstance(key, FinalKey):
        return key
    account = provider.account_id(service, tenant) if isinstance(provider, NamesAccount) else None
    if account is None and tenant is None:
        return key
    return ScopedKey(key, account or b"", tenant)


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
        #: A vendor's Retry-After pauses the service for every worker, but never longer than
        #: this: one hostile or garbled header must not stop a fleet for years.
        self.max_shared_pause = _number("Connector.max_shared_pause", max_shared_pause)
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
        self._transport: Transport = http or AiohttpTransport(
            max_response_bytes=max_response_bytes, verify_ssl=verify_ssl
        )
        # The library's logger picks stdlib logging or structlog per line (structlog once the
        # app configured it, even after this point); a `logger` given here is used as it is.
        self._log = logger if logger is not None else get_logger()
        #: Every event goes to the logger first, then to `events` hooks (metrics, your own).
        hooks = list(events)
        self.events = EventBus([StructlogHook(self._log), *hooks])
        # The two events of every call are built only if someone takes them: with a silent or
        # filtering logger and no hooks, a happy call builds no event at all (the hot path).
        self._hooked = bool(hooks)
        self._enabled: Callable[[int], bool] | None = getattr(self._log, "is_enabled_for", None)
        # Parts that report their own events (token refreshes, backend outages) send them here.
        for part in (self.backend, credentials):
            bind = getattr(part, "bind_events", None)
            if bind is not None:
                bind(self.events.emit)
        self.idempotency_wait = float(idempotency_wait)
        self.idempotency_lease = float(idempotency_lease)
        self.shadow_services = frozenset(shadow_services)
        self._inflight: dict[tuple[str, str | None, str], asyncio.Future[bytes | None]] = {}
        self._fingerprints: dict[tuple[str, str | None, str], str] = {}
        self._background: set[asyncio.Future[Any]] = set()
        self._closing = asyncio.Event()  # wakes background settles for their last try
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self._closed = False

    def __repr__(self) -> str:
        return f"Connector(backend={self.backend!r})"

    @property
    def _per_attempt(self) -> bool:
        """Whether anyone takes the per-attempt event (asked per call: logging may change)."""
        enabled = self._enabled
        return self._hooked or enabled is None or enabled(logging.DEBUG)

    @property
    def _per_call(self) -> bool:
        """Whether anyone takes the audit event of a finished call."""
        enabled = self._enabled
        return self._hooked or enabled is None or enabled(logging.INFO)

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
        self._closing.set()
        for closer in reversed(self._closers):
            await closer()
        for _ in range(3):  # background work may spawn its own follow-up (a release)
            if not self._background:
                break
            await asyncio.gather(*self._background, return_exceptions=True)
        await self._transport.aclose()
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
        _check_names(service, tenant_id)
        provider = credentials if credentials is not None else self.credentials
        key = _scoped(_as_key(idempotency_key), provider, service, tenant_id)
        method, url, body, hdrs = self._build(endpoint, payload, headers, key)
        headers = hdrs  # the caller's plain dict leaves this frame: tracebacks show the masked copy
        # The payload may hold card data: only its fingerprint stays in this frame's locals.
        fp = fingerprint(method, url, payload) if key is not None else ""
        del payload
        call = self._call_info(
            service,
            tenant_id,
            endpoint.circuit_breaker,
            endpoint.rate_limit,
            endpoint.retry,
            resendable(
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
        # A partial, not a closure coroutine: one frame fewer on every resume of the request.
        attempt = functools.partial(
            self._http_attempt, provider, method, url, hdrs, body, endpoint.timeout
        )

        if key is None:
            response: Response = await self._attempts(call, attempt)
        else:
            store = functools.partial(_store_response, endpoint.retry.unstored_statuses)
            response = await self._idempotent(call, key, fp, attempt, store, _replay_response)
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

        `fn` is called once per attempt. Exceptions with `transient=True` (timeouts, connection
        failures, 5xx) count against the breaker and are retried when `idempotent` is True, or
        the error says nothing was sent; exceptions with `throttled=True` are retried after
        their `retry_after`. With an idempotency key the result is stored (msgpack, decoded as
        `result_type`) and replayed for repeats; unless `idempotent` is True the call is sent
        at most once (a timeout leaves the key `unknown`: `OutcomeUnknown` until forgotten).
        `concurrency_limit` makes each attempt hold a fleet-wide slot while `fn` runs, as an
        endpoint's does for its request (api.md rule 26).
        """
        _check_names(service, tenant_id)
        if not isinstance(operation, str) or not operation:
            raise InvalidRequest("operation must be a non-empty str")
        key = _as_key(idempotency_key)
        call = self._call_info(
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
        if concurrency_limit is not None:
            call = call._replace(concurrency=concurrency_limit)

        attempt = functools.partial(self._fn_attempt, fn, timeout)
        if key is None:
            result: T = await self._attempts(call, attempt)
            return result
        fp = fingerprint("CALL", operation, fingerprint_data)
        decoder = msgspec.msgpack.Decoder(result_type)
        return await self._idempotent(  # type: ignore[no-any-return]
            call,
            key,
            fp,
            attempt,
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
        _check_names(service, tenant_id)
        provider = credentials if credentials is not None else self.credentials
        key = _scoped(_as_key(idempotency_key), provider, service, tenant_id)
        if key is None:
            raise InvalidRequest("forget() needs an idempotency key")
        return await self.backend.forget(service, tenant_id, key.digest)

    # -- building -------------------------------------------------------------------------------

    def _call_info(
        self,
        service: str,
        tenant: str | None,
        breaker: CircuitBreakerConfig,
        limit: RateLimitConfig | None,
        retry: RetryPolicy,
        resendable: bool,
        attempt_timeout: float,
        deadline: float | None,
        label: str,
    ) -> _Call:
        if deadline is not None and (not isinstance(deadline, int | float) or deadline <= 0):
            raise InvalidRequest("deadline must be > 0 seconds")
        if deadline is None:
            deadline = self.default_deadline
        now = self._clock.monotonic()
        return _Call(
            service,
            tenant,
            breaker,
            limit,
            retry,
            resendable,
            attempt_timeout + 5.0,
            None if deadline is None else now + deadline,
            label,
            now,
        )

    @staticmethod
    def _build(
        endpoint: Endpoint,
        payload: Any,
        extra: Mapping[str, str] | None,
        key: IdempotencyKey | None,
    ) -> tuple[str, str, bytes | None, Mapping[str, str]]:
        method, url = endpoint.method, endpoint.url
        if "?" in url:
            url = MaskedUrl(url)  # query values may be keys: masked in traceback locals
        body: bytes | None = None
        content_type: str | None = None
        if method in ("GET", "HEAD", "DELETE"):
            if payload:
                query = urlencode_pairs(form_pairs(payload))
                url = MaskedUrl(f"{url}{'&' if '?' in url else '?'}{query}")
        elif payload is not None:
            body = MaskedBody(
                encode_form(payload) if endpoint.body == "form" else encode_json(payload)
            )
            content_type = _CONTENT_TYPES[endpoint.body]
        elif endpoint.body == "json":
            content_type = "application/json"
        if not (extra or content_type or key is not None):
            return method, url, body, endpoint.headers  # nothing to add: no copy (hot path)
        headers = MaskedHeaders(endpoint.headers)  # masked in traceback locals, like the Endpoint's
        if extra:
            for name, value in extra.items():
                check_header_value(name, value)
            headers.update(extra)
        if content_type is not None:
            headers.setdefault("Content-Type", content_type)
        if key is not None and endpoint.idempotency_header:
            headers[endpoint.idempotency_header] = key.value
        return method, url, body, headers

    # -- 1. idempotency ----------------------------------------------------------------------------

    async def _idempotent(
        self,
        call: _Call,
        key: IdempotencyKey,
        fp: str,
        attempt: Callable[[_Call], Awaitable[_Outcome]],
        store: Callable[[Any], bytes | None],
        replay: Callable[[bytes], Any],
    ) -> Any:
        """Run the call at most once per key: replay, wait for, or claim and run it."""
        scope = (call.service, call.tenant, key.digest)
        deadline = self._clock.monotonic() + self.idempotency_wait
        replayed = IdempotentReplay(call.service, call.tenant, key.digest)
        # A call the vendor cannot deduplicate is armed: if we die holding the key, its lease
        # ends as "unknown", not free (rule 19).
        unknown_ttl = None if call.resendable else key.ttl
        while True:
            local = self._inflight.get(scope)
            if local is not None:
                # Another task of this process runs it: wait here, without asking the backend.
                if self._fingerprints.get(scope) != fp:
                    raise IdempotencyConflict("idempotency key reused for a different request")
                stored = await self._wait_local(local, deadline - self._clock.monotonic())
                if stored is not None:
                    self.events.emit(replayed)
                    return replay(stored)
                continue  # the holder released the key (or left it unknown): ask the backend
            # A cancellation while a claim is in flight must not strand the key for its lease.
            claim = await self._finish_if_cancelled(
                self.backend.claim(*scope, fp, self.idempotency_lease, unknown_ttl=unknown_ttl),
                self._unclaim(scope),
            )
            if claim.state == "in_progress":
                remaining = deadline - self._clock.monotonic()
                claim = await self._finish_if_cancelled(
                    self.backend.wait(
                        *scope, fp, self.idempotency_lease, remaining, unknown_ttl=unknown_ttl
                    ),
                    self._unclaim(scope),
                )
            if claim.state == "completed":
                result = _replayed(replay, claim.stored)
                self.events.emit(replayed)
                return result
            if claim.state == "conflict":
                raise IdempotencyConflict("idempotency key reused for a different request")
            if claim.state == "unknown":
                raise OutcomeUnknown(service=call.service, idempotency_key=key.caller_value)
            if claim.state == "in_progress":
                raise IdempotencyInProgress(
                    f"idempotency key still in progress after {self.idempotency_wait:g}s"
                )
            break
        # We own the key: run the call, then store its final answer, release the key, or keep
        # it unknown. The heartbeat keeps our lease until the backend has taken that.
        token = claim.token
        future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._inflight[scope] = future
        self._fingerprints[scope] = fp
        stop_heartbeat = self._heartbeat(scope, token)
        progress = _Progress()
        stored_bytes: bytes | None = None
        interrupted: BaseException | None = None
        try:
            try:
                value = await self._attempts(call._replace(progress=progress), attempt)
            except BaseException as exc:
                answer = _final_answer(progress)
                if answer is None:
                    action = _UNKNOWN if _outcome_unknown(call, progress) else _RELEASE
                    await self._settle(scope, token, action, None, key.ttl, stop_heartbeat)
                    raise
                # Interrupted after the vendor's final answer (cancelled in the breaker record
                # that follows it): the answer is the key's all the same (rule 16).
                value, interrupted = answer.value, exc
            try:
                stored_bytes = store(value)
            except BaseException:  # an answer we cannot encode: never free a sent call for resend
                action = _RELEASE if call.resendable else _UNKNOWN
                await self._settle(scope, token, action, None, key.ttl, stop_heartbeat)
                raise
            action = _RELEASE if stored_bytes is None else _STORE
            await self._settle(scope, token, action, stored_bytes, key.ttl, stop_heartbeat)
            if interrupted is not None:
                raise interrupted
            return value
        finally:
            del self._inflight[scope]
            del self._fingerprints[scope]
            future.set_result(stored_bytes)

    async def _settle(
        self,
        scope: tuple[str, str | None, str],
        token: str,
        action: str,
        data: bytes | None,
        ttl: float,
        stop_heartbeat: Callable[[], None],
    ) -> None:
        """Settle the key: store the answer, release it, or keep it unknown (rules 16, 19).

        The first try runs inline (no task on the happy path). A backend failure is reported
        and the try repeated in the background, with the lease kept alive, until the backend
        takes it: the caller keeps its answer and nobody can claim the key meanwhile. If we are
        cancelled during the try, it is repeated in the background too (the first one may have
        landed: a refused repeat is then no lost lease).
        """
        try:
            await self._settle_once(scope, token, action, data, ttl, retried=False)
        except asyncio.CancelledError:
            self._spawn(self._settle_until_done(scope, token, action, data, ttl, stop_heartbeat))
            raise
        except ConnectorError as exc:
            self._report_settle_failure(scope, action, exc)
            self._spawn(self._settle_until_done(scope, token, action, data, ttl, stop_heartbeat))
            return
        stop_heartbeat()

    async def _settle_once(
        self,
        scope: tuple[str, str | None, str],
        token: str,
        action: str,
        data: bytes | None,
        ttl: float,
        *,
        retried: bool,
    ) -> None:
        """One try at settling the key; raises `ConnectorError` if the backend did not answer."""
        if action == _STORE:
            assert data is not None
            ok = await self.backend.complete(*scope, token, data, ttl)
        elif action == _UNKNOWN:
            ok = await self.backend.mark_unknown(*scope, token, ttl)
            if ok:
                self.events.emit(OutcomeUnknownEvent(*scope))
        else:
            await self.backend.release(*scope, token)
            ok = True
        if ok:
            return
        if retried:  # a repeat may find what an earlier try (cancelled, or failed late) wrote
            self._log.info(
                "nexus.idempotency.settle_refused", service=scope[0], idempotency_key=scope[2]
            )
        else:
            self._log.warning(
                "nexus.idempotency.lease_lost", service=scope[0], idempotency_key=scope[2]
            )

    def _report_settle_failure(
        self, scope: tuple[str, str | None, str], action: str, exc: ConnectorError
    ) -> None:
        self.events.emit(
            BackendWriteFailed(scope[0], action, type(exc).__name__, scope[2], final=self._closed)
        )

    async def _settle_until_done(
        self,
        scope: tuple[str, str | None, str],
        token: str,
        action: str,
        data: bytes | None,
        ttl: float,
        stop_heartbeat: Callable[[], None],
    ) -> None:
        """Repeat the settle in the background until the backend takes it (or we close).

        The first repeat goes at once (a dead pooled connection is replaced by then), later
        ones back off up to `_SETTLE_MAX_DELAY`.
        """
        delay = 0.0
        try:
            while True:
                if delay > 0:
                    await self._pause_unless_closing(delay)
                try:
                    await self._settle_once(scope, token, action, data, ttl, retried=True)
                    return
                except ConnectorError as exc:
                    self._report_settle_failure(scope, action, exc)
                    if self._closed:
                        return  # given up: the lease (or, at most once, the unknown state) decides
                delay = min(max(delay * 2.0, _SETTLE_FIRST_DELAY), _SETTLE_MAX_DELAY)
        finally:
            stop_heartbeat()

    async def _pause_unless_closing(self, seconds: float) -> None:
        """Sleep `seconds` of clock time, or less if the connector starts closing."""
        if not self._closing.is_set():
            await wait_or_timeout(self._closing.wait(), self._clock, seconds)

    async def _wait_local(
        self, future: asyncio.Future[bytes | None], timeout: float
    ) -> bytes | None:
        if timeout <= 0:
            raise IdempotencyInProgress("idempotency key still in progress")
        await wait_or_timeout(future, self._clock, timeout)
        if not future.done():
            raise IdempotencyInProgress(
                f"idempotency key still in progress after {self.idempotency_wait:g}s"
            )
        return future.result()

    def _heartbeat(self, scope: tuple[str, str | None, str], token: str) -> Callable[[], None]:
        """Extend the key's lease every third of it while the call runs (timer, not a task)."""
        loop = asyncio.get_running_loop()
        interval = self.idempotency_lease / 3.0
        handle: asyncio.TimerHandle | None = None

        def beat() -> None:
            nonlocal handle
            self._spawn(self._extend(scope, token))
            handle = loop.call_later(interval, beat)

        handle = loop.call_later(interval, beat)
        return lambda: handle.cancel() if handle is not None else None

    async def _extend(self, scope: tuple[str, str | None, str], token: str) -> None:
        try:
            await self.backend.extend(*scope, token, self.idempotency_lease)
        except ConnectorError as exc:  # the next beat tries again; the lease has slack
            self._log.warning(
                "nexus.idempotency.extend_failed",
                service=scope[0],
                idempotency_key=scope[2],
                error=type(exc).__name__,
            )

    # -- 2.-6. admission, attempts, retries ------------------------------------------------------

    async def _attempts(self, call: _Call, attempt: Callable[[_Call], Awaitable[_Outcome]]) -> Any:
        """The retry loop: admit, attempt, record, and decide whether to go again."""
        number = 0
        last: _Outcome | None = None
        while True:
            number += 1
            adm = await self._admit(call, is_retry=last is not None)
            if adm is None:  # a retry refused by breaker, limiter or budget: last one stands
                assert last is not None
                return self._finish(call, last, number - 1)
            per_attempt = self._per_attempt  # asked once: logging may be configured meanwhile
            started = self._clock.monotonic() if per_attempt else 0.0
            held = None
            if adm.slot:
                held = _Held(Slot(adm.slot, 0.0, adm.slot_generation), self._clock.monotonic())
            try:
                outcome = await attempt(
                    call._replace(probe=adm.probe, held=held) if adm.probe or held else call
                )
            except BaseException:
                if held is not None and not held.released:  # never got to the request
                    self._release_slot(call, held)
                if adm.probe:  # cancelled mid-flight: give the probe permit back
                    await self._cleanup(self.backend.release_probe(call.service, adm.probe))
                raise
            if held is not None and not held.released:
                self._release_slot(call, held)
            if call.progress is not None:
                call.progress.last = outcome
            if outcome.failure or not adm.clean or adm.probe:
                # Cancelled meanwhile, the record still lands (and frees a probe permit). A
                # failed record never costs the caller the vendor's answer (rule 16).
                try:
                    state = await self._finish_if_cancelled(
                        self.backend.record(
                            call.service, call.breaker, success=not outcome.failure, probe=adm.probe
                        )
                    )
                except ConnectorError as exc:
                    self.events.emit(BackendWriteFailed(call.service, "record", type(exc).__name__))
                    state = None
                if state is not None:
                    self.events.emit(CircuitStateChanged(call.service, state))
            if per_attempt:
                self.events.emit(
                    AttemptFinished(
                        call.service,
                        call.tenant,
                        call.label,
                        number,
                        getattr(outcome.value, "status", None),
                        type(outcome.error).__name__ if outcome.error else None,
                        self._clock.monotonic() - started,
                    )
                )
            if outcome.reauth is not None and not call.reauthed:
                call = call._replace(reauthed=True)
                number -= 1  # a rejected token is our problem, not a vendor attempt
                last = None
                continue
            if outcome.retry_after is not None and getattr(outcome.value, "status", 0) == 429:
                # Shared backpressure: every worker holds off this service until then.
                pause = min(outcome.retry_after, self.max_shared_pause)
                try:
                    await self.backend.pause(call.service, pause)
                except ConnectorError as exc:
                    self.events.emit(BackendWriteFailed(call.service, "pause", type(exc).__name__))
            delay = self._retry_delay(call, outcome, number)
            if delay is None:
                return self._finish(call, outcome, number)
            self.events.emit(RetryScheduled(call.service, call.label, number, delay))
            last = outcome
            if delay > 0:
                await self._clock.sleep(delay)

    def _retry_delay(self, call: _Call, outcome: _Outcome, number: int) -> float | None:
        """Seconds to wait before the next attempt, or None when this outcome is final."""
        policy = call.retry
        if not outcome.retryable or number >= policy.max_attempts:
            return None
        if not (call.resendable or outcome.vendor == UNTOUCHED):
            return None  # it may have reached a vendor that cannot deduplicate it
        delay = backoff(policy, number)
        if outcome.retry_after is not None:
            delay = max(delay, min(outcome.retry_after, policy.max_delay))
        if call.deadline_at is not None and self._clock.monotonic() + delay >= call.deadline_at:
            return None  # a retry that cannot finish before the deadline is not started
        return delay

    def _finish(self, call: _Call, outcome: _Outcome, attempts: int) -> Any:
        value = outcome.value
        status = None
        if isinstance(value, Response):
            value.attempts = attempts
            status = value.status
        error = outcome.error
        if self._per_call or error is not None or (status or 0) >= 500:
            self.events.emit(
                CallFinished(
                    call.service,
                    call.tenant,
                    call.label,
                    status,
                    type(error).__name__ if error is not None else None,
                    attempts,
                    self._clock.monotonic() - call.started,
                )
            )
        if error is not None:
            if isinstance(error, RequestTimeout):  # say what the caller waited for, in all
                error.attempts = attempts
                error.elapsed = self._clock.monotonic() - call.started
            raise error
        return value

    async def _admit(self, call: _Call, *, is_retry: bool) -> Admission | None:
        """Breaker and bucket in one backend call; sleep for a reserved token if allowed.

        A refused first attempt raises; a refused retry returns None so the caller surfaces
        the last real outcome instead.
        """
        shadow = call.service in self.shadow_services
        slot = None
        if call.concurrency is not None and not shadow:
            slot = self._slot_ask(call, call.concurrency)
        admit = functools.partial(
            self.backend.admit,
            call.service,
            call.tenant,
            call.breaker,
            call.limit,
            probe_lease=call.probe_lease,
            budget=call.retry if call.retry.budget_ratio is not None else None,
            is_retry=is_retry,
            shadow=shadow,
        )
        try:
            # `slot=` only when asked for: a backend of its own without slots keeps working.
            adm = await (admit() if slot is None else admit(slot=slot))
        except ConnectorError as exc:
            if not is_retry:
                raise
            # A retry the backend cannot admit: the vendor's last answer stands (rule 16).
            self.events.emit(BackendWriteFailed(call.service, "admit", type(exc).__name__))
            return None
        if adm.half_opened:  # reported once fleet-wide: only one admission makes the move
            self.events.emit(CircuitStateChanged(call.service, "half_open"))
        if adm.would_block != ADMITTED:
            self.events.emit(ShadowWouldBlock(call.service, _REASONS[adm.would_block]))
        if adm.reason != ADMITTED:
            self.events.emit(
                AdmissionRejected(call.service, _REASONS[adm.reason], adm.wait, is_retry)
            )
            if is_retry:
                return None
            if adm.reason == CIRCUIT_OPEN:
                raise CircuitOpenError(f"circuit open for {call.service!r}", retry_after=adm.wait)
            if adm.reason == CONCURRENCY_LIMITED:
                raise ConcurrencyLimitExceeded(
                    f"concurrency limit of {call.service!r} reached", retry_after=adm.wait
                )
            raise RateLimitExceeded(
                f"rate limit exceeded for {call.service!r}", retry_after=adm.wait
            )
        if adm.wait > 0:
            if call.deadline_at is not None and (
                self._clock.monotonic() + adm.wait > call.deadline_at
            ):
                if adm.probe:
                    await self.backend.release_probe(call.service, adm.probe)
                if is_retry:
                    return None
                raise RateLimitExceeded(
                    f"no token for {call.service!r} before the deadline", retry_after=adm.wait
                )
            try:
                await self._clock.sleep(adm.wait)
            except BaseException:
                if adm.probe:  # cancelled while waiting for a token: give the probe back
                    await self._cleanup(self.backend.release_probe(call.service, adm.probe))
                raise
        return adm

    @staticmethod
    def _slot_ask(call: _Call, limit: ConcurrencyLimit) -> SlotAsk:
        """The slot to take with the admission: the limit's scope, lease and fail-fast."""
        return SlotAsk(
            call.tenant if limit.scope == "tenant" else None,
            limit.max_in_flight,
            limit.lease if limit.lease is not None else call.probe_lease,
            limit.max_wait <= 0,
        )

    async def _http_attempt(
        self,
        provider: CredentialProvider | None,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: Timeouts,
        call: _Call,
    ) -> _Outcome:
        """Credentials, then one HTTP exchange, classified for the retry loop."""
        creds: Credentials | None = None
        if provider is not None and not _has_authorization(headers):
            creds = await provider.get_credentials(call.service, call.tenant)
            if creds is not None:
                headers = MaskedHeaders(headers)
                headers["Authorization"] = creds.authorization
        if call.deadline_at is not None:
            remaining = call.deadline_at - self._clock.monotonic()
            if remaining < timeout.total - _DEADLINE_SLACK:
                timeout = Timeouts(max(remaining, 0.001), timeout.connect, timeout.read)
        if call.probe:
            await self._renew_probe(call)
        progress = call.progress
        try:
            if call.concurrency is None:
                if progress is not None:
                    progress.sending = True
                response = await self._transport.send(method, url, headers, body, timeout)
            else:  # `sending` is set once the slot is ours: waiting for one sends nothing
                send = functools.partial(self._transport.send, method, url, headers, body, timeout)
                response = await self._in_slot(call, send, progress)
        except ConnectorError as exc:
            if progress is not None:
                progress.sending = False
            transient = exc.transient
            seen = UNKNOWN if transient and getattr(exc, "sent", True) else UNTOUCHED
            return _Outcome(None, exc, transient, transient, seen)
        # Cancelled (or crashed) at the vendor, `sending` stays set: the outcome is unknown.
        if progress is not None:
            progress.sending = False
        status = response.status
        if status < 300:
            return _Outcome(response, None, False, False, ANSWERED)  # the happy path
        if status == 401 and creds is not None and provider is not None and not call.reauthed:
            fresh = await _refresh(provider, call, creds)
            if fresh is not None and fresh.access_token != creds.access_token:
                return _Outcome(response, None, False, False, UNTOUCHED, reauth=creds)
        hint = call.retry.retry_hint  # the vendor's own verdict, when its adapter gave one
        verdict = None if hint is None else hint(response)
        retryable = verdict if verdict is not None else status in call.retry.retry_statuses
        retry_after = None
        if status in (429, 503) or "Retry-After" in response.headers:
            retry_after = parse_retry_after(response.headers.get("Retry-After"), time.time())
        return _Outcome(
            response,
            None,
            status >= 500,
            retryable,
            UNTOUCHED if status in call.retry.always_safe_statuses else ANSWERED,
            retry_after,
        )

    async def _renew_probe(self, call: _Call) -> None:
        """Rule 25: a probe permit covers the whole attempt; renew it right before sending.

        The token wait and the credential fetch may have outlasted its lease; if the permit was
        lost meanwhile (another probe may hold its slot), the request is not sent.
        """
        if not await self.backend.renew_probe(call.service, call.probe, call.probe_lease):
            raise CircuitOpenError(
                f"circuit open for {call.service!r}: the probe permit lapsed before sending",
                retry_after=call.probe_lease,
            )

    async def _in_slot(
        self,
        call: _Call,
        send: Callable[[], Awaitable[T]],
        progress: _Progress | None = None,
    ) -> T:
        """One attempt (an HTTP exchange, or a `call()` function) holding a fleet-wide slot,
        given back on every way out.

        The slot normally came with the admission (`call.held`); if none was free then (or
        the admission had to wait for its token), the attempt waits for one here, first come
        first served, within `max_wait` and the deadline.
        """
        limit = call.concurrency
        assert limit is not None
        scoped = call.tenant if limit.scope == "tenant" else None
        lease = limit.lease if limit.lease is not None else call.probe_lease
        backend: Any = self.backend
        held = call.held
        if held is None:
            wait = limit.max_wait
            if call.deadline_at is not None:
                wait = min(wait, max(0.0, call.deadline_at - self._clock.monotonic()))
            slot = await backend.acquire_slot(
                call.service, scoped, limit.max_in_flight, lease, wait
            )
            if not slot.acquired:
                self.events.emit(
                    AdmissionRejected(call.service, "concurrency_limit", slot.retry_after, False)
                )
                raise ConcurrencyLimitExceeded(
                    f"concurrency limit of {call.service!r} reached", retry_after=slot.retry_after
                )
            held = _Held(slot, self._clock.monotonic())
        token = held.slot.token
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None

        def renew() -> None:  # a long attempt keeps its slot: renewed every half lease
            nonlocal handle
            self._spawn(backend.renew_slot(call.service, scoped, token, lease))
            handle = loop.call_later(lease / 2.0, renew)

        started = self._clock.monotonic()
        handle = loop.call_later(max(0.0, lease / 2.0 - (started - held.taken_at)), renew)
        if progress is not None:
            progress.sending = True
        try:
            response = await send()
        except BaseException:
            handle.cancel()
            self._release_slot(call, held)
            raise
        handle.cancel()
        status = getattr(response, "status", 200)  # a `call()` result that returned succeeded
        if not limit.adaptive or not isinstance(status, int):
            self._release_slot(call, held)
            return response
        slow = (
            limit.latency_target is not None
            and self._clock.monotonic() - started > limit.latency_target
        )
        cut = status == 429 or slow
        if cut or status < 300:
            reason = ("slow" if slow else "throttled") if cut else "recovered"
            self._release_slot(call, held, Adapt(cut, limit.window, held.slot.generation), reason)
        else:
            self._release_slot(call, held)
        return response

    def _release_slot(
        self, call: _Call, held: _Held, adapt: Adapt | None = None, reason: str = ""
    ) -> None:
        """Give the slot back without waiting: the backend queues the release at once.

        It reaches Redis before anything this process sends next, and the caller does not wait
        for its reply (under load it shares a round trip with other calls' commands). With
        `adapt`, the AIMD step rides on the release (one script): a cut limit is in force
        before the freed slot goes to the next waiter; a change is reported once it lands.
        """
        held.released = True
        limit = call.concurrency
        assert limit is not None
        scoped = call.tenant if limit.scope == "tenant" else None
        backend: Any = self.backend
        future = asyncio.ensure_future(
            backend.release_slot(
                call.service, scoped, held.slot.token, limit.max_in_flight, adapt=adapt
            )
        )
        self._background.add(future)

        def landed(done: asyncio.Future[int | None]) -> None:
            self._background.discard(done)
            if done.cancelled():
                return
            exc = done.exception()
            if exc is not None:  # its lease frees the slot
                self._log.error("nexus.backend.cleanup_failed", error=type(exc).__name__)
                return
            new = done.result()
            if new is not None:
                self.events.emit(ConcurrencyLimitChanged(call.service, scoped, new, reason))

        future.add_done_callback(landed)

    async def _fn_attempt(
        self, fn: Callable[[], Awaitable[Any]], timeout: float | None, call: _Call
    ) -> _Outcome:
        if call.probe:
            await self._renew_probe(call)
        progress = call.progress
        ran = False

        async def run() -> Any:  # the timeout covers `fn` only, never a wait for a slot
            nonlocal ran
            ran = True
            if timeout is None:
                return await fn()
            async with asyncio.timeout(timeout):
                return await fn()

        try:
            if call.concurrency is None:
                if progress is not None:
                    progress.sending = True
                value = await run()
            else:  # `sending` is set once the slot is ours: waiting for one sends nothing
                value = await self._in_slot(call, run, progress)
        except TimeoutError:
            if progress is not None:
                progress.sending = False
            exc = RequestTimeout(f"{call.label} did not finish within {timeout:g}s")
            return _Outcome(None, exc, True, True, UNKNOWN)
        except ConnectorError as exc:
            if progress is not None:
                progress.sending = False
            throttled = bool(getattr(exc, "throttled", False))
            transient = exc.transient and not throttled
            if throttled or not getattr(exc, "sent", True) or not ran:
                seen = UNTOUCHED  # `not ran`: no slot came free, `fn` was never called
            elif isinstance(exc, RequestTimeout | ConnectionFailed | ResponseTooLarge):
                seen = UNKNOWN  # sent, no answer: the vendor may have acted on it
            else:
                seen = ANSWERED  # the vendor's own error (a rejection, a 5xx)
            return _Outcome(
                None,
                exc,
                transient,
                transient or throttled,
                seen,
                getattr(exc, "retry_after", None),
            )
        if progress is not None:
            progress.sending = False
        return _Outcome(value, None, False, False, ANSWERED)

    # -- housekeeping ------------------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _finish_if_cancelled(
        self, coro: Awaitable[T], undo: Callable[[T], Awaitable[Any] | None] | None = None
    ) -> T:
        """Await a backend write; if we are cancelled meanwhile, it still completes, then `undo`.

        The write runs as its own task, so a cancellation cannot cut it off halfway; whatever it
        then took (a key, a permit) is handed back by `undo` in the background.
        """
        task = asyncio.ensure_future(coro)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            self._background.add(task)

            def settled(done: asyncio.Future[T]) -> None:
                self._background.discard(task)
                if done.cancelled() or done.exception() is not None:
                    return  # a failed write took nothing; its error was the caller's, now moot
                if undo is not None:
                    cleanup = undo(done.result())
                    if cleanup is not None:
                        self._spawn(cleanup)

            task.add_done_callback(settled)
            raise

    def _unclaim(
        self, scope: tuple[str, str | None, str]
    ) -> Callable[[Claim], Awaitable[None] | None]:
        """Release a key a cancelled caller acquired without ever learning it did."""

        def undo(claim: Claim) -> Awaitable[None] | None:
            if claim.state != "acquired":
                return None
            return self.backend.release(*scope, claim.token)

        return undo

    async def _cleanup(self, coro: Awaitable[T]) -> T | None:
        """Run a release even if we are being cancelled; a backend failure is only logged.

        Returns what the release returned (None after a failure).
        """
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            raise
        except ConnectorError as exc:
            self._log.error("nexus.backend.cleanup_failed", error=type(exc).__name__)
            return None


async def _refresh(
    provider: CredentialProvider, call: _Call, rejected: Credentials
) -> Credentials | None:
    if isinstance(provider, RefreshesRejected):
        return await provider.refresh_if_current(call.service, call.tenant, rejected)
    return await provider.refresh_credentials(call.service, call.tenant)


def _final_answer(progress: _Progress) -> _Outcome | None:
    """The vendor's final answer, if the call was interrupted after it came (else None).

    Final: an answer (no error) the retry loop would not send again, and no attempt is out.
    """
    last = progress.last
    if progress.sending or last is None or last.error is not None:
        return None
    if last.retryable or last.reauth is not None:
        return None
    return last


def _outcome_unknown(call: _Call, progress: _Progress) -> bool:
    """Whether a keyed call that ended in an exception may have reached the vendor unanswered.

    Only for calls that are not resendable: those keep their key `unknown` (rule 19); the
    others release it, and the vendor deduplicates a resend.
    """
    if call.resendable:
        return False
    if progress.sending:  # cancelled (or crashed) while the request was at the vendor
        return True
    last = progress.last
    return last is not None and last.error is not None and last.vendor == UNKNOWN


def _store_response(unstored: frozenset[int], response: Response) -> bytes | None:
    """Final answers (2xx, 4xx) are stored; "not processed" ones (5xx, `unstored`) release it."""
    if response.status >= 500 or response.status in unstored:
        return None
    return _encode_stored(
        _Stored(
            response.status,
            [(str(k), v) for k, v in response.headers.items()],
            response.body,
            response.attempts,
        )
    )


def _replayed(replay: Callable[[bytes], T], stored: bytes | None) -> T:
    """A stored result, decoded; one that does not decode is never replayed (api.md 29)."""
    try:
        return replay(stored or b"")
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        raise StoredRecordInvalid(
            "the stored result for this idempotency key cannot be read (corrupted, an old "
            "layout, or not written by this library): it is not replayed"
        ) from None


def _replay_response(data: bytes) -> Response:
    s = _decode_stored(data)
    return Response(s.status, s.headers, s.body, replayed=True, attempts=s.attempts)
