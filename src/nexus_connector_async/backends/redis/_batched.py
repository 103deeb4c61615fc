"""Batched script calls: one service's calls of one tick to a script, as ONE script call.

A `Call` is one EVALSHA of a batchable script, kept in wire pieces. The pipeliner groups the
calls of a tick by script, service (one hash tag: one cluster slot), shape and time override;
a group of more than one becomes one call of the script's batched form (`lua/_batch.lua`),
which runs each call in arrival order, and its reply is dealt out to each caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Any, NamedTuple

from ._health import as_backend_error
from ._wire import Item, NotReplicated, pack

__all__ = ["Call", "Group", "script_call"]


class Call(NamedTuple):
    """One EVALSHA of a batchable script: the calls of one tick with equal groups are joined
    into one call of the script's batched form (`script_call` builds it)."""

    script: Any  # the plain script
    batched: Any  # its batched form
    args: tuple[Any, ...]  # the whole EVALSHA
    group: Hashable  # calls with equal groups may share one script call
    keys: tuple[Any, ...]  # its KEYS, and its ARGV (ARGV[1] first: the time override): kept
    argv: tuple[Any, ...]  # as given, not sliced out of `args` per call when batched
    packed: bytes | None = None  # the EVALSHA in RESP, for a command sent often (else packed
    # when it leaves, alone; a batch is packed once, whole)


def script_call(
    script: Any, batched: Any, tag: str, keys: tuple[bytes, ...], argv: tuple[Any, ...]
) -> Call:
    """The `Call` of `script` on `keys` and `argv`; `tag` is the service, whose hash tag every
    key carries (calls of one service share one cluster slot). Calls group by script, service,
    shape and time override (ARGV[1]: a batch has one NOW)."""
    group = (id(script), tag, len(keys), len(argv), argv[0])
    args = ("EVALSHA", script.sha, len(keys), *keys, *argv)
    return Call(script, batched, args, group, keys, argv)


class Group:
    """The calls of one tick that share a script call: the first one's place in the batch."""

    __slots__ = ("calls", "futures", "index", "orphans")

    def __init__(self, index: int, call: Call, fut: asyncio.Future[Any], orphan: Any) -> None:
        self.index = index
        self.calls = [call]
        self.futures = [fut]
        self.orphans = [orphan]

    def item(self, loop: asyncio.AbstractEventLoop) -> Item:
        """The batched script call for every call of the group; its reply is dealt out."""
        calls = self.calls
        first = calls[0]
        nk, batched = len(first.keys), first.batched
        # Run-length encoded: consecutive equal calls (the cached command of one endpoint's
        # plain calls, the common case) are sent once with their count, not once each.
        keys: list[Any] = []
        argv: list[Any] = []
        runs: list[int] = []
        prev: Call | None = None
        for call in calls:
            if prev is not None and (
                call is prev or (call.argv == prev.argv and call.keys == prev.keys)
            ):
                runs[-1] += 1
                continue
            keys += call.keys
            argv += call.argv
            runs.append(1)
            prev = call
        tail = (*(str(r).encode() for r in runs), str(len(runs)).encode(), str(nk).encode())
        args = ("EVALSHA", batched.sha, len(keys), *keys, *argv, *tail)
        whole: asyncio.Future[Any] = loop.create_future()
        whole.add_done_callback(self._deal)
        return (args, batched, pack(args), whole, None)

    def _deal(self, whole: asyncio.Future[Any]) -> None:
        """Each call its own reply (or error); a cancelled caller's to its orphan handler."""
        exc = whole.exception() if not whole.cancelled() else asyncio.CancelledError()
        replies: list[Any]
        if exc is None:
            replies = whole.result()
        elif isinstance(exc, NotReplicated) and isinstance(exc.reply, list):
            replies = [NotReplicated(r) for r in exc.reply]
        else:
            replies = [exc] * len(self.futures)
        for fut, orphan, r in zip(self.futures, self.orphans, replies, strict=True):
            failed = isinstance(r, BaseException)
            if fut.done():
                if orphan is not None and not failed:
                    orphan(r)
            elif failed:
                fut.set_exception(r if isinstance(r, NotReplicated) else as_backend_error(r))
            else:
                fut.set_result(r)
