"""Redis key names: built in one place, so the layout (and its hash tags) is visible at a glance.

    {prefix}:{<service>}:cb                 breaker hash (state, failures, pause, retry budget)
    {prefix}:{<service>}:probes             zset of half-open probe permits -> lease end
    {prefix}:{<service>}:bucket:<limit>     token bucket of one limit of the service
    {prefix}:{<service>}:tbucket:<limit>:<tenant>
                                            the same for one tenant (scope="tenant")
    {prefix}:{<service>}:idem:<digest>      idempotency record (no tenant)
    {prefix}:{<service>}:tidem:<tenant>:<digest>
    ...:idem...:n                           notify list that waiters block on
    {prefix}:{<service>}:slots[:t:<tenant>] zset of concurrency slots -> lease end
    ...:slotq / ...:slotm                   FIFO queue of slot waiters / counter, adaptive limit
    ...:slotw[:t:<tenant>]:<ticket>         wake list one slot waiter blocks on
    {prefix}:kv:<key>                       shared KV values and locks (token cache, refresh lock)

Every key of one service carries the same `{service}` hash tag, so each script touches one
cluster slot. Idempotency keys appear only as the connector's digest, never in clear. `<limit>` is
`RateLimitConfig.bucket_id`: the limit's name, or `rate/period/burst` (one bucket per distinct
limit). Service, tenant and other name parts are escaped (`escape_name`: percent-encoding
outside `[A-Za-z0-9._~-]`), so no name can produce another key's sub-key, move the hash tag or
act as a glob in a SCAN pattern.
"""

from __future__ import annotations

import functools
from typing import Literal

from ..._errors import InvalidRequest
from .._names import escape_name

__all__ = ["Kind", "check_prefix", "key"]

Kind = Literal[
    "cb", "probes", "bucket", "tbucket", "idem", "tidem", "kv", "slots", "slotq", "slotm", "slotw"
]


def check_prefix(prefix: str) -> str:
    """A prefix must be non-empty printable ASCII without braces (they would move the hash tag)."""
    if not isinstance(prefix, str) or not prefix or any(not " " < c <= "~" for c in prefix):
        raise InvalidRequest("prefix must be non-empty printable ASCII without spaces")
    if "{" in prefix or "}" in prefix:
        raise InvalidRequest("prefix must not contain braces: they would change the hash tag")
    return prefix


def key(prefix: str, kind: Kind, service: str = "", *parts: str) -> str:
    """The one place a key name is built: `prefix:{service}:kind[:part...]` (KV: no hash tag).

    Service and parts are escaped here; KV names are the caller's own key layout, kept as given.
    """
    if kind == "kv":
        return ":".join((prefix, "kv", *parts))
    return ":".join((_tagged(prefix, service), kind, *map(escape_name, parts)))


@functools.lru_cache(maxsize=4096)
def _tagged(prefix: str, service: str) -> str:
    """`prefix:{service}`: the same few services come back on every call (the hot path)."""
    return f"{prefix}:{{{escape_name(service)}}}"
