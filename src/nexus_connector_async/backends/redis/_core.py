"""The plumbing every part of `RedisBackend` shares: construction, health, the batcher, BLMOVE.

The parts (`_admission`, `_idempotency`, `_kv`, `_concurrency`) are mixins over `RedisCore`:
each adds one store Protocol's methods and uses only what is defined here. Concurrent calls'
scripts are coalesced into one pipelined round trip per event-loop tick (`_pipeliner`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Literal, NamedTuple

from redis.asyncio import Redis, RedisCluster

from ..._clock import SYSTEM_CLOCK, Clock, wait_or_timeout
from ..._errors import BackendUnavailable, InvalidRequest
from ..._events import BackendUnavailableEvent, Event
from ..._logging import get_logger
from .._memory import MemoryBackend
from ._batched import Call, script_call
from ._cluster import NodeSender
from ._fallback import MODES, Fallback, OnUnavailable, fallback
from ._health import Health, RedisUnreachable, as_backend_error, is_outage, pool_full
from ._keys import check_prefix, key
from ._pipeliner import Pipeliner
from ._scripts import Script, Scripts, register
from ._sealer import ResultSealer
from ._wire import pack

__all__ = [
    "DEFAULT_ON_UNAVAILABLE",
    "Durability",
    "Parked",
    "RedisCore",
    "check_test_clock",
    "num",
]

Durability = Literal["primary", "replica"]
DEFAULT_ON_UNAVAILABLE: OnUnavailable = "fail_closed"
_BLOCK_CAP = 0.5  # longest single BLMOVE: below any sane socket timeout; waiters then re-check
_FULL_POOL_PAUSE = 0.02  # a waiter that found the connection pool full waits this long instead
_BACKING_OFF = "redis unreachable (backing off before reconnecting)"


def num(value: float) -> bytes:
    """A number as a script argument: exact (repr) and in bytes."""
    return repr(float(value)).encode()


class Parked(NamedTuple):
    """A slot release still waiting in the current batch, which a `record` may take along."""

    reply: asyncio.Future[Any]  # the release's reply (then the record's too, if it was taken)
    command: tuple[Any, ...]  # its EVALSHA of slots.lua (3 keys)

    @property
    def keys(self) -> tuple[Any, ...]:
        """The slot scope's keys."""
        return self.command[3:6]

    @property
    def args(self) -> tuple[Any, ...]:
        """slots.lua's ARGV[3..9] for the release (record.lua's ARGV[7..13])."""
        return self.command[8:]


class RedisCore:
    """Construction and plumbing of `RedisBackend` (see its docstring for the arguments)."""

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
        if on_unavailable not in MODES:
            raise InvalidRequest(f"on_unavailable must be one of {MODES}")
        if not isinstance(timeout, int | float) or timeout <= 0:
            raise InvalidRequest("timeout must be > 0 seconds")
        if durability not in ("primary", "replica"):
            raise InvalidRequest("durability must be 'primary' or 'replica'")
        if not isinstance(replica_timeout, int | float) or not 0 < replica_timeout < timeout:
            raise InvalidRequest("replica_timeout must be > 0 and below timeout")
        self.durability: Durability = durability
        self._sealer = ResultSealer(result_key) if result_key is not None else None
        check_test_clock(clock)
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
        self._down = 0  # how many of the Healths (backend-wide, per master) are down now
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
        self._scripts: Scripts
        self._scripts, self._batched = register(client)
        # Concurrent calls of one service to a batchable script share one script call (off: one
        # call each; the tests compare the two).
        self._batch_scripts = True
        self._local = MemoryBackend(clock=clock)
        self._fallback: Fallback = fallback(on_unavailable, self._local)
        self._keys: dict[tuple[str, str | None, str], tuple[bytes, bytes, bytes]] = {}
        self._commands: dict[tuple[Any, ...], tuple[Call, Callable[[Any], None]]] = {}
        self._block_cap = _block_cap(client)
        self._parked: dict[str, Parked] = {}  # by service: the latest release not yet sent
        self._closed = False

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
        return num(self._clock.monotonic()) if self._test_clock else b""

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

    def _eval(
        self,
        script: Script,
        keys: tuple[bytes, ...],
        args: tuple[Any, ...],
        *,
        durable: bool = False,
        batch: str | None = None,
    ) -> Coroutine[Any, Any, Any]:
        """Run one script through the batcher; raises `RedisUnreachable` during an outage.

        `batch`, the service the keys belong to, lets this tick's calls of the same script for
        the same service share one script call (`Pipeliner.submit_call`). Returns `_submit`'s
        coroutine itself: awaited by the caller, one frame fewer per script call.
        """
        if batch is not None:
            call = script_call(script, self._batched[id(script)], batch, keys, args)
            return self._submit(call, durable=durable)
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        return self._submit(command, script, durable=durable)

    def _check(self, command: tuple[Any, ...]) -> None:
        """Raise unless `command` may go out now (open, and its health allows a try)."""
        if self._closed:
            raise BackendUnavailable("the backend is closed")
        health = self._health_of(command)
        # (one may_try() per Health: each call may use up the backoff window's one trial)
        if not health.may_try() or (health is not self._health and not self._health.may_try()):
            raise RedisUnreachable(_BACKING_OFF)

    async def _submit(
        self,
        command: tuple[Any, ...] | Call,
        script: Script | None = None,
        packed: bytes | None = None,
        on_orphan: Callable[[Any], None] | None = None,
        *,
        durable: bool = False,
    ) -> Any:
        """Queue a command in the next batch and await its reply.

        A queued command always runs, even if the caller is cancelled meanwhile. `on_orphan`
        then receives the reply nobody awaited, to give back what it granted (a probe permit).
        A `Call` may share one script call with the tick's others of its group.
        """
        call = command if isinstance(command, Call) else None
        if self._closed or self._down:
            # (open, every master healthy: nothing to check, the hot path's case)
            self._check(command if call is None else call.args)
        if not self._ready:
            await self._ensure_ready()
        if call is not None and self._batch_scripts:
            reply = self._pipe.submit_call(call, on_orphan, durable=durable)
        elif call is not None:  # batching off: the plain EVALSHA
            args, script, packed = call.args, call.script, call.packed
            reply = self._pipe.submit(args, script, packed, on_orphan, durable=durable)
        else:
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

    def _submit_now(
        self, command: tuple[Any, ...], script: Script, *, defer: bool = False
    ) -> asyncio.Future[Any]:
        """`_submit`, queued before returning (only a first command ever waits for `ready`).

        `defer`: see `Pipeliner.submit` (a slot release that a `record` may take along).
        """
        self._check(command)
        if not self._ready:
            return asyncio.ensure_future(self._submit(command, script))
        return self._pipe.submit(command, script, defer=defer)

    def bind_events(self, emit: Callable[[Event], None]) -> None:
        """Report outages as `BackendUnavailableEvent` to a connector's hooks (it calls this)."""
        self._emit = emit

    def _health_changed(self, up: bool, exc: BaseException | None) -> None:
        self._down += -1 if up else 1
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

    def _slot_keys(self, service: str, tenant: str | None) -> tuple[tuple[bytes, ...], bytes]:
        """A slot scope's held zset, queue and meta hash, and the prefix of its wake lists."""
        parts = () if tenant is None else ("t", tenant)
        p = self.prefix
        keys = tuple(key(p, k, service, *parts).encode() for k in ("slots", "slotq", "slotm"))
        return keys, (key(p, "slotw", service, *parts) + ":").encode()

    async def _block(self, notify: bytes, seconds: float) -> bytes | None:
        """Block on the notify list for up to `seconds` of clock time (capped per round trip).

        Returns the element the list held (a slot waiter's grant), None if none came.
        """
        if seconds <= 0:
            return None
        block = max(0.01, min(seconds, self._block_cap))
        if not self._test_clock:
            return await self._blocking(notify, block)
        # A test clock: the wait ends when that clock says so, whatever Redis does.
        got: list[bytes | None] = [None]

        async def blocking() -> None:
            got[0] = await self._blocking(notify, block)

        await wait_or_timeout(blocking(), self._clock, seconds)
        return got[0]

    async def _blocking(self, notify: bytes, block: float) -> bytes | None:
        health = self._health_of(("BLMOVE", notify))
        if self._closed or not health.may_try():
            raise RedisUnreachable(_BACKING_OFF)
        self._pipe.round_trips += 1
        try:
            async with asyncio.timeout(block + self._timeout):
                await self._pipe.prune()
                got = await self.client.execute_command(
                    "BLMOVE", notify, notify, "RIGHT", "LEFT", block
                )
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            if pool_full(exc):
                # Our own pool is full (every connection blocked or busy): no outage. Hold off
                # a little without a connection; the caller then checks again.
                await asyncio.sleep(min(block, _FULL_POOL_PAUSE))
                return None
            if is_outage(exc):
                health.failed(exc)
            raise as_backend_error(exc) from None
        return None if got is None else bytes(got)

    async def aclose(self) -> None:
        """Let in-flight batches finish; close the client if `from_url` created it."""
        if self._closed:
            return
        self._closed = True
        await self._pipe.aclose()
        if self._owns_client:
            await self.client.aclose()


def check_test_clock(clock: object) -> None:
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
