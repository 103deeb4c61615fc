"""Redis Cluster batches, one pipeline per master: health, scripts, redirects and WAIT per node.

A batch of one event-loop tick is split by the master that owns each command's slot (every key
of a service shares one hash tag, so a call's keys never straddle nodes). Each node's share goes
out as one write on one of that node's pooled connections (redis-py's `ClusterNode` pool and its
topology; we skip only its per-command pipeline bookkeeping), so:

- a dead or failed-over master fails only the commands of its own slots; services on healthy
  masters keep working (health is tracked per node, see `Health`);
- a NOSCRIPT reply loads the script on that node and re-sends only those commands;
- a MOVED/ASK reply (the slot moved: a failover or resharding, the command did not run) makes us
  learn the new topology and re-send those commands once, to their new owner;
- with durability on, `WAIT 1 <ms>` rides behind the node's durable commands on the same
  connection (WAIT only counts the writes of its own connection).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any

from redis import exceptions as rex

from ..._errors import BackendUnavailable
from ._health import as_backend_error, is_outage
from ._pipeliner import is_stale, read_replies
from ._wire import acknowledged, pack

__all__ = ["NodeSender", "command_key"]


def command_key(args: Sequence[Any]) -> Any:
    """The key that decides a command's slot: EVALSHA's first key, else the first argument."""
    return args[3] if args[0] == "EVALSHA" else args[1]


class NodeSender:
    """Sends cluster batches per master; `health_of(node_name)` gives that node's `Health`."""

    def __init__(
        self, client: Any, health_of: Callable[[str], Any], wait: bytes, *, timeout: float
    ) -> None:
        self._client = client
        self._timeout = timeout  # per round trip, so a hung master stalls only its own share
        self._health_of = health_of
        self._wait = wait
        self.round_trips = 0

    def node_of(self, args: Sequence[Any]) -> Any:
        """The master that owns the command's slot in the topology we know."""
        return self._client.get_node_from_key(command_key(args))

    async def execute(
        self,
        commands: list[tuple[Any, ...]],
        packed: list[bytes | None],
        scripts: list[Any],
        durable: set[int],
    ) -> list[Any]:
        """Every command's reply, or the exception that stands for it (never raises)."""
        results: list[Any] = [None] * len(commands)
        pending = list(range(len(commands)))
        for attempt in range(2):  # the second round: commands whose slot moved meanwhile
            # By node name: redis-py < 6 ClusterNode objects are not hashable.
            groups: dict[str, tuple[Any, list[int]]] = {}
            for i in pending:
                try:
                    node = self.node_of(commands[i])
                except rex.RedisError as exc:  # slot not covered: the cluster is failing
                    results[i] = as_backend_error(exc)
                    continue
                groups.setdefault(node.name, (node, []))[1].append(i)
            moved = await asyncio.gather(
                *(
                    self._on_node(node, ix, commands, packed, scripts, durable, results)
                    for node, ix in groups.values()
                )
            )
            pending = [i for ix in moved for i in ix]
            if not pending:
                break
            await self.refresh_topology()
            if attempt == 1:
                for i in pending:
                    results[i] = BackendUnavailable("redis: the slot moved twice during one call")
        return results

    async def _on_node(
        self,
        node: Any,
        indexes: list[int],
        commands: list[tuple[Any, ...]],
        packed: list[bytes | None],
        scripts: list[Any],
        durable: set[int],
        results: list[Any],
    ) -> list[int]:
        """Send one node's commands; returns the indexes to re-send after a MOVED/ASK."""
        health = self._health_of(node.name)

        async def send(ix: list[int]) -> tuple[list[Any], BaseException | None]:
            wire = [packed[i] or pack(commands[i]) for i in ix]
            wants_ack = [n for n, i in enumerate(ix) if i in durable] if self._wait else []
            replies, error = await self._round_trip(
                node, [*wire, self._wait] if wants_ack else wire
            )
            if wants_ack:  # without WAIT's reply (cut before it), no durable write counts
                ack = replies[len(wire)] if len(replies) > len(wire) else None
                replies = acknowledged(replies[: len(wire)], wants_ack, ack)
            return replies, error

        replies, error = await send(indexes)
        if error is not None:
            if is_outage(error):  # (a full local pool is our congestion, not a dead node)
                health.failed(error)
                await self.refresh_topology()  # the master may have failed over
            # Cut mid-batch: the replies read before the cut are their callers' (a claim Redis
            # granted is not stranded); only the unread commands fail, and none is resent.
            err = as_backend_error(error)
            for n, i in enumerate(indexes):
                r = replies[n] if n < len(replies) else err
                results[i] = as_backend_error(r) if isinstance(r, BaseException) else r
            return []
        health.succeeded()
        missing = [n for n, r in enumerate(replies) if isinstance(r, rex.NoScriptError)]
        if missing:
            await self._load(node, {id(scripts[indexes[n]]): scripts[indexes[n]] for n in missing})
            again, again_error = await send([indexes[n] for n in missing])
            for k, n in enumerate(missing):
                replies[n] = again[k] if k < len(again) else again_error
        moved: list[int] = []
        for i, r in zip(indexes, replies, strict=True):
            if isinstance(r, rex.MovedError | rex.AskError):
                moved.append(i)
            else:
                results[i] = as_backend_error(r) if isinstance(r, BaseException) else r
        return moved

    async def _round_trip(
        self, node: Any, packed: list[bytes]
    ) -> tuple[list[Any], BaseException | None]:
        """One write on one of the node's connections: the replies read, and the failure that
        stopped the reading (None when every reply came)."""
        self.round_trips += 1
        replies: list[Any] = []
        try:
            conn = node.acquire_connection()
        except rex.RedisError as exc:  # a full pool: our congestion, not an outage
            return replies, exc
        try:
            async with asyncio.timeout(self._timeout):
                if is_stale(conn):  # closed by Redis while idle: a fresh one, no outage
                    await conn.disconnect(nowait=True)
                await conn.send_packed_command(packed, check_health=False)
                await read_replies(conn, len(packed), replies)
        except asyncio.CancelledError:
            await conn.disconnect(nowait=True)
            _give_back(node, conn)
            raise
        except Exception as exc:
            await conn.disconnect(nowait=True)
            _give_back(node, conn)
            return replies, exc
        _give_back(node, conn)
        return replies, None

    async def _load(self, node: Any, scripts: dict[int, Any]) -> None:
        for script in scripts.values():
            if script is not None:
                load = pack(("SCRIPT", "LOAD", script.script.encode()))
                reply, error = await self._round_trip(node, [load])
                if error is None and isinstance(reply[0], bytes):
                    script.sha = reply[0].decode()

    async def refresh_topology(self) -> None:
        """Ask the cluster for its slot map again (after a failover); best effort."""
        with contextlib.suppress(Exception):
            await self._client.nodes_manager.initialize()


def _give_back(node: Any, conn: Any) -> None:
    """Return a connection to its node's pool (redis-py < 6.2 has no `ClusterNode.release`)."""
    release = getattr(node, "release", None)
    if release is not None:
        release(conn)
    else:
        node._free.append(conn)
