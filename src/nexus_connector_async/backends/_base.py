"""What a state backend stores, as Protocols: admission (breaker + bucket), idempotency, key-value.

Admission is one call on purpose: the circuit breaker check, the half-open probe permit, the
shared pause (backpressure), the retry budget, the token take and a free concurrency slot
(api.md 26) happen together, so the Redis backend answers them with one script in one round trip.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Literal, NamedTuple, Protocol, runtime_checkable

from .._config import CircuitBreakerConfig, RateLimitConfig, RetryPolicy
from ._slots import SlotAsk

__all__ = [
    "ADMITTED",
    "BUDGET_EXHAUSTED",
    "CIRCUIT_OPEN",
    "CONCURRENCY_LIMITED",
    "RATE_LIMITED",
    "Admission",
    "AdmissionReason",
    "AdmissionStore",
    "AdmitAsk",
    "Backend",
    "Claim",
    "ClaimAdmitStore",
    "ClaimState",
    "IdempotencyStore",
    "KeyValueStore",
    "MemoryPermit",
    "ProbePermit",
    "RedisPermit",
]


class AdmissionReason(IntEnum):
    """Why an admission said yes or no. Integers: admit.lua returns the same numbers."""

    ADMITTED = 0
    CIRCUIT_OPEN = 1
    RATE_LIMITED = 2
    BUDGET_EXHAUSTED = 3
    CONCURRENCY_LIMITED = 4  # no concurrency slot free, and the caller would not wait for one


# The members under their old module-level names (the connector and tests import these).
ADMITTED = AdmissionReason.ADMITTED
CIRCUIT_OPEN = AdmissionReason.CIRCUIT_OPEN
RATE_LIMITED = AdmissionReason.RATE_LIMITED
BUDGET_EXHAUSTED = AdmissionReason.BUDGET_EXHAUSTED
CONCURRENCY_LIMITED = AdmissionReason.CONCURRENCY_LIMITED


class ProbePermit(str):
    """A half-open probe permit: an opaque id; its class tells which store granted it.

    A `str` (immutable, slot-free), so callers keep it as they keep any id and hand it back;
    a Redis backend that fell back to process memory tells its local permits from Redis's by
    type, never by parsing the id.
    """

    __slots__ = ()


class MemoryPermit(ProbePermit):
    """A permit granted by a `MemoryBackend` (in a Redis backend: its `local` fallback)."""

    __slots__ = ()


class RedisPermit(ProbePermit):
    """A permit granted by admit.lua, held in the service's probe zset."""

    __slots__ = ()


class Admission(NamedTuple):
    """The answer to "may this attempt go now?".

    `reason` is `AdmissionReason.ADMITTED` or why not. When admitted, `wait` is how long to
    sleep first (a token reserved within `max_wait`); when refused, it is the retry-after in
    seconds. `probe` is the half-open permit this attempt holds (a `ProbePermit`; "" if none).
    `clean` means the breaker is closed with no failures on record, so a success needs no
    `record()` round trip. `would_block` is the reason
    a shadow-mode admission would have refused (ADMITTED otherwise). `half_opened` is True for
    the one admission, fleet-wide, that moved the breaker from open to half-open. `slot` is the
    concurrency slot taken with the admission ("" if none was asked for or free; see
    `SlotAsk`), `slot_generation` the adaptive limit's generation it was taken under.
    """

    reason: AdmissionReason
    wait: float
    probe: str = ""
    clean: bool = False
    would_block: AdmissionReason = AdmissionReason.ADMITTED
    half_opened: bool = False
    slot: str = ""
    slot_generation: int = 0

    @property
    def admitted(self) -> bool:
        return self.reason == AdmissionReason.ADMITTED


ClaimState = Literal["acquired", "completed", "in_progress", "conflict", "unknown"]


class Claim(NamedTuple):
    """The answer to claiming an idempotency key.

    `acquired`: we own the key until the lease ends; `token` fences our writes.
    `completed`: `stored` holds the final result. `in_progress`: someone else owns it.
    `conflict`: the key was used for a different request fingerprint. `unknown`: a call that
    the vendor cannot deduplicate may have reached it, with no answer seen (at most once: nothing
    may send it again until the key's ttl ends or the application forgets it).
    """

    state: ClaimState
    token: str = ""
    stored: bytes | None = None


@runtime_checkable
class AdmissionStore(Protocol):
    """Circuit breaker, token bucket, shared pause and retry budget of each service."""

    async def admit(
        self,
        service: str,
        tenant: str | None,
        breaker: CircuitBreakerConfig,
        limit: RateLimitConfig | None,
        *,
        probe_lease: float,
        budget: RetryPolicy | None = None,
        is_retry: bool = False,
        shadow: bool = False,
        slot: SlotAsk | None = None,
    ) -> Admission:
        """Decide whether one attempt may go, atomically taking a token and/or probe permit,
        and the concurrency slot of `slot` when one is free.

        If the caller is cancelled while the decision is in flight, the implementation gives
        back a probe permit or slot it granted (the memory backend never suspends here; Redis
        hands those of an orphaned reply back at once).
        """
        ...

    async def record(
        self, service: str, breaker: CircuitBreakerConfig, *, success: bool, probe: str = ""
    ) -> str | None:
        """Feed an attempt's outcome to the breaker; returns the new state if it changed."""
        ...

    async def release_probe(self, service: str, probe: str) -> None:
        """Give back a half-open permit whose attempt never reported (cancelled)."""
        ...

    async def renew_probe(self, service: str, probe: str, lease: float) -> bool:
        """Push a probe permit's lease end to now + `lease`, just before its request is sent.

        True if the attempt may go: the permit is still held (renewed), or the breaker closed
        meanwhile. False if the permit was lost (pruned after its lease, so its slot may be
        another probe's, or the breaker re-opened): the request must not be sent (rule 25).
        """
        ...

    async def pause(self, service: str, seconds: float) -> None:
        """Shared backpressure: admit nothing for the service for `seconds` (vendor 429)."""
        ...


@runtime_checkable
class IdempotencyStore(Protocol):
    """Locks with leases and stored results for idempotency keys, scoped by (service, tenant)."""

    async def claim(
        self,
        service: str,
        tenant: str | None,
        key: str,
        fingerprint: str,
        lease: float,
        *,
        unknown_ttl: float | None = None,
    ) -> Claim:
        """Take the key if it is free (`SET NX` with a lease), else report its state.

        With `unknown_ttl` (a call the vendor cannot deduplicate), a lease that ends with no
        result (the owner died) leaves the key `unknown` for `unknown_ttl` seconds, not free.
        """
        ...

    async def complete(
        self, service: str, tenant: str | None, key: str, token: str, result: bytes, ttl: float
    ) -> bool:
        """Store the final result for `ttl` seconds; only the current owner (`token`) may."""
        ...

    async def release(self, service: str, tenant: str | None, key: str, token: str) -> None:
        """Free the key after a transient failure so that a retry may claim it."""
        ...

    async def extend(
        self, service: str, tenant: str | None, key: str, token: str, lease: float
    ) -> bool:
        """Extend our lease while a long call is still in flight."""
        ...

    async def mark_unknown(
        self, service: str, tenant: str | None, key: str, token: str, ttl: float
    ) -> bool:
        """Keep our key `unknown` for `ttl` seconds: the request may have reached the vendor.

        Owner only (`token`); False if the key is no longer ours or already completed.
        """
        ...

    async def forget(self, service: str, tenant: str | None, key: str) -> bool:
        """Free an `unknown` key once the application has reconciled it; True if it was one."""
        ...

    async def wait(
        self,
        service: str,
        tenant: str | None,
        key: str,
        fingerprint: str,
        lease: float,
        timeout: float,
        *,
        unknown_ttl: float | None = None,
    ) -> Claim:
        """Wait up to `timeout` for an in-progress key; claims it if it is released meanwhile."""
        ...


@runtime_checkable
class KeyValueStore(Protocol):
    """A small shared key-value and lock surface (OAuth token cache, single-flight refresh)."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None: ...

    async def add(
        self,
        key: str,
        amount: int,
        *,
        limit: int | None = None,
        ttl: float | None = None,
        strict: bool = False,
    ) -> tuple[bool, int]:
        """Atomically add `amount` (may be negative) to an integer counter, never below 0.

        Refused (returns `(False, total)`, nothing changed) when a positive `amount` would take
        the total past `limit`. `ttl` applies when the counter is created. Spend guards use it.
        With `strict=True` a backend that cannot reach its shared store raises
        `BackendUnavailable` whatever its `on_unavailable` mode: a local or fail-open count
        would restart from zero and let a spend guard pass its limit.
        """
        ...

    async def delete(self, key: str) -> None: ...

    async def acquire_lock(self, key: str, token: str, lease: float) -> bool:
        """`SET NX` with a lease; True if we now hold the lock."""
        ...

    async def release_lock(self, key: str, token: str) -> None:
        """Release the lock only if we still hold it."""
        ...

    async def extend_lock(self, key: str, token: str, lease: float) -> bool:
        """Push the lease of a lock we still hold to now + `lease`; False if we lost it."""
        ...

    async def compare_and_set(
        self, key: str, expected: bytes | None, value: bytes, ttl: float | None = None
    ) -> bool:
        """Store `value` only if the live value is still `expected` (None: no value); True if
        stored. OAuth refresh-token rotation uses it so an old chain never overwrites a new one."""
        ...


class AdmitAsk(NamedTuple):
    """The admission a call's first attempt asks for (`AdmissionStore.admit`'s arguments)."""

    breaker: CircuitBreakerConfig
    limit: RateLimitConfig | None
    probe_lease: float
    budget: RetryPolicy | None = None
    shadow: bool = False
    slot: SlotAsk | None = None


@runtime_checkable
class ClaimAdmitStore(Protocol):
    """A backend that claims a key and admits the first attempt in one step (one round trip
    instead of two on a remote backend). Optional: the connector uses it when present."""

    async def claim_admit(
        self,
        service: str,
        tenant: str | None,
        key: str,
        fingerprint: str,
        lease: float,
        ask: AdmitAsk,
        *,
        unknown_ttl: float | None = None,
    ) -> tuple[Claim, Admission | None]:
        """`claim`, then, only if it acquired the key, `admit(..., is_retry=False)` with `ask`:
        decided as the two calls in a row would be. The admission is None when the key was
        not acquired. Raises `BackendUnavailable` in any outage (as `claim` does).

        Cancellation-safe: if the caller is cancelled while this runs, whatever it took (the
        key, a probe permit, a concurrency slot) is handed back by the store, at once or when
        its reply arrives. The connector awaits it without a shielding task."""
        ...


@runtime_checkable
class Backend(AdmissionStore, IdempotencyStore, KeyValueStore, Protocol):
    """Everything the connector and credential providers keep in shared state."""

    async def aclose(self) -> None:
        """Release connections; the backend is unusable afterwards."""
        ...
