"""The wire form: RESP packing, the batch item, and what a durable write's reply becomes.

Shared by the pipeliner (`_pipeliner`), batched script calls (`_batched`) and the cluster's
per-node sender (`_cluster`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ..._errors import BackendUnavailable

__all__ = ["Item", "NotReplicated", "acknowledged", "pack"]

#: (command, script, packed command, future of the reply, handler of an orphaned reply)
Item = tuple[
    tuple[Any, ...], Any, bytes | None, "asyncio.Future[Any]", "Callable[[Any], None] | None"
]


def acknowledged(results: list[Any], durable: list[int], replicas: Any) -> list[Any]:
    """The replies of a batch, the durable ones replaced by an error if no replica has them."""
    if isinstance(replicas, int) and replicas >= 1:
        return results
    # An error reply wrote nothing (NOSCRIPT is re-sent): only real writes need the replica.
    durable_set = set(durable)
    return [
        NotReplicated(r) if i in durable_set and not isinstance(r, Exception) else r
        for i, r in enumerate(results)
    ]


class NotReplicated(BackendUnavailable):
    """The master ran a durable write but no replica acknowledged it in time.

    `reply` is what the master answered, so the caller can undo what it took (a claim).
    """

    def __init__(self, reply: Any) -> None:
        super().__init__("redis: no replica acknowledged the write in time")
        self.reply = reply


def _pack(args: tuple[Any, ...]) -> bytes:
    """A command in RESP, the wire form: `*<n>` then `$<len>` and the bytes of each argument."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        if isinstance(data, int | float):
            data = repr(data).encode()
        out.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(out)


#: `args` as one RESP command (str and bytes as given, numbers as their repr). hiredis (the
#: `redis` extra installs it) packs in C, at a third of the Python version's cost.
pack: Callable[[tuple[Any, ...]], bytes] = _pack
try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - redis without hiredis
    pass
else:
    pack = _hiredis_pack
