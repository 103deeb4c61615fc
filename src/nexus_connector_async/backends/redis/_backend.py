"""`RedisBackend`: breaker, bucket, idempotency and KV state shared by every worker via Redis.

Every read-modify-write is one Lua script reading Redis `TIME` (see `lua/`), so workers on
different hosts never race or disagree about time. Concurrent calls' scripts are coalesced into
one pipelined round trip per event-loop tick (`_pipeliner.Pipeliner`).

While Redis cannot be reached, `on_unavailable` picks the strategy (`_fallback`):

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
import functools
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.retry import Retry  # not redis.retry.Retry: redis-py 8.2 warns on that
from redis.backoff import NoBackoff

from ..._clock import Clock
from ..._errors import BackendUnavailable
from .._base import Admission, AdmitAsk, Claim
from ._admission import AdmissionMixin
from ._batched import script_call
from ._core import DEFAULT_ON_UNAVAILABLE, Durability, check_test_clock, num
from ._fallback import OnUnavailable
from ._idempotency import IdempotencyMixin
from ._kv import KeyValueMixin
from ._replies import admission, claim_reply
from ._wire import NotReplicated

__all__ = ["DEFAULT_ON_UNAVAILABLE", "OnUnavailable", "RedisBackend"]


class RedisBackend(AdmissionMixin, IdempotencyMixin, KeyValueMixin):
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
        check_test_clock(clock)  # before a client exists that would need closing
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
        """`claim` and, if it took the key, the first attempt's admission: one script
        (idem_claim_admit.lua), so a keyed call costs one round trip less. Raises
        `BackendUnavailable` in any outage, as `claim` does (no fallback for a key).

        Cancellation-safe without a task: the command runs once queued, and a reply whose
        caller is gone hands back what it took (`_orphaned_claim`)."""
        keys = self._idem_keys(service, tenant, key)
        command, give_back = self._admission_command(
            service,
            tenant,
            ask.breaker,
            ask.limit,
            ask.probe_lease,
            ask.budget,
            False,
            ask.shadow,
            ask.slot,
        )
        amo = b"" if unknown_ttl is None else num(unknown_ttl)
        args = (self._now(), fingerprint, num(lease), amo, *command.argv[1:])
        script = self._scripts.idem_claim_admit
        call = script_call(script, self._batched[id(script)], service, (*keys, *command.keys), args)
        orphan = functools.partial(self._orphaned_claim, keys, give_back)
        try:
            r = await self._submit(call, on_orphan=orphan, durable=True)
        except NotReplicated as exc:  # no replica took it: a failover could lose it, give it back
            orphan(exc.reply)
            raise BackendUnavailable(str(exc)) from None
        return self._opened(keys, claim_reply(r[0])), admission(r[1]) if len(r) > 1 else None

    def _orphaned_claim(
        self, keys: tuple[bytes, bytes], give_back: Callable[[Any], None], reply: Any
    ) -> None:
        """Hand back what a claim_admit reply nobody awaited took (its caller was cancelled):
        the key at once (not at the end of its lease: a repeat would wait for it meanwhile),
        then the admission's permit and slot."""
        claim = claim_reply(reply[0])
        if claim.state == "acquired":
            script = self._scripts.idem_release
            command = ("EVALSHA", script.sha, 2, *keys, self._now(), claim.token)
            freed = self._pipe.submit(command, script)
            freed.add_done_callback(_ignore_failure)  # best effort: the lease frees it anyway
        if len(reply) > 1:
            give_back(reply[1])

    def __repr__(self) -> str:
        kind = "cluster" if self._cluster else "redis"
        mode = self.on_unavailable
        durable = ", durability='replica'" if self.durability == "replica" else ""
        return f"RedisBackend({kind}, prefix={self.prefix!r}, on_unavailable={mode!r}{durable})"


def _ignore_failure(done: asyncio.Future[Any]) -> None:
    """Take a fire-and-forget command's error, so that asyncio does not log it as lost."""
    if not done.cancelled():
        done.exception()
