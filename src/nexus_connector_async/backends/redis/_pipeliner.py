"""Coalescing: commands issued in one event-loop tick leave together, as one pipelined batch.

On a CPU-bound client each round trip costs tens of microseconds of Python, so a hundred
concurrent calls must not mean a hundred round trips. The first command of a tick schedules a
flush with `loop.call_soon`; every command issued before it runs joins the batch; the flush sends
one write on a kept connection (in a cluster, one per master: `_cluster.NodeSender`) and
resolves each caller's future. A script the server does not know (NOSCRIPT, after a restart or
`SCRIPT FLUSH`) is loaded and its commands re-sent, so scripts come back by themselves.

Stale connections (api.md rule 20): a Redis that closes idle clients (`timeout`), a proxy that
cuts them, `CLIENT KILL` or a restart leave dead sockets in our idle list and in redis-py's pools
(whose own check is skipped while its maintenance-notifications setting is "auto"). Before a
batch is written, its connection is checked for a peer that already closed it (EOF, reset,
unexpected bytes); a dead one is reconnected and the batch goes on the fresh socket. Nothing is
resent once written: a connection that dies after the write leaves the unread replies unknown,
and those callers (only those) get `BackendUnavailable`; replies read before the failure are
delivered, so a claim or a probe permit Redis granted is never stranded.

Batched scripts (`submit_call`): the calls of one tick to the same script of the same service
(one hash tag, so one cluster slot) with the same shape go out as ONE script call, the script's
batched form (`_batch.lua`), which runs each call in arrival order and returns their replies.
What a hundred concurrent calls send is then one command, not a hundred: each command costs the
client a reply read and a parse, which is what the client's CPU is spent on.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

from redis import exceptions as rex

from ..._logging import get_logger
from ._batched import Call, Group
from ._health import Health, as_backend_error, is_outage, pool_full
from ._wire import Item, NotReplicated, acknowledged, pack

if TYPE_CHECKING:
    from ._cluster import NodeSender

__all__ = ["Pipeliner", "is_stale", "read_replies"]

_log = get_logger("nexus_connector_async.redis")
_FULL_POOL_PAUSE = 0.005  # a batch that found the connection pool full waits this long, again


def is_stale(conn: Any) -> bool:
    """Whether a connected redis-py connection's peer already closed it (or it is dirty).

    No round trip and no syscall: the event loop has already read the peer's FIN or RST into the
    stream (at EOF, with an exception, or its transport closing); bytes nobody asked for (an
    error the server sent before closing) make it unusable too. A connection that is not
    connected is not stale: it connects on its first write.
    """
    reader = getattr(conn, "_reader", None)
    writer = getattr(conn, "_writer", None)
    if reader is None or writer is None:
        return False
    transport = getattr(writer, "transport", None)
    if transport is None or transport.is_closing():
        return True
    unread = getattr(reader, "_buffer", b"")
    return bool(reader.at_eof() or reader.exception() is not None or unread)


class Pipeliner:
    """Sends the commands of one event-loop tick as one pipeline; counts round trips."""

    def __init__(
        self,
        client: Any,
        health: Health,
        *,
        timeout: float,
        wait: bytes = b"",
        nodes: NodeSender | None = None,
    ) -> None:
        self._client = client
        self._health = health
        self._timeout = timeout
        # `nodes` sends cluster batches per master (with health per node); durable commands
        # (durability="replica") get `wait` (WAIT 1 <ms>) behind them on their connection.
        self._cluster = nodes is not None
        self._nodes = nodes
        self._wait = wait
        self._durable: set[asyncio.Future[Any]] = set()
        self._pending: list[Item] = []
        self._groups: dict[Hashable, Group] = {}  # this tick's batched script calls
        self._idle: list[Any] = []  # connections kept between batches (non-cluster)
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.round_trips = 0
        self.commands = 0

    def submit(
        self,
        args: tuple[Any, ...],
        script: Any = None,
        packed: bytes | None = None,
        on_orphan: Callable[[Any], None] | None = None,
        *,
        durable: bool = False,
        defer: bool = False,
    ) -> asyncio.Future[Any]:
        """Queue one command (`script` set for EVALSHA) and return the future of its reply.

        `packed` is the command already in RESP form (callers cache it for repeated commands).
        A queued command always runs; if its caller was cancelled meanwhile, `on_orphan` gets
        the reply nobody awaited (to give back what it granted). A `durable` command's reply
        is only given once a replica acknowledged it (when the backend asks for replicas).
        A `defer`red command that starts a batch holds its flush back one more loop step, so
        that what its caller sends right after (a `record` after a slot release) shares it.
        """
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        if durable and self._wait:
            self._durable.add(fut)
            fut.add_done_callback(self._durable.discard)
        self._pending.append((args, script, packed, fut, on_orphan))
        if len(self._pending) == 1:
            if defer:  # one loop step later: the command its caller sends next may join
                loop.call_soon(loop.call_soon, self._flush, loop)
            else:
                loop.call_soon(self._flush, loop)
        return fut

    def submit_call(
        self, call: Call, on_orphan: Callable[[Any], None] | None = None, *, durable: bool = False
    ) -> asyncio.Future[Any]:
        """Queue one call of a batchable script; the calls of this tick in its group become
        one script call (a lone call goes out as itself, unchanged)."""
        group = self._groups.get(call.group)
        if group is None:
            fut = self.submit(call.args, call.script, call.packed, on_orphan, durable=durable)
            self._groups[call.group] = Group(len(self._pending) - 1, call, fut, on_orphan)
            return fut
        fut = asyncio.get_running_loop().create_future()
        group.calls.append(call)
        group.futures.append(fut)
        group.orphans.append(on_orphan)
        return fut

    def replace(self, fut: asyncio.Future[Any], args: tuple[Any, ...], script: Any) -> bool:
        """Put `args` in the place of the queued command whose reply is `fut`, if it has not
        left yet (its reply then goes to `fut`); False if it has."""
        pending = self._pending
        for i in range(len(pending) - 1, -1, -1):
            item = pending[i]
            if item[3] is fut:
                pending[i] = (args, script, None, fut, item[4])
                return True
        return False

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        batch, self._pending = self._pending, []
        if self._groups:
            for group in self._groups.values():
                if len(group.calls) > 1:
                    durable = group.futures[0] in self._durable
                    batch[group.index] = item = group.item(loop)
                    if durable:
                        self._durable.add(item[3])
                        item[3].add_done_callback(self._durable.discard)
            self._groups = {}
        task = loop.create_task(self._send(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[Item]) -> None:
        read: list[Any] = []  # the first execution's replies, as they arrive
        try:
            # A cluster's NodeSender bounds each node's round trip itself (one hung master
            # must not time out the others' commands).
            async with asyncio.timeout(self._timeout if self._nodes is None else None):
                results = await self._execute(batch, read)
                missing = [i for i, r in enumerate(results) if isinstance(r, rex.NoScriptError)]
                if missing:
                    await self._load({id(batch[i][1]): batch[i][1] for i in missing})
                    again = await self._execute([batch[i] for i in missing], [])
                    for i, r in zip(missing, again, strict=True):
                        results[i] = r
        except BaseException as exc:
            if is_outage(exc):
                self._health.failed(exc)
            err = as_backend_error(exc)
            # Replies read before the failure (a stall after part of the batch) stand; the
            # rest, whose outcome is unknown, fail, each on its own.
            done = [
                err
                if isinstance(r, rex.NoScriptError)
                else NotReplicated(r)
                if item[3] in self._durable and not isinstance(r, Exception)
                else r
                for item, r in zip(batch, read, strict=False)  # (a WAIT reply is not a caller's)
            ]
            self._resolve(batch, done + [err] * (len(batch) - len(done)))
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        lost = next((r for r in results if isinstance(r, Exception) and is_outage(r)), None)
        if lost is None:
            self._health.succeeded()
        else:  # the connection died mid-batch: what was read stands, the rest is unknown
            self._health.failed(lost)
        self._resolve(batch, results)

    @staticmethod
    def _resolve(batch: list[Item], results: list[Any]) -> None:
        """Give each caller its own reply or error (an orphaned reply to its `on_orphan`)."""
        for item, r in zip(batch, results, strict=True):
            fut = item[3]
            if fut.done():  # the caller was cancelled meanwhile
                if item[4] is not None and not isinstance(r, Exception):
                    item[4](r)
                continue
            if isinstance(r, Exception):
                fut.set_exception(as_backend_error(r))
            else:
                fut.set_result(r)

    async def _execute(self, batch: list[Item], read: list[Any]) -> list[Any]:
        """Send `batch`, returning one reply (or error) per command; `read` fills as they come."""
        self.round_trips += 1
        self.commands += len(batch)
        durable = [i for i, item in enumerate(batch) if item[3] in self._durable]
        if self._nodes is not None:
            return await self._nodes.execute(
                [item[0] for item in batch],
                [item[2] for item in batch],
                [item[1] for item in batch],
                set(durable),
            )
        packed = [item[2] or pack(item[0]) for item in batch]
        if not durable:
            return await self._execute_direct(packed, read)
        # WAIT in the same write, on the same connection: it covers every write before it.
        results = await self._execute_direct([*packed, self._wait], read)
        return acknowledged(results[:-1], durable, results[-1])

    async def _execute_direct(self, packed: list[bytes], results: list[Any]) -> list[Any]:
        """One write of every packed command, then one read per reply, on a pooled connection.

        This is what redis-py's pipeline does, minus its per-command bookkeeping, which on a
        CPU-bound client costs more than the round trip saves. A connection found dead before
        the write is reconnected first (nothing was sent on it). If it fails after the write,
        the replies already read stand and each unread one becomes an error of its own (its
        outcome is unknown, so it is never resent); the connection is dropped.
        """
        pool = self._client.connection_pool
        conn = self._idle.pop() if self._idle else await _connection(pool)
        try:
            if is_stale(conn):
                await conn.disconnect(nowait=True)
                await conn.connect()  # a failure here is an outage; nothing was written
            await conn.send_packed_command(packed, check_health=False)
        except BaseException:
            await conn.disconnect(nowait=True)
            await pool.release(conn)
            raise
        try:
            await read_replies(conn, len(packed), results)
        except BaseException as exc:
            await conn.disconnect(nowait=True)
            await pool.release(conn)
            if isinstance(exc, asyncio.CancelledError) or not results or not is_outage(exc):
                raise
            lost = rex.ConnectionError(f"connection lost after the write: {type(exc).__name__}")
            results.extend([lost] * (len(packed) - len(results)))
            return results
        if self._closed:
            await pool.release(conn)
        else:
            self._idle.append(conn)
        return results

    async def prune(self) -> None:
        """Disconnect the dead idle connections of redis-py's pools (of every cluster node).

        Before anything that goes through the client rather than our own connections (a
        cluster pipeline, SCRIPT LOAD, BLMOVE): a disconnected connection connects afresh on
        its next write instead of failing on a socket Redis already closed.
        """
        if self._cluster:
            idle = [c for node in self._client.get_nodes() for c in getattr(node, "_free", ())]
        else:
            pool = getattr(self._client, "connection_pool", None)
            idle = list(getattr(pool, "_available_connections", ()))
        for conn in idle:
            if is_stale(conn):
                await conn.disconnect(nowait=True)

    async def _load(self, scripts: dict[int, Any]) -> None:
        """SCRIPT LOAD (in a cluster: on every primary) the scripts the server did not know."""
        await self.prune()
        for script in scripts.values():
            if script is None:
                continue
            self.round_trips += 1
            script.sha = await self._client.script_load(script.script)
        _log.info("nexus.redis.scripts_loaded", count=len(scripts))

    async def aclose(self) -> None:
        """Wait for batches already on the wire, then give our connections back to the pool."""
        self._closed = True
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        while self._idle:
            await self._client.connection_pool.release(self._idle.pop())


async def read_replies(conn: Any, count: int, into: list[Any]) -> None:
    """Read `count` replies from `conn` into `into` as they come; a command's own error reply
    is its reply, an outage raises (what was read by then stays in `into`)."""
    for _ in range(count):
        try:
            into.append(await conn.read_response(timeout=math.inf))
        except rex.ResponseError as exc:
            if is_outage(exc):
                raise
            into.append(exc)


async def _connection(pool: Any) -> Any:
    """A pooled connection; while our own pool is full (every connection blocked in a waiter's
    BLMOVE or busy), wait for one rather than fail a batch nothing of which was written yet.

    The batch's own timeout bounds the wait.
    """
    while True:
        try:
            return await pool.get_connection()
        except Exception as exc:
            if not pool_full(exc):
                raise
        await asyncio.sleep(_FULL_POOL_PAUSE)
