"""Operator views of the shared state: what `nexus-connector status` and `reset` show and do.

Reads are plain reads (a snapshot, computed with Redis server time); `reset` deletes a service's
breaker, probe and bucket keys in one DEL per slot, which is exactly "closed and full" for the
scripts (a missing key is a fresh one).

Key names read back from Redis are untrusted (anyone with write access can plant one): service
names are taken only from canonical escaped forms (`unescape_name`), SCAN patterns escape the
prefix's glob characters, and nothing here fails on bytes that are not UTF-8.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from .._names import unescape_name
from ._keys import check_prefix, key

__all__ = ["ServiceStatus", "list_services", "reset_service", "service_status"]


class ServiceStatus(msgspec.Struct, frozen=True):
    """A snapshot of one service's breaker, bucket and idempotency keys."""

    service: str
    breaker: str  # "closed", "open", "half_open"
    failures: int
    seconds_to_half_open: float | None  # while open: how long until probes are let through
    probes_in_flight: int
    paused_for: float  # shared backpressure (vendor 429) still in force, seconds
    tokens: float | None  # tokens now in its emptiest service bucket; None without a rate limit
    capacity: float | None
    idempotency_in_progress: int
    idempotency_completed: int
    # At most once (rule 19): sent, outcome never seen; reconcile, then `Connector.forget()`.
    idempotency_unknown: int = 0
    slots_in_use: int = 0  # fleet-wide concurrency slots held now (rule 26, service scope)
    slot_limit: int | None = None  # the adaptive limit in force; None when fixed or unused


def _s(value: Any) -> str | None:
    if value is None:
        return None
    # Undecodable bytes survive as surrogates: never a crash, and never a canonical name.
    return value.decode(errors="surrogateescape") if isinstance(value, bytes) else str(value)


def _f(value: Any, default: float = 0.0) -> float:
    text = _s(value)
    if text is None or text == "":
        return default
    try:
        return float(text)
    except ValueError:  # a planted or garbled field: shown as the default, not a crash
        return default


_GLOB = re.compile(r"([*?\[\]\\])")


def _glob(literal: str) -> str:
    """`literal` as a Redis glob pattern that matches only itself."""
    return _GLOB.sub(r"\\\1", literal)


def _under(prefix: str, kind: Any, service: str) -> str:
    """The SCAN pattern of every `kind` key of `service` (glob characters of names escaped)."""
    return _glob(key(prefix, kind, service)) + ":*"


async def _now(client: Any) -> float:
    seconds, micros = await client.time()
    return float(seconds) + float(micros) / 1e6


async def list_services(client: Any, prefix: str = "nexus") -> list[str]:
    """Every service with state under `prefix` (breaker or bucket keys), sorted."""
    check_prefix(prefix)
    found: set[str] = set()
    head = f"{prefix}:{{"
    async for raw in client.scan_iter(match=f"{_glob(head)}*}}:*", count=500):
        name = _s(raw) or ""
        if name.startswith(head) and "}" in name:
            service = unescape_name(name[len(head) : name.index("}", len(head))])
            if service is not None:  # else not a key this library wrote
                found.add(service)
    return sorted(found)


async def service_status(client: Any, service: str, prefix: str = "nexus") -> ServiceStatus:
    """Read one service's state (a snapshot; nothing is modified)."""
    check_prefix(prefix)
    now = await _now(client)
    cb = await client.hgetall(key(prefix, "cb", service))
    fields = {_s(k): v for k, v in cb.items()}
    state = _s(fields.get("state")) or "closed"
    recovery = fields.get("recovery")
    to_half_open: float | None = None
    if state == "open" and recovery is not None:
        to_half_open = max(0.0, _f(fields.get("opened_at")) + _f(recovery) - now)
        if to_half_open == 0.0:
            state = "half_open"  # the next admission turns it half-open
    probes = await client.zcount(key(prefix, "probes", service), f"({now}", "+inf")
    tokens: float | None = None
    capacity: float | None = None
    # One bucket per limit (rule 21): show the emptiest, relative to its capacity.
    async for raw in client.scan_iter(match=_under(prefix, "bucket", service), count=500):
        b = {_s(k): v for k, v in (await client.hgetall(raw)).items()}
        if b.get("cap") is None:
            continue
        cap = _f(b.get("cap"))
        left = min(cap, _f(b.get("tokens")) + (now - _f(b.get("updated"))) * _f(b.get("rate")))
        if tokens is None or capacity is None or left / cap < tokens / capacity:
            tokens, capacity = left, cap
    in_progress = completed = unknown = 0
    for kind in ("idem", "tidem"):
        pattern = _under(prefix, kind, service)
        async for raw in client.scan_iter(match=pattern, count=500):
            name = _s(raw) or ""
            if name.endswith(":n"):
                continue  # a waiters' notify list, not a key
            result, marked, amo, expires = await client.hmget(
                raw, "result", "unknown", "amo", "expires"
            )
            lapsed = _f(expires) <= now
            if result is not None:
                completed += 1
            elif marked is not None or (amo is not None and lapsed):
                unknown += 1  # a lapsed at-most-once lease turns unknown at its next read
            elif not lapsed:
                in_progress += 1
    slots = await client.zcount(key(prefix, "slots", service), f"({now}", "+inf")
    slot_limit = await client.hget(key(prefix, "slotm", service), "limit")
    return ServiceStatus(
        service=service,
        breaker=state,
        failures=int(_f(fields.get("failures"))),
        seconds_to_half_open=to_half_open,
        probes_in_flight=int(probes),
        paused_for=max(0.0, _f(fields.get("paused_until")) - now),
        tokens=tokens,
        capacity=capacity,
        idempotency_in_progress=in_progress,
        idempotency_completed=completed,
        idempotency_unknown=unknown,
        slots_in_use=int(slots),
        slot_limit=None if slot_limit is None else int(_f(slot_limit)),
    )


async def reset_service(client: Any, service: str, prefix: str = "nexus") -> int:
    """Close the service's breaker and refill its buckets; returns how many keys were removed.

    Plain writes, no read-modify-write: a worker's script running in between sees either the
    old state or a fresh one, both valid.

    Idempotency records are left alone: deleting them could let a payment be sent twice.
    """
    check_prefix(prefix)
    names: list[str | bytes] = [
        key(prefix, "cb", service),
        key(prefix, "probes", service),
    ]
    for kind in ("bucket", "tbucket"):  # every limit's bucket (rule 21), of every tenant
        pattern = _under(prefix, kind, service)
        names += [raw async for raw in client.scan_iter(match=pattern, count=500)]
    # All of them share the service's hash tag, so one DEL touches one slot. The breaker is
    # then marked closed (for an hour, like an idle breaker) so `status` still lists it.
    removed = int(await client.delete(*names))
    await client.hset(names[0], mapping={"state": "closed", "failures": 0})
    await client.expire(names[0], 3600)
    return removed
