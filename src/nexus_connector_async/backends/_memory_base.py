"""The tables of `MemoryBackend` and their expiry heap (bounded memory, api.md rule 24).

Every entry that can become garbage (an idempotency record, a bucket, a breaker, a KV value with
a TTL) has one entry in an expiry heap; each call first pops the entries that are due and frees
what is expired, full or idle (see `_memory`'s docstring). The stores are mixins over
`MemoryBase`: `_memory_stores` (idempotency, key-value) and `_memory` (admission, slots).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from dataclasses import dataclass, field
from typing import Any

from .._clock import SYSTEM_CLOCK, Clock

__all__ = [
    "BREAKER",
    "BUCKET",
    "CLOSED",
    "HALF_OPEN",
    "IDEM",
    "IDLE_BREAKER",
    "IDLE_BUCKET",
    "KV",
    "OPEN",
    "Breaker",
    "Bucket",
    "Idem",
    "MemoryBase",
]

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
IDEM, BUCKET, BREAKER, KV = 0, 1, 2, 3  # the tables an expiry heap entry points into
IDLE_BUCKET = 1.0  # a bucket is freed once it has been full this long (less churn when busy)
IDLE_BREAKER = 3600.0  # like the Redis breaker key: kept an hour (plus its timers) after use


@dataclass(slots=True)
class Breaker:
    state: str = CLOSED
    failures: int = 0
    successes: int = 0
    opened_at: float = 0.0
    paused_until: float = 0.0
    probes: dict[str, float] = field(default_factory=dict)  # permit -> lease expiry
    budget: float = -1.0  # retry budget balance; -1 = not started
    budget_at: float = 0.0
    keep_until: float = 0.0  # freed after this even if not clean (the Redis key's TTL)

    def clean(self, now: float) -> bool:
        """Nothing a fresh breaker would not also say: freeing it changes no decision."""
        return (
            self.state == CLOSED
            and not self.failures
            and not self.probes
            and self.paused_until <= now
            and self.budget < 0
        )


@dataclass(slots=True)
class Bucket:
    tokens: float
    updated: float
    cap: float
    rate: float

    def full_at(self) -> float:
        """When the bucket is full again (then freeing it equals a fresh, full one)."""
        return self.updated + (self.cap - self.tokens) / self.rate


@dataclass(slots=True)
class Idem:
    fingerprint: str
    token: str
    expires: float  # lease end while in progress, TTL end once completed
    result: bytes | None = None
    unknown_ttl: float | None = None  # at most once: a lease that ends turns `unknown`
    unknown: bool = False  # the request may have reached the vendor; nothing may resend it


class MemoryBase:
    """The tables and their expiry heap. Every method of the stores runs without awaiting in
    between its reads and writes, which makes each transition atomic with respect to other
    tasks, mirroring one Lua script on Redis."""

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock = clock or SYSTEM_CLOCK
        self._breakers: dict[str, Breaker] = {}
        self._buckets: dict[tuple[Any, ...], Bucket] = {}
        self._limits: dict[Any, tuple[Any, float, float]] = {}  # limit -> (bucket id, cap, rate)
        self._idem: dict[tuple[str, str | None, str], Idem] = {}
        self._kv: dict[str, tuple[bytes, float | None]] = {}
        self._changed: dict[tuple[str, str | None, str], asyncio.Event] = {}
        self._ids = itertools.count(1)
        # (due, seq, table, key, entry): one per freeable entry; stale ones are skipped
        self._expiry: list[tuple[float, int, int, Any, Any]] = []
        self._seq = itertools.count()
        self._freed = 0

    def _watch(self, due: float, table: int, key: Any, entry: Any) -> None:
        heapq.heappush(self._expiry, (due, next(self._seq), table, key, entry))

    def _sweep(self, now: float) -> None:
        """Free every entry that is due: expired, full or idle (see the module docstring)."""
        heap = self._expiry
        if not heap or heap[0][0] > now:
            return
        tables: tuple[dict[Any, Any], ...] = (self._idem, self._buckets, self._breakers, self._kv)
        while heap and heap[0][0] <= now:
            _, _, kind, key, entry = heapq.heappop(heap)
            table = tables[kind]
            if key not in table or table[key] is not entry:
                continue  # replaced or freed meanwhile; the new entry has its own watch
            due = self._due(kind, entry, now)
            if due is None:
                del table[key]
                self._freed += 1
                if kind == IDEM:
                    self._notify(key)
            else:
                self._watch(due, kind, key, entry)
        if self._freed > 4096 and self._freed > 2 * sum(map(len, tables)):
            # A dict keeps its peak-sized table after deletes: copy them to give it back.
            self._freed = 0
            self._idem, self._buckets = dict(self._idem), dict(self._buckets)
            self._breakers, self._kv = dict(self._breakers), dict(self._kv)
            self._changed = dict(self._changed)

    @staticmethod
    def _due(kind: int, entry: Any, now: float) -> float | None:
        """None if `entry` can be freed now, else when to look at it again."""
        if kind == IDEM:
            ended = entry.expires <= now and entry.result is None and not entry.unknown
            if ended and entry.unknown_ttl is not None:  # at-most-once lease ended: unknown
                entry.unknown, entry.expires = True, entry.expires + entry.unknown_ttl
            return None if entry.expires <= now else entry.expires
        if kind == BUCKET:
            idle_at: float = entry.full_at() + IDLE_BUCKET
            return None if idle_at <= now else idle_at
        if kind == BREAKER:
            if entry.clean(now) or (entry.keep_until <= now and entry.paused_until <= now):
                return None
            return float(min(entry.keep_until, max(entry.paused_until, now) + 1.0))
        expires: float | None = entry[1]  # a KV value with a TTL
        return None if expires is None or expires <= now else expires

    def entries(self) -> int:
        """How many entries this backend holds (records, buckets, breakers, values, waiters).

        For tests and metrics: it returns to its baseline once keys expire (rule 24).
        """
        return (
            len(self._idem)
            + len(self._buckets)
            + len(self._breakers)
            + len(self._kv)
            + len(self._changed)
        )

    def _live(self, k: tuple[str, str | None, str], now: float) -> Idem | None:
        rec = self._idem.get(k)
        if rec is not None and rec.expires <= now:
            if rec.result is None and rec.unknown_ttl is not None and not rec.unknown:
                # The owner's lease ended without an answer: it may have sent the request.
                rec.unknown, rec.expires = True, rec.expires + rec.unknown_ttl
                if rec.expires > now:
                    self._notify(k)
                    return rec
            del self._idem[k]
            self._notify(k)
            return None
        return rec

    def _notify(self, k: tuple[str, str | None, str]) -> None:
        ev = self._changed.pop(k, None)
        if ev is not None:
            ev.set()
