"""Idempotency: a keyed call runs at most once; repeats replay its stored result.

The layer claims the key (or replays, waits for, or refuses the call), coordinates the tasks
of one process without asking the backend (local single-flight), keeps the claim's lease
alive while the call runs (heartbeat), and settles the key when the call ends: the final
answer stored, the key released for a resend, or kept `unknown` (rules 16, 19). A claim or
settle cut off by a cancellation still lands and is undone or repeated in the background.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, TypeVar

import msgspec

from .._clock import wait_or_timeout
from .._encoding import fingerprint
from .._errors import (
    ConnectorError,
    IdempotencyConflict,
    IdempotencyInProgress,
    OutcomeUnknown,
    StoredRecordInvalid,
)
from .._events import BackendWriteFailed, IdempotentReplay, OutcomeUnknownEvent
from .._models import IdempotencyKey, Response
from ..backends._base import Admission, Claim, ClaimAdmitStore
from ._admission import Gate
from ._call import Call, Progress, Settings, Wiring
from ._outcome import UNKNOWN, Outcome

__all__ = [
    "Idempotency",
    "Stored",
    "fingerprint",
    "replay_response",
    "store_response",
]

T = TypeVar("T")
Scope = tuple[str, str | None, str]  # (service, tenant, key digest)

# How a claimed key is settled when its call ends.
_STORE, _RELEASE, _UNKNOWN = "complete", "release", "mark_unknown"
_SETTLE_FIRST_DELAY, _SETTLE_MAX_DELAY = 0.05, 5.0  # background retries of a settle


class Stored(msgspec.Struct, array_like=True):
    """What the idempotency store keeps for a finished HTTP call."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    attempts: int


_encode_stored = msgspec.msgpack.Encoder().encode
_decode_stored = msgspec.msgpack.Decoder(Stored).decode


def store_response(unstored: frozenset[int], response: Response) -> bytes | None:
    """Final answers (2xx, 4xx) are stored; "not processed" ones (5xx, `unstored`) release it."""
    if response.status >= 500 or response.status in unstored:
        return None
    return _encode_stored(
        Stored(
            response.status,
            [(str(k), v) for k, v in response.headers.items()],
            response.body,
            response.attempts,
        )
    )


def replay_response(data: bytes) -> Response:
    """The stored response of an HTTP call, marked `replayed`."""
    s = _decode_stored(data)
    return Response(s.status, s.headers, s.body, replayed=True, attempts=s.attempts)


def _replayed(replay: Callable[[bytes], T], stored: bytes | None) -> T:
    """A stored result, decoded; one that does not decode is never replayed (api.md 29)."""
    try:
        return replay(stored or b"")
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        raise StoredRecordInvalid(
            "the stored result for this idempotency key cannot be read (corrupted, an old "
            "layout, or not written by this library): it is not replayed"
        ) from None


def _final_answer(progress: Progress) -> Outcome | None:
    """The vendor's final answer, if the call was interrupted after it came (else None).

    Final: an answer (no error) the retry loop would not send again, and no attempt is out.
    """
    last = progress.last
    if progress.sending or last is None or last.error is not None:
        return None
    if last.retryable or last.reauth is not None:
        return None
    return last


def _outcome_unknown(call: Call, progress: Progress) -> bool:
    """Whether a keyed call that ended in an exception may have reached the vendor unanswered.

    Only for calls that are not resend-safe: those keep their key `unknown` (rule 19); the
    others release it, and the vendor deduplicates a resend.
    """
    if call.resend_safe:
        return False
    if progress.sending:  # cancelled (or crashed) while the request was at the vendor
        return True
    last = progress.last
    return last is not None and last.error is not None and last.vendor == UNKNOWN


class Idempotency:
    """Runs keyed calls at most once per key, fleet-wide (the backend) and in-process."""

    __slots__ = (
        "_claim_admit",
        "_fingerprints",
        "_gate",
        "_heartbeat",
        "_inflight",
        "_settings",
        "_wiring",
    )

    def __init__(self, wiring: Wiring, settings: Settings, gate: Gate | None = None) -> None:
        self._wiring = wiring
        # A backend that admits the first attempt with the claim saves a round trip per call.
        self._gate = gate
        backend = wiring.backend
        self._claim_admit = backend if isinstance(backend, ClaimAdmitStore) and gate else None
        # `idempotency_wait`: how long a repeat waits for the call holding its key;
        # `idempotency_lease`: the claim's lease, extended while the call runs.
        self._settings = settings
        self._inflight: dict[Scope, asyncio.Future[bytes | None]] = {}
        self._fingerprints: dict[Scope, str] = {}
        self._heartbeat = _Heartbeat(settings, wiring.tasks.spawn, self._extend)

    async def run(
        self,
        call: Call,
        key: IdempotencyKey,
        fp: str,
        attempts: Callable[[Call], Awaitable[Any]],
        store: Callable[[Any], bytes | None],
        replay: Callable[[bytes], Any],
    ) -> Any:
        """Run the call at most once per key: replay, wait for, or claim and run it.

        `attempts` runs the call (the retry loop), `store` encodes its final value (None: not
        stored, the key is released) and `replay` decodes a stored one.
        """
        wiring = self._wiring
        clock, backend, tasks = wiring.clock, wiring.backend, wiring.tasks
        scope = (call.service, call.tenant, key.digest)
        wait, lease = self._settings.idempotency_wait, self._settings.idempotency_lease
        deadline = clock.monotonic() + wait
        replayed = IdempotentReplay(call.service, call.tenant, key.digest)
        # A call the vendor cannot deduplicate is armed: if we die holding the key, its lease
        # ends as "unknown", not free (rule 19).
        unknown_ttl = None if call.resend_safe else key.ttl
        admitted: Admission | None = None
        while True:
            local = self._inflight.get(scope)
            if local is not None:
                # Another task of this process runs it: wait here, without asking the backend.
                if self._fingerprints.get(scope) != fp:
                    raise IdempotencyConflict("idempotency key reused for a different request")
                stored = await self._wait_local(local, deadline - clock.monotonic())
                if stored is not None:
                    wiring.events.emit(replayed)
                    return replay(stored)
                continue  # the holder released the key (or left it unknown): ask the backend
            # A cancellation while a claim is in flight must not strand the key for its lease.
            if self._claim_admit is not None:
                claim, admitted = await self._claim_and_admit(call, scope, fp, unknown_ttl)
            else:
                claim = await tasks.shielded(
                    backend.claim(*scope, fp, lease, unknown_ttl=unknown_ttl),
                    self._unclaim(scope),
                )
            if claim.state == "in_progress":
                remaining = deadline - clock.monotonic()
                claim = await tasks.shielded(
                    backend.wait(*scope, fp, lease, remaining, unknown_ttl=unknown_ttl),
                    self._unclaim(scope),
                )
            if claim.state == "completed":
                result = _replayed(replay, claim.stored)
                wiring.events.emit(replayed)
                return result
            if claim.state == "conflict":
                raise IdempotencyConflict("idempotency key reused for a different request")
            if claim.state == "unknown":
                raise OutcomeUnknown(service=call.service, idempotency_key=key.caller_value)
            if claim.state == "in_progress":
                raise IdempotencyInProgress(f"idempotency key still in progress after {wait:g}s")
            break
        # We own the key (inline, not a coroutine of its own: one frame fewer per keyed call):
        # run the call, then store its final answer, release the key, or keep it unknown. The
        # heartbeat keeps our lease until the backend has taken that.
        token = claim.token
        future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._inflight[scope] = future
        self._fingerprints[scope] = fp
        owned = _Owned(scope, token, key.ttl)
        self._heartbeat.hold(scope, token)
        progress = call.progress  # made with the call by `execute` (no copy of it here)
        if progress is None:
            progress = Progress()
            call = call._replace(progress=progress)
        progress.admitted = admitted
        stored_bytes: bytes | None = None
        interrupted: BaseException | None = None
        try:
            try:
                value = await attempts(call)
            except BaseException as exc:
                answer = _final_answer(progress)
                if answer is None:
                    action = _UNKNOWN if _outcome_unknown(call, progress) else _RELEASE
                    await self._settle_recorded(owned, progress, call, action, None)
                    raise
                # Interrupted after the vendor's final answer (cancelled in the breaker record
                # that follows it): the answer is the key's all the same (rule 16).
                value, interrupted = answer.value, exc
            try:
                stored_bytes = store(value)
            except BaseException:  # an answer we cannot encode: never free a sent call for resend
                action = _RELEASE if call.resend_safe else _UNKNOWN
                await self._settle_recorded(owned, progress, call, action, None)
                raise
            action = _RELEASE if stored_bytes is None else _STORE
            await self._settle_recorded(owned, progress, call, action, stored_bytes)
            if interrupted is not None:
                raise interrupted
            return value
        finally:
            del self._inflight[scope]
            del self._fingerprints[scope]
            future.set_result(stored_bytes)
            if progress.admitted is not None and self._gate is not None:  # no attempt took it
                await tasks.cleanup(self._gate.discard(call, progress.admitted))
            if progress.unrecorded is not None and self._gate is not None:  # never settled
                tasks.spawn(self._gate.record(call, *progress.unrecorded))

    def _settle_recorded(
        self, owned: _Owned, progress: Progress, call: Call, action: str, data: bytes | None
    ) -> Awaitable[Any]:
        """Settle the key; the last attempt's breaker record, if it waits (`Progress.unrecorded`),
        goes out with it: both writes leave in one batch, so one round trip, not two.

        Returns what to await (not a coroutine of its own: one frame fewer per keyed call)."""
        unrecorded, progress.unrecorded = progress.unrecorded, None
        if unrecorded is None or self._gate is None:
            return self._settle(owned, action, data)
        # Neither raises but for a cancellation: a failed record is reported, a failed settle
        # reported and repeated in the background; cancelled, the record still lands.
        record = self._gate.record(call, *unrecorded)
        return asyncio.gather(record, self._settle(owned, action, data))

    async def _settle(self, owned: _Owned, action: str, data: bytes | None) -> None:
        """Settle the key: store the answer, release it, or keep it unknown (rules 16, 19).

        The first try runs inline (no task on the happy path). A backend failure is reported
        and the try repeated in the background, with the lease kept alive, until the backend
        takes it: the caller keeps its answer and nobody can claim the key meanwhile. If we are
        cancelled during the try, it is repeated in the background too (the first one may have
        landed: a refused repeat is then no lost lease).
        """
        spawn = self._wiring.tasks.spawn
        try:
            await self._settle_once(owned, action, data, retried=False)
        except asyncio.CancelledError:
            spawn(self._settle_until_done(owned, action, data))
            raise
        except ConnectorError as exc:
            self._report_settle_failure(owned.scope, action, exc)
            spawn(self._settle_until_done(owned, action, data))
            return
        self._heartbeat.drop(owned.scope, owned.token)

    async def _settle_once(
        self, owned: _Owned, action: str, data: bytes | None, *, retried: bool
    ) -> None:
        """One try at settling the key; raises `ConnectorError` if the backend did not answer."""
        wiring = self._wiring
        backend = wiring.backend
        scope, token, ttl = owned.scope, owned.token, owned.ttl
        if action == _STORE:
            assert data is not None
            ok = await backend.complete(*scope, token, data, ttl)
        elif action == _UNKNOWN:
            ok = await backend.mark_unknown(*scope, token, ttl)
            if ok:
                wiring.events.emit(OutcomeUnknownEvent(*scope))
        else:
            await backend.release(*scope, token)
            ok = True
        if ok:
            return
        if retried:  # a repeat may find what an earlier try (cancelled, or failed late) wrote
            wiring.log.info(
                "nexus.idempotency.settle_refused", service=scope[0], idempotency_key=scope[2]
            )
        else:
            wiring.log.warning(
                "nexus.idempotency.lease_lost", service=scope[0], idempotency_key=scope[2]
            )

    def _report_settle_failure(self, scope: Scope, action: str, exc: ConnectorError) -> None:
        final = self._wiring.tasks.closed
        self._wiring.events.emit(
            BackendWriteFailed(scope[0], action, type(exc).__name__, scope[2], final=final)
        )

    async def _settle_until_done(self, owned: _Owned, action: str, data: bytes | None) -> None:
        """Repeat the settle in the background until the backend takes it (or we close).

        The first repeat goes at once (a dead pooled connection is replaced by then), later
        ones back off up to `_SETTLE_MAX_DELAY`.
        """
        tasks = self._wiring.tasks
        delay = 0.0
        try:
            while True:
                if delay > 0:
                    await tasks.pause_unless_closing(self._wiring.clock, delay)
                try:
                    await self._settle_once(owned, action, data, retried=True)
                    return
                except ConnectorError as exc:
                    self._report_settle_failure(owned.scope, action, exc)
                    if tasks.closed:
                        return  # given up: the lease (or, at most once, the unknown state) decides
                delay = min(max(delay * 2.0, _SETTLE_FIRST_DELAY), _SETTLE_MAX_DELAY)
        finally:
            self._heartbeat.drop(owned.scope, owned.token)

    async def _wait_local(
        self, future: asyncio.Future[bytes | None], timeout: float
    ) -> bytes | None:
        """Wait for the task of this process that holds the key; its stored bytes, or None."""
        if timeout <= 0:
            raise IdempotencyInProgress("idempotency key still in progress")
        await wait_or_timeout(future, self._wiring.clock, timeout)
        if not future.done():
            raise IdempotencyInProgress(
                f"idempotency key still in progress after {self._settings.idempotency_wait:g}s"
            )
        return future.result()

    async def _extend(self, scope: Scope, token: str) -> None:
        try:
            await self._wiring.backend.extend(*scope, token, self._settings.idempotency_lease)
        except ConnectorError as exc:  # the next beat tries again; the lease has slack
            self._wiring.log.warning(
                "nexus.idempotency.extend_failed",
                service=scope[0],
                idempotency_key=scope[2],
                error=type(exc).__name__,
            )

    def _claim_and_admit(
        self, call: Call, scope: Scope, fp: str, unknown_ttl: float | None
    ) -> Awaitable[tuple[Claim, Admission | None]]:
        """Claim the key and admit the first attempt in one backend step (`ClaimAdmitStore`).

        Awaited as it is, without a shielding task (nor a frame of its own): the store hands
        back what a cancelled caller took (its contract)."""
        gate, backend = self._gate, self._claim_admit
        assert gate is not None
        assert backend is not None
        lease = self._settings.idempotency_lease
        return backend.claim_admit(*scope, fp, lease, gate.ask(call), unknown_ttl=unknown_ttl)

    def _unclaim(self, scope: Scope) -> Callable[[Claim], Awaitable[None] | None]:
        """Release a key a cancelled caller acquired without ever learning it did."""
        backend = self._wiring.backend

        def undo(claim: Claim) -> Awaitable[None] | None:
            if claim.state != "acquired":
                return None
            return backend.release(*scope, claim.token)

        return undo


class _Owned(NamedTuple):
    """A key this call holds: what settling it needs."""

    scope: Scope
    token: str
    ttl: float  # how long its final answer (or its unknown state) is kept


class _Heartbeat:
    """Keeps the leases of the keys this connector holds alive: one timer for all of them.

    Every sixth of `idempotency_lease` it extends each key claimed or last extended a third of
    a lease ago or more, so every key is renewed within half a lease. A key costs a dict entry
    and no timer of its own (a timer per keyed call meant heap pushes and a cancel; a closure
    that re-armed itself, before that, a reference cycle). The timer stops when none is held.
    """

    __slots__ = ("_extend", "_handle", "_held", "_loop", "_settings", "_spawn")

    def __init__(
        self,
        settings: Settings,
        spawn: Callable[[Awaitable[Any]], object],
        extend: Callable[[Scope, str], Awaitable[None]],
    ) -> None:
        self._settings, self._spawn, self._extend = settings, spawn, extend
        # scope -> (token, loop time it was claimed or last extended), oldest first
        self._held: dict[Scope, tuple[str, float]] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def hold(self, scope: Scope, token: str) -> None:
        """Keep the lease of `scope` (just claimed with `token`) alive until `drop`."""
        loop = asyncio.get_running_loop()
        self._held[scope] = (token, loop.time())
        if self._handle is None or self._loop is not loop:
            self._loop = loop
            self._handle = loop.call_later(self._settings.idempotency_lease / 6.0, self._beat)

    def drop(self, scope: Scope, token: str) -> None:
        """Stop renewing `scope` if `token` still holds it here (the backend took its settle)."""
        held = self._held.get(scope)
        if held is not None and held[0] == token:
            del self._held[scope]

    def _beat(self) -> None:
        loop = self._loop
        assert loop is not None
        held = self._held
        lease = self._settings.idempotency_lease
        now = loop.time()
        due = now - lease / 3.0
        for scope, (token, at) in list(held.items()):
            if at > due:
                break  # oldest first: the rest were claimed (or renewed) later
            del held[scope]
            held[scope] = (token, now)  # to the end: the order stays that of renewal
            self._spawn(self._extend(scope, token))
        self._handle = loop.call_later(lease / 6.0, self._beat) if held else None
