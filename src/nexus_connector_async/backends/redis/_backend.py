"""`RedisBackend`: breaker, bucket, idempotency and KV state shared by every worker via Redis.

Every read-modify-write is one Lua script reading Redis `TIME` (see `lua/`), so workers on
different hosts never race or disagree about time. Concurrent calls' scripts are coalesced into
one pipelined round trip per event-loop tick (`_batch.Pipeliner`).

While Redis cannot be reached, `on_unavailable` decides:

- ``"fail_closed"`` (the default, the safe choice for payments): every call raises
  `BackendUnavailable`.
- ``"fail_open"``: nothing is blocked (no limiter, no breaker); logged loudly.
- ``"local"``: buckets and breakers live in an in-process `MemoryBackend` until Redis answers.

In every mode idempotency keys raise `BackendUnavailable` while Redis is down: a call must never
silently lose its at-most-once guarantee. The shared KV store (token cache, refresh lock) falls
back to process memory in ``fail_open`` and ``local``. A dead Redis costs a call at most
`timeout` (about a second); reconnect attempts are spaced out with backoff, and scripts are
reloaded by themselves when the server comes back without them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Callable
from typing import Any, Literal

from redis.asyncio import Redis, RedisCluster
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..._clock import SYSTEM_CLOCK, Clock, wait_or_timeout
from ..._config import CircuitBreakerConfig, RateLimitConfig, RetryPolicy
from ..._errors import BackendUnavailable, InvalidRequest, StoredRecordInvalid
from ..._events import BackendUnavailableEvent, Event
from ..._extras import require_extra
from ..._logging import get_logger
from .._base import ADMITTED, Admission, Claim
from .._memory import MemoryBackend
from .._slots import Adapt, Slot, SlotAsk
from ._batch import (
    Health,
    NotReplicated,
    Pipeliner,
    RedisUnreachable,
    as_backend_error,
    is_outage,
    pack,
    pool_full,
)
from ._cluster import NodeSender
from ._keys import check_prefix, key
from ._scripts import Scripts, register

__all__ = ["DEFAULT_ON_UNAVAILABLE", "OnUnavailable", "RedisBackend"]

OnUnavailable = Literal["fail_closed", "fail_open", "local"]
Durability = Literal["primary", "replica"]
DEFAULT_ON_UNAVAILABLE: OnUnavailable = "fail_closed"
_MODES = ("fail_closed", "fail_open", "local")

_OPEN_DOOR = Admission(ADMITTED, 0.0, "", True)  # fail_open: admit, and skip record()
_CLAIM_STATES: tuple[
    Literal["acquired", "completed", "in_progress", "conflict", "unknown"], ...
] = (
    "acquired",
    "completed",
    "in_progress",
    "conflict",
    "unknown",
)
_CACHE_MAX = 10_000  # cached key names and admission commands (services x tenants x settings)
_BLOCK_CAP = 0.5  # longest single BLMOVE: below any sane socket timeout; waiters then re-check
_FULL_POOL_PAUSE = 0.02  # a waiter that found the connection pool full waits this long instead


def _num(value: float) -> bytes:
    return repr(float(value)).encode()


class RedisBackend:
    """State shared by every worker in Redis or Redis Cluster.

    `client` is a `redis.asyncio.Redis` or `redis.asyncio.RedisCluster` (with
    `decode_responses=False`); `prefix` starts every key name; `on_unavailable` picks what happens
    while Redis is unreachable (see the module docstring; default ``"fail_closed"``). `clock` is
    for tests only: scripts then take their time from it instead of Redis `TIME`, so only a
    `nexus_connector_async.testing.FakeClock` is accepted (api.md rule 22: client time, which
    differs between hosts, never reaches a production script); any other clock raises
    `ConfigError`. `timeout` bounds every round trip, whatever the client's own socket settings.

    `result_key` (16, 24 or 32 random bytes; the `crypto` extra) encrypts and authenticates
    every stored result with AES-GCM, the record's name as associated data: a record altered,
    moved to another key or planted by someone with write access raises `StoredRecordInvalid`
    and is never replayed.

    `durability="replica"` makes idempotency claims and stored results wait (up to
    `replica_timeout` seconds) until one replica acknowledged them (`WAIT 1`, in the same round
    trip as the script), so a failover right after cannot lose them; a write no replica took in
    time raises `BackendUnavailable` (a claim then sends nothing). The default ``"primary"``
    answers as soon as the master has the write (asynchronous replication).
    """

    def __init__(
        self,
        client: Redis | RedisCluster,
        prefix: str = "nexus",
        on_unavailable: OnUnavailable = DEFAULT_ON_UNAVAILABLE,
        clock: Clock | None = None,
        *,
        timeout: float = 1.0,
        owns_client: bool = False,
        durability: Durability = "primary",
        replica_timeout: float = 0.25,
        result_key: bytes | None = None,
    ) -> None:
        if not isinstance(client, Redis | RedisCluster):
            raise InvalidRequest("client must be a redis.asyncio.Redis or RedisCluster")
        if _decodes_responses(client):
            raise InvalidRequest("the Redis client must use decode_responses=False")
        if on_unavailable not in _MODES:
            raise InvalidRequest(f"on_unavailable must be one of {_MODES}")
        if not isinstance(timeout, int | float) or timeout <= 0:
            raise InvalidRequest("timeout must be > 0 seconds")
        if durability not in ("primary", "replica"):
            raise InvalidRequest("durability must be 'primary' or 'replica'")
        if not isinstance(replica_timeout, int | float) or not 0 < replica_timeout < timeout:
            raise InvalidRequest("replica_timeout must be > 0 and below timeout")
        self.durability: Durability = durability
        self._sealer = _ResultSealer(result_key) if result_key is not None else None
        _check_test_clock(clock)
        self.client = client
        self.prefix = check_prefix(prefix)
        self.on_unavailable: OnUnavailable = on_unavailable
        self._clock = clock or SYSTEM_CLOCK
        self._test_clock = clock is not None
        self._timeout = float(timeout)
        self._owns_client = owns_client
        self._cluster = isinstance(client, RedisCluster)
        self._ready = not self._cluster
        self._init_lock = asyncio.Lock()
        self._log = get_logger()
        self._emit: Callable[[Event], None] | None = None
        self._health = Health(self._health_changed)
        # Redis Cluster: health per master, so one dead node fails over only its own slots.
        self._node_health: dict[str, Health] = {}
        wait_ms = max(1, round(replica_timeout * 1000))
        wait = pack(("WAIT", b"1", str(wait_ms).encode())) if durability == "replica" else b""
        self._nodes = (
            NodeSender(client, self._health_of_node, wait, timeout=self._timeout)
            if self._cluster
            else None
        )
        self._pipe = Pipeliner(
            client, self._health, timeout=self._timeout, wait=wait, nodes=self._nodes
        )
        self._scripts: Scripts = register(client)
        self._local = MemoryBackend(clock=clock)
        self._keys: dict[tuple[str, str | None, str], tuple[bytes, bytes, bytes]] = {}
        self._commands: dict[tuple[Any, ...], tuple[tuple[Any, ...], bytes]] = {}
        self._block_cap = _block_cap(client)
        self._closed = False

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        cluster: bool = False,
        prefix: str = "nexus",
        on_unavailable: OnUnavailable = DEFAULT_ON_UNAVAILABLE,
        clock: Clock | None = None,
        timeout: float = 1.0,
        durability: Durability = "primary",
        replica_timeout: float = 0.25,
        result_key: bytes | None = None,
    ) -> RedisBackend:
        """A backend with its own client for `url` (with `cluster=True`: one node's URL).

        The client gets short socket and connect timeouts and no retries of its own, so a dead
        Redis costs a call about `timeout` at most; the backend owns and closes it. A cluster
        client discovers the other nodes and is initialized before its first concurrent use.
        """
        _check_test_clock(clock)  # before a client exists that would need closing
        settings: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": min(timeout, 0.5),
            "decode_responses": False,
        }
        client: Redis | RedisCluster
        # Idempotency and slot waiters each hold a connection while blocked: room for many
        # (redis-py's default is 100 per pool).
        if cluster:
            client = RedisCluster.from_url(
                url, retry=Retry(NoBackoff(), 1), max_connections=1024, **settings
            )
        else:
            client = Redis.from_url(
                url, retry=Retry(NoBackoff(), 0), max_connections=1024, **settings
            )
        return cls(
            client,
            prefix,
            on_unavailable,
            clock,
            timeout=timeout,
            owns_client=True,
            durability=durability,
            replica_timeout=replica_timeout,
            result_key=result_key,
        )

    def __repr__(self) -> str:
        kind = "cluster" if self._cluster else "redis"
        mode = self.on_unavailable
        durable = ", durability='replica'" if self.durability == "replica" else ""
        return f"RedisBackend({kind}, prefix={self.prefix!r}, on_unavailable={mode!r}{durable})"

    @property
    def available(self) -> bool:
        """False while Redis (in a cluster: any master) is believed unreachable."""
        return self._health.up and all(h.up for h in self._node_health.values())

    def _health_of_node(self, name: str) -> Health:
        health = self._node_health.get(name)
        if health is None:
            health = self._node_health[name] = Health(self._health_changed)
        return health

    def _health_of(self, command: tuple[Any, ...]) -> Health:
        """The health that decides whether `command` may go out: its slot's master's."""
        if self._nodes is None or not self._ready:
            return self._health
        try:
            return self._health_of_node(self._nodes.node_of(command).name)
        except Exception:  # no topology for the slot: the backend-wide health decides
            return self._health

    @property
    def round_trips(self) -> int:
        """Round trips sent so far (pipelined batches, script loads, BLMOVEs): for benchmarks."""
        return self._pipe.round_trips

    @property
    def commands(self) -> int:
        """Commands sent so far (each EVALSHA counts once): for benchmarks."""
        return self._pipe.commands

    # -- plumbing ---------------------------------------------------------------------------

    def _now(self) -> bytes:
        return _num(self._clock.monotonic()) if self._test_clock else b""

    async def _ensure_ready(self) -> None:
        # redis-py's RedisCluster can fail when a fresh client meets many concurrent commands
        # before its first initialize(): do it once, up front, under a lock.
        async with self._init_lock:
            if self._ready:
                return
            try:
                async with asyncio.timeout(self._timeout * 3):
                    await self.client.initialize()
            except BaseException as exc:
                if isinstance(exc, asyncio.CancelledError):
                    raise
                self._health.failed(exc)
                raise as_backend_error(exc) from None
            self._ready = True

    async def _eval(
        self,
        script: Any,
        keys: tuple[bytes, ...],
        args: tuple[Any, ...],
        *,
        durable: bool = False,
    ) -> Any:
        """Run one script through the batcher; raises `RedisUnreachable` during an outage."""
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        return await self._submit(command, script, durable=durable)

    async def _submit(
        self,
        command: tuple[Any, ...],
        script: Any = None,
        packed: bytes | None = None,
        on_orphan: Callable[[Any], None] | None = None,
        *,
        durable: bool = False,
    ) -> Any:
        """Queue a command in the next batch and await its reply.

        A queued command always runs, even if the caller is cancelled meanwhile. `on_orphan`
        then receives the reply nobody awaited, to give back what it granted (a probe permit).
        """
        if self._closed:
            raise BackendUnavailable("the backend is closed")
        health = self._health_of(command)
        # (one may_try() per Health: each call may use up the backoff window's one trial)
        if not health.may_try() or (health is not self._health and not self._health.may_try()):
            raise RedisUnreachable("redis unreachable (backing off before reconnecting)")
        if not self._ready:
            await self._ensure_ready()
        reply = self._pipe.submit(command, script, packed, on_orphan, durable=durable)
        try:
            return await reply
        except asyncio.CancelledError:
            # Cancelled after the reply came but before we resumed to take it: nobody has it
            # (the batcher hands replies to `on_orphan` only while the future is pending).
            taken = reply.done() and not reply.cancelled() and reply.exception() is None
            if on_orphan is not None and taken:
                on_orphan(reply.result())
            raise

    def bind_events(self, emit: Callable[[Event], None]) -> None:
        """Report outages as `BackendUnavailableEvent` to a connector's hooks (it calls this)."""
        self._emit = emit

    def _health_changed(self, up: bool, exc: BaseException | None) -> None:
        if not up and self._emit is not None:
            self._emit(BackendUnavailableEvent("redis", self.on_unavailable, type(exc).__name__))
        if up:
            self._log.warning("nexus.redis.recovered", mode=self.on_unavailable)
        elif self.on_unavailable == "fail_open":
            self._log.error(
                "nexus.redis.unavailable",
                mode="fail_open",
                error=type(exc).__name__,
                consequence="NO rate limiting and NO circuit breaking until Redis is back",
            )
        else:
            self._log.error(
                "nexus.redis.unavailable", mode=self.on_unavailable, error=type(exc).__name__
            )

    # -- admission ------------------------------------------------------------------------------

    def _admission_keys(
        self, service: str, tenant: str | None, limit: str = ""
    ) -> tuple[bytes, bytes, bytes]:
        """Breaker, probes and the bucket of limit `limit` (a `bucket_id`; "" for none)."""
        ks = self._keys.get((service, tenant, limit))
        if ks is None:
            if len(self._keys) >= _CACHE_MAX:  # bounded (rule 24): tenants come and go
                self._keys.clear()
            p = self.prefix
            parts = (limit,) if limit else ()
            bucket = (
                key(p, "bucket", service, *parts)
                if tenant is None
                else key(p, "tbucket", service, *parts, tenant)
            )
            ks = self._keys[(service, tenant, limit)] = (
                key(p, "cb", service).encode(),
                key(p, "probes", service).encode(),
                bucket.encode(),
            )
        return ks

    def _admission_command(
        self,
        service: str,
        scoped: str | None,
        breaker: CircuitBreakerConfig,
        limit: RateLimitConfig | None,
        probe_lease: float,
        budget: RetryPolicy | None,
        is_retry: bool,
        shadow: bool,
        slot: SlotAsk | None = None,
    ) -> tuple[tuple[Any, ...], bytes]:
        """The admission EVALSHA for these settings, and its wire form (cached: the hot path)."""
        ratio = None if budget is None else budget.budget_ratio
        floor = 0.0 if budget is None else budget.budget_min_per_second
        cache_key = (
            service,
            scoped,
            breaker,
            limit,
            probe_lease,
            ratio,
            floor,
            is_retry,
            shadow,
            slot,
        )
        cached = self._commands.get(cache_key)
        if cached is None:
            if len(self._commands) >= _CACHE_MAX:
                self._commands.clear()
            script = self._scripts.admit
            keys: tuple[bytes, ...] = self._admission_keys(
                service, scoped, "" if limit is None else limit.bucket_id
            )
            if slot is not None:
                keys += self._slot_keys(service, slot.tenant)[0]
            args = (
                "EVALSHA",
                script.sha,
                len(keys),
                *keys,
                b"",  # the time override, filled in only under a test clock
                _num(breaker.recovery_timeout),
                str(breaker.half_open_max_calls).encode(),
                _num(probe_lease),
                b"" if ratio is None else _num(ratio),
                _num(floor),
                b"1" if is_retry else b"0",
                b"" if limit is None else _num(limit.capacity),
                b"" if limit is None else _num(limit.refill_per_second),
                b"" if limit is None else _num(limit.max_wait),
                b"1" if shadow else b"0",
                b"" if slot is None else str(slot.max_in_flight).encode(),
                b"" if slot is None else _num(slot.lease),
                b"1" if slot is not None and slot.fail_fast else b"0",
            )
            cached = self._commands[cache_key] = (args, pack(args))
        return cached

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
        """Breaker, probe permit, retry budget, pause, token and a free concurrency slot: one
        script, one round trip."""
        scoped = tenant if limit is not None and limit.scope == "tenant" else None
        args, packed = self._admission_command(
            service, scoped, breaker, limit, probe_lease, budget, is_retry, shadow, slot
        )

        def give_back(reply: Any) -> None:
            # Cancelled while the reply was in flight: a permit nobody will use goes back now,
            # not when its lease ends (the breaker could not probe meanwhile); so does a slot.
            if reply[2]:
                _, probes, _ = self._admission_keys(service, None)
                orphan = self._pipe.submit(("ZREM", probes, reply[2]))
                orphan.add_done_callback(lambda f: f.cancelled() or f.exception())
            if slot is not None and reply[6]:
                self._spawn_slot_release(
                    service, slot.tenant, reply[6].decode(), slot.max_in_flight
                )

        try:
            if self._test_clock:
                at = 3 + args[2]  # the time override follows the keys
                r = await self._submit(
                    (*args[:at], self._now(), *args[at + 1 :]),
                    self._scripts.admit,
                    on_orphan=give_back,
                )
            else:
                r = await self._submit(args, self._scripts.admit, packed, on_orphan=give_back)
        except RedisUnreachable:
            if self.on_unavailable == "fail_open":
                return _OPEN_DOOR
            if self.on_unavailable == "local":
                return await self._local.admit(
                    service,
                    tenant,
                    breaker,
                    limit,
                    probe_lease=probe_lease,
                    budget=budget,
                    is_retry=is_retry,
                    shadow=shadow,
                )
            raise
        return Admission(
            r[0],
            float(r[1]),
            r[2].decode() if r[2] else "",
            r[3] == 1,
            r[4],
            r[5] == 1,
            r[6].decode() if r[6] else "",
            r[7],
        )

    async def record(
        self, service: str, breaker: CircuitBreakerConfig, *, success: bool, probe: str = ""
    ) -> str | None:
        """Feed an outcome to the breaker; returns "open"/"closed" when the state changed."""
        if probe.startswith("p"):  # a permit the local fallback handed out
            return await self._local.record(service, breaker, success=success, probe=probe)
        cb, probes, _ = self._admission_keys(service, None)
        args = (
            self._now(),
            b"1" if success else b"0",
            probe.encode(),
            str(breaker.failure_threshold).encode(),
            str(breaker.success_threshold).encode(),
            _num(breaker.recovery_timeout),
        )
        try:
            r = await self._eval(self._scripts.record, (cb, probes), args)
        except RedisUnreachable:
            if self.on_unavailable == "fail_open":
                return None
            if self.on_unavailable == "local":
                return await self._local.record(service, breaker, success=success, probe=probe)
            raise
        return None if r is None else str(r.decode())

    async def release_probe(self, service: str, probe: str) -> None:
        """Give back a half-open permit whose attempt never reported."""
        if not probe:
            return
        if probe.startswith("p"):
            await self._local.release_probe(service, probe)
            return
        _, probes, _ = self._admission_keys(service, None)
        with contextlib.suppress(RedisUnreachable):  # else the permit's lease frees it
            await self._submit(("ZREM", probes, probe.encode()))

    async def renew_probe(self, service: str, probe: str, lease: float) -> bool:
        """Extend a probe permit's lease just before its request is sent (one script).

        While Redis is unreachable: fail_closed raises; fail_open and local let it go (the
        breaker is not enforced fleet-wide then anyway).
        """
        if not probe:
            return True
        if probe.startswith("p"):  # a permit the local fallback handed out
            return await self._local.renew_probe(service, probe, lease)
        cb, probes, _ = self._admission_keys(service, None)
        args = (self._now(), probe.encode(), _num(lease))
        try:
            r = await self._eval(self._scripts.renew_probe, (cb, probes), args)
        except RedisUnreachable:
            if self.on_unavailable == "fail_closed":
                raise
            return True
        return bool(r == 1)

    async def pause(self, service: str, seconds: float) -> None:
        """Admit nothing for `service` for `seconds`, in every worker (vendor backpressure)."""
        cb, _, _ = self._admission_keys(service, None)
        try:
            await self._eval(self._scripts.pause, (cb,), (self._now(), _num(seconds)))
        except RedisUnreachable:
            if self.on_unavailable == "local":
                await self._local.pause(service, seconds)
            elif self.on_unavailable == "fail_closed":
                raise

    # -- idempotency ----------------------------------------------------------------------------

    def _idem_keys(self, service: str, tenant: str | None, digest: str) -> tuple[bytes, bytes]:
        if tenant is None:
            parts: tuple[str, ...] = (digest,)
            kind: Literal["idem", "tidem"] = "idem"
        else:
            parts, kind = (tenant, digest), "tidem"
        rec = key(self.prefix, kind, service, *parts)
        return rec.encode(), key(self.prefix, kind, service, *parts, "n").encode()

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
        """Take the key if free, else report it (raises `BackendUnavailable` in any outage)."""
        keys = self._idem_keys(service, tenant, key)
        claim, _ = await self._claim(keys, fingerprint, lease, unknown_ttl)
        return claim

    async def _claim(
        self, keys: tuple[bytes, bytes], fingerprint: str, lease: float, unknown_ttl: float | None
    ) -> tuple[Claim, float]:
        amo = b"" if unknown_ttl is None else _num(unknown_ttl)
        args = (self._now(), fingerprint, _num(lease), amo)
        try:
            r = await self._eval(self._scripts.claim, keys, args, durable=True)
        except NotReplicated as exc:
            # Nothing is sent on a claim a failover could lose: give the key back now rather
            # than leave it taken for a whole lease (best effort; the lease ends it anyway).
            if exc.reply[0] == 0:
                with contextlib.suppress(BackendUnavailable):
                    await self._eval(self._scripts.release, keys, (self._now(), exc.reply[1]))
            raise BackendUnavailable(str(exc)) from None
        state = _CLAIM_STATES[r[0]]
        if state == "acquired":
            return Claim(state, r[1].decode()), 0.0
        if state == "completed":
            stored = bytes(r[2])
            if self._sealer is not None:
                stored = self._sealer.open(keys[0], stored)
            return Claim(state, "", stored), 0.0
        if state == "in_progress":
            return Claim(state), float(r[3])
        return Claim(state), 0.0

    async def complete(
        self, service: str, tenant: str | None, key: str, token: str, result: bytes, ttl: float
    ) -> bool:
        """Store the final result for `ttl` seconds if `token` still owns the key."""
        keys = self._idem_keys(service, tenant, key)
        if self._sealer is not None:
            result = self._sealer.seal(keys[0], result)
        args = (self._now(), token, result, _num(ttl))
        return bool(await self._eval(self._scripts.complete, keys, args, durable=True) == 1)

    async def release(self, service: str, tenant: str | None, key: str, token: str) -> None:
        """Free the key after a transient failure (owner only), waking its waiters."""
        keys = self._idem_keys(service, tenant, key)
        await self._eval(self._scripts.release, keys, (self._now(), token))

    async def extend(
        self, service: str, tenant: str | None, key: str, token: str, lease: float
    ) -> bool:
        """Push our lease end to now + `lease` while the call is still running."""
        keys = self._idem_keys(service, tenant, key)
        args = (self._now(), token, _num(lease))
        return bool(await self._eval(self._scripts.extend, keys, args) == 1)

    async def mark_unknown(
        self, service: str, tenant: str | None, key: str, token: str, ttl: float
    ) -> bool:
        """Keep our key `unknown` for `ttl` seconds (at most once: its outcome is unknown)."""
        keys = self._idem_keys(service, tenant, key)
        args = (self._now(), token, _num(ttl))
        return bool(await self._eval(self._scripts.mark_unknown, keys, args) == 1)

    async def forget(self, service: str, tenant: str | None, key: str) -> bool:
        """Free an `unknown` key the application has reconciled; True if it was one."""
        keys = self._idem_keys(service, tenant, key)
        return bool(await self._eval(self._scripts.forget, keys, (self._now(),)) == 1)

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
        """Wait up to `timeout` for an in-progress key, without polling; claim it if released.

        Waiters block on the key's notify list with `BLMOVE list list` (a rotation: one element
        wakes every waiter), which `complete` and `release` fill; each wake-up, each short block
        timeout and the holder's lease end lead to a re-check of the record.
        """
        keys = self._idem_keys(service, tenant, key)
        deadline = self._clock.monotonic() + timeout
        while True:
            claim, lease_left = await self._claim(keys, fingerprint, lease, unknown_ttl)
            remaining = deadline - self._clock.monotonic()
            if claim.state != "in_progress" or remaining <= 0:
                return claim
            await self._block(keys[1], min(remaining, lease_left))

    async def _block(self, notify: bytes, seconds: float) -> None:
        """Block on the notify list for up to `seconds` of clock time (capped per round trip)."""
        if seconds <= 0:
            return
        block = max(0.01, min(seconds, self._block_cap))
        if not self._test_clock:
            await self._blocking(notify, block)
            return
        # A test clock: the wait ends when that clock says so, whatever Redis does.
        await wait_or_timeout(self._blocking(notify, block), self._clock, seconds)

    async def _blocking(self, notify: bytes, block: float) -> None:
        health = self._health_of(("BLMOVE", notify))
        if self._closed or not health.may_try():
            raise RedisUnreachable("redis unreachable (backing off before reconnecting)")
        self._pipe.round_trips += 1
        try:
            async with asyncio.timeout(block + self._timeout):
                await self._pipe.prune()
                await self.client.execute_command("BLMOVE", notify, notify, "RIGHT", "LEFT", block)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            if pool_full(exc):
                # Our own pool is full (every connection blocked or busy): no outage. Hold off
                # a little without a connection; the caller then checks again.
                await asyncio.sleep(min(block, _FULL_POOL_PAUSE))
                return
            if is_outage(exc):
                health.failed(exc)
            raise as_backend_error(exc) from None

    # -- key-value --------------------------------------------------------------------------------

    def _kv_key(self, name: str) -> tuple[bytes]:
        return (key(self.prefix, "kv", "", name).encode(),)

    async def get(self, key: str) -> bytes | None:
        """A shared value, or None (process memory while Redis is down, unless fail_closed)."""
        try:
            r = await self._eval(self._scripts.kv_get, self._kv_key(key), (self._now(),))
        except RedisUnreachable:
            if self.on_unavailable == "fail_closed":
                raise
            return await self._local.get(key)
        return None if r is None else bytes(r)

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store a shared value, for `ttl` seconds if given."""
        args = (self._now(), value, b"" if ttl is None else _num(ttl))
        try:
            await self._eval(self._scripts.kv_set, self._kv_key(key), args)
        except RedisUnreachable:
            if self.on_unavailable == "fail_closed":
                raise
            await self._local.set(key, value, ttl)

    async def add(
        self,
        key: str,
        amount: int,
        *,
        limit: int | None = None,
        ttl: float | None = None,
        strict: bool = False,
    ) -> tuple[bool, int]:
        """Add `amount` to a shared counter unless the total would pass `limit` (one script).

        `strict=True` (spend guards) raises `BackendUnavailable` while Redis is unreachable,
        whatever `on_unavailable` says: a local count would restart from zero.
        """
        args = (
            self._now(),
            str(int(amount)),
            b"" if limit is None else str(int(limit)),
            b"" if ttl is None else _num(ttl),
        )
        try:
            r = await self._eval(self._scripts.kv_add, self._kv_key(key), args)
        except RedisUnreachable:
            if strict or self.on_unavailable == "fail_closed":
                raise
            return await self._local.add(key, amount, limit=limit, ttl=ttl)
        return bool(int(r[0])), int(r[1])

    async def delete(self, key: str) -> None:
        """Remove a shared value."""
        try:
            await self._submit(("DEL", *self._kv_key(key)))
        except RedisUnreachable:
            if self.on_unavailable == "fail_closed":
                raise
            await self._local.delete(key)

    async def acquire_lock(self, key: str, token: str, lease: float) -> bool:
        """Take the lock for `lease` seconds (`SET NX` semantics); True if we now hold it."""
        args = (self._now(), token, _num(lease))
        try:
            r = await self._eval(self._scripts.lock_acquire, self._kv_key(key), args)
        except RedisUnreachable:
            if self.on_unavailable == "fail_closed":
                raise
            return await self._local.acquire_lock(key, token, lease)
        return bool(r == 1)

    async def release_lock(self, key: str, token: str) -> None:
        """Release the lock only if `token` still holds it (checked inside one script)."""
        try:
            await self._eval(self._scripts.lock_release, self._kv_key(key), (self._now(), token))
        except RedisUnreachable:
            if self.on_unavailable == "fail_closed":
                raise
            await self._local.release_lock(key, token)

    async def extend_lock(self, key: str, token: str, lease: float) -> bool:
        """Extend our lock's lease (checked inside one script); False if we no longer hold it."""
        args = (self._now(), token, _num(lease))
        try:
            r = await self._eval(self._scripts.lock_extend, self._kv_key(key), args)
        except RedisUnreachable:
            if self.on_unavailable == "fail_closed":
                raise
            return await self._local.extend_lock(key, token, lease)
        return bool(r == 1)

    async def compare_and_set(
        self, key: str, expected: bytes | None, value: bytes, ttl: float | None = None
    ) -> bool:
        """Store `value` only if the live value is still `expected`: one script, no race."""
        args = (self._now(), expected or b"", value, b"" if ttl is None else _num(ttl))
        try:
            r = await self._eval(self._scripts.kv_cas, self._kv_key(key), args)
        except RedisUnreachable:
            if self.on_unavailable == "fail_closed":
                raise
            return await self._local.compare_and_set(key, expected, value, ttl)
        return bool(r == 1)

    # -- concurrency slots (api.md 26; lua/slots.lua) ------------------------------------------

    def _slot_keys(self, service: str, tenant: str | None) -> tuple[tuple[bytes, ...], bytes]:
        parts = () if tenant is None else ("t", tenant)
        p = self.prefix
        keys = tuple(key(p, k, service, *parts).encode() for k in ("slots", "slotq", "slotm"))
        return keys, (key(p, "slotw", service, *parts) + ":").encode()

    def _slot_args(
        self,
        op: bytes,
        wake: bytes,
        token: str = "",
        n: int = 0,
        lease: float = 0.0,
        x: float = 0.0,
        signal: bool | None = None,
        generation: int | None = None,
    ) -> tuple[Any, ...]:
        return (
            self._now(),
            op,
            token.encode(),
            str(n).encode(),
            _num(lease),
            _num(x),
            wake,
            b"" if signal is None else b"1" if signal else b"0",
            b"" if generation is None else str(generation).encode(),
        )

    async def acquire_slot(
        self, service: str, tenant: str | None, max_in_flight: int, lease: float, max_wait: float
    ) -> Slot:
        """Take a slot (one script through the batcher); wait in FIFO order up to `max_wait`.

        A waiter blocks on its own wake list, which a release (or a raised adaptive limit)
        fills for exactly the waiters that may go; it also re-checks when the earliest lease
        ends (a dead holder's slot) and after each capped block.
        """
        keys, wake = self._slot_keys(service, tenant)
        token = secrets.token_hex(8)
        deadline = self._clock.monotonic() + max_wait

        def give_back(reply: Any) -> None:
            # Cancelled while the reply was in flight: a slot granted, or a place taken in the
            # queue (a ghost at its head would hold back every waiter behind it), goes back.
            if reply[0] != 0:
                self._spawn_slot_release(service, tenant, token, max_in_flight)

        queued = False
        try:
            while True:
                remaining = max(0.0, deadline - self._clock.monotonic())
                args = self._slot_args(b"acquire", wake, token, max_in_flight, lease, remaining)
                command = ("EVALSHA", self._scripts.slots.sha, 3, *keys, *args)
                r = await self._submit(command, self._scripts.slots, on_orphan=give_back)
                if r[0] == 1:
                    queued = False
                    return Slot(token, 0.0, int(r[2]))
                if r[0] == 0:
                    queued = False
                    return Slot("", float(r[1]))
                queued = True
                until_lease = float(r[1]) or remaining
                await self._block(wake + token.encode(), min(remaining, max(until_lease, 0.01)))
        finally:
            if queued:  # gave up or cancelled while queued: leave the queue, wake the next
                self._spawn_slot_release(service, tenant, token, max_in_flight)

    def _spawn_slot_release(
        self, service: str, tenant: str | None, token: str, max_in_flight: int
    ) -> None:
        fut = self.release_slot(service, tenant, token, max_in_flight)
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())

    def release_slot(
        self,
        service: str,
        tenant: str | None,
        token: str,
        max_in_flight: int,
        *,
        adapt: Adapt | None = None,
    ) -> asyncio.Future[int | None]:
        """Give a slot back (after the AIMD step of `adapt`, in the same script) and wake the
        waiters that may now go; if Redis is unreachable its lease frees it.

        The script is queued in the current batch before this returns, so it reaches Redis
        ahead of anything the caller sends next (its next admission sees the slot free), and
        nobody waits for its reply unless they await the future.
        """
        keys, wake = self._slot_keys(service, tenant)
        if adapt is None:
            args = self._slot_args(b"release", wake, token, max_in_flight)
        else:
            args = self._slot_args(
                b"release",
                wake,
                token,
                max_in_flight,
                0.0,
                adapt.window,
                adapt.cut,
                adapt.generation,
            )
        loop = asyncio.get_running_loop()
        out: asyncio.Future[int | None] = loop.create_future()
        command = ("EVALSHA", self._scripts.slots.sha, 3, *keys, *args)
        try:
            sent = self._submit_now(command, self._scripts.slots)
        except BackendUnavailable:  # unreachable or closed: the lease frees the slot
            out.set_result(None)
            return out

        def done(f: asyncio.Future[Any]) -> None:
            if out.done():
                return
            if f.cancelled():
                out.set_result(None)
            elif (exc := f.exception()) is not None:
                if isinstance(exc, RedisUnreachable):
                    out.set_result(None)
                else:
                    out.set_exception(exc)
            else:
                r = f.result()
                out.set_result(None if r[1] == -1 else int(r[1]))

        sent.add_done_callback(done)
        return out

    def _submit_now(self, command: tuple[Any, ...], script: Any) -> asyncio.Future[Any]:
        """`_submit`, queued before returning (only a first command ever waits for `ready`)."""
        if self._closed:
            raise BackendUnavailable("the backend is closed")
        health = self._health_of(command)
        if not health.may_try() or (health is not self._health and not self._health.may_try()):
            raise RedisUnreachable("redis unreachable (backing off before reconnecting)")
        if not self._ready:
            return asyncio.ensure_future(self._submit(command, script))
        return self._pipe.submit(command, script)

    async def renew_slot(self, service: str, tenant: str | None, token: str, lease: float) -> bool:
        """Push the slot's lease end to now + `lease`; False if it was lost."""
        keys, wake = self._slot_keys(service, tenant)
        args = self._slot_args(b"renew", wake, token, 0, lease)
        return bool(await self._eval(self._scripts.slots, keys, args) == 1)

    async def adapt_slot_limit(
        self,
        service: str,
        tenant: str | None,
        max_in_flight: int,
        *,
        cut: bool,
        window: float,
        generation: int | None = None,
    ) -> int | None:
        """One AIMD step of the fleet's limit (stored in the meta hash); the new limit or None."""
        keys, wake = self._slot_keys(service, tenant)
        args = self._slot_args(b"adapt", wake, "", max_in_flight, 0.0, window, cut, generation)
        r = await self._eval(self._scripts.slots, keys, args)
        return None if r == -1 else int(r)

    async def slot_usage(
        self, service: str, tenant: str | None, max_in_flight: int
    ) -> tuple[int, int]:
        """(slots in use, current limit) of the scope, fleet-wide."""
        keys, wake = self._slot_keys(service, tenant)
        r = await self._eval(
            self._scripts.slots, keys, self._slot_args(b"usage", wake, "", max_in_flight)
        )
        return int(r[0]), int(r[1])

    async def aclose(self) -> None:
        """Let in-flight batches finish; close the client if `from_url` created it."""
        if self._closed:
            return
        self._closed = True
        await self._pipe.aclose()
        if self._owns_client:
            await self.client.aclose()


def _check_test_clock(clock: object) -> None:
    """Refuse every clock but the testing one: scripts must run on Redis `TIME` in production."""
    if clock is None:
        return
    # Imported here: the testing helpers stay out of production imports (and _settings
    # imports the connector, which imports this module).
    from ..._settings import ConfigError  # noqa: PLC0415
    from ...testing import FakeClock  # noqa: PLC0415

    if not isinstance(clock, FakeClock):
        raise ConfigError(
            [
                f"RedisBackend(clock=...) takes only nexus_connector_async.testing.FakeClock, "
                f"not {type(clock).__name__}: in production the scripts use Redis TIME, one "
                f"clock for every host"
            ]
        )


class _ResultSealer:
    """AES-GCM for stored results (`result_key=`), the record's name as associated data.

    A record copied to another key, altered, or planted without the key fails to open and
    raises `StoredRecordInvalid`: it is never replayed (api.md 29).
    """

    _VERSION = b"\x01"

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes) or len(key) not in (16, 24, 32):
            raise InvalidRequest("result_key must be 16, 24 or 32 random bytes (AES-GCM)")
        require_extra("RedisBackend(result_key=...)", "crypto", "cryptography")
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415

        self._aead = AESGCM(key)

    def seal(self, name: bytes, data: bytes) -> bytes:
        nonce = os.urandom(12)
        return self._VERSION + nonce + self._aead.encrypt(nonce, data, name)

    def open(self, name: bytes, sealed: bytes) -> bytes:
        from cryptography.exceptions import InvalidTag  # noqa: PLC0415

        if len(sealed) < 29 or sealed[:1] != self._VERSION:
            raise StoredRecordInvalid("the stored result is not sealed with result_key: refused")
        try:
            return self._aead.decrypt(sealed[1:13], sealed[13:], name)
        except InvalidTag:
            raise StoredRecordInvalid(
                "the stored result failed authentication (altered, moved or forged): refused"
            ) from None


def _decodes_responses(client: Any) -> bool:
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None) or {}
    if kwargs.get("decode_responses"):
        return True
    encoder = getattr(client, "encoder", None)
    return bool(getattr(encoder, "decode_responses", False))


def _block_cap(client: Any) -> float:
    """The longest single BLMOVE: half the client's socket timeout, at most `_BLOCK_CAP`."""
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None) or getattr(client, "connection_kwargs", {})
    socket_timeout = kwargs.get("socket_timeout")
    if isinstance(socket_timeout, int | float) and socket_timeout > 0:
        return min(_BLOCK_CAP, socket_timeout / 2.0)
    return _BLOCK_CAP
