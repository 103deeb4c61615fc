"""`status` and `reset`: see and operate the shared state in Redis.

Exit codes: 0 success; 1 aborted or failed; 2 bad usage; 3 unknown service; 4 Redis unreachable.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from .._errors import plural

EXIT_OK, EXIT_ABORTED, EXIT_USAGE, EXIT_UNKNOWN_SERVICE, EXIT_UNREACHABLE = 0, 1, 2, 3, 4


async def _client(url: str, cluster: bool) -> Any:
    from redis.asyncio import Redis, RedisCluster

    kw: dict[str, Any] = {"socket_connect_timeout": 2.0, "socket_timeout": 5.0}
    if cluster:
        cluster_client = RedisCluster.from_url(url, **kw)
        await cluster_client.initialize()
        return cluster_client
    client = Redis.from_url(url, **kw)
    await client.ping()
    return client


def _shown(name: str) -> str:
    """A name as printed: control, format and undecodable characters escaped (`\\x1b`).

    Names come from key names in a shared Redis: a planted one must not drive the terminal.
    """
    if name.isprintable():
        return name
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in name)


def _fmt(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.1f}{unit}"


def _tokens(tokens: float | None, capacity: float | None) -> str:
    """`full` for a full bucket, else `7.3/10`.

    A bucket that was not used for a while has expired from Redis: missing and full are the
    same state (the next call finds it full), so both read `full`, never `-` ("no limit").
    """
    if tokens is None or capacity is None or round(tokens, 1) >= capacity:
        return "full"
    return f"{tokens:.1f}/{capacity:g}"


def _slots(in_use: int, limit: int | None) -> str:
    """`3` slots held, or `3/7` under an adaptive limit (its current value)."""
    return str(in_use) if limit is None else f"{in_use}/{limit}"


async def _reachable(url: str, cluster: bool) -> Any:
    """A client of the Redis at `url`, or None (the reason printed) when it cannot be reached."""
    from redis.exceptions import RedisError

    try:
        return await _client(url, cluster)
    except (RedisError, OSError) as exc:
        print(f"error: cannot reach Redis at the given URL ({type(exc).__name__})", file=sys.stderr)
        return None


async def status(
    url: str, service: str | None, *, cluster: bool, prefix: str, out: TextIO | None = None
) -> int:
    """Print each service's breaker, bucket and idempotency state."""
    out = out or sys.stdout
    from redis.exceptions import RedisError

    from ..backends.redis._inspect import list_services, service_status

    client = await _reachable(url, cluster)
    if client is None:
        return EXIT_UNREACHABLE
    try:
        services = await list_services(client, prefix)
        if service is not None and service not in services:
            print(
                f"error: unknown service {service!r} "  # repr escapes control characters
                f"(known: {', '.join(map(_shown, services)) or 'none'})",
                file=sys.stderr,
            )
            return EXIT_UNKNOWN_SERVICE
        rows = [
            await service_status(client, s, prefix) for s in ([service] if service else services)
        ]
    except RedisError as exc:
        print(f"error: Redis failed while reading ({type(exc).__name__})", file=sys.stderr)
        return EXIT_UNREACHABLE
    finally:
        await client.aclose()
    header = (
        f"{'service':<16}{'breaker':<11}{'failures':>8}{'half-open in':>14}{'probes':>8}"
        f"{'paused':>8}{'tokens':>14}{'idem busy':>11}{'idem done':>11}{'unknown':>9}"
        f"{'slots':>10}"
    )
    print(header, file=out)
    for r in rows:
        tokens = _tokens(r.tokens, r.capacity)
        print(
            f"{_shown(r.service):<16}{r.breaker:<11}{r.failures:>8}"
            f"{_fmt(r.seconds_to_half_open, 's'):>14}{r.probes_in_flight:>8}"
            f"{_fmt(r.paused_for, 's'):>8}{tokens:>14}"
            f"{r.idempotency_in_progress:>11}{r.idempotency_completed:>11}"
            f"{r.idempotency_unknown:>9}{_slots(r.slots_in_use, r.slot_limit):>10}",
            file=out,
        )
    if not rows:
        print("(no service has state under this prefix)", file=out)
    return EXIT_OK


async def reset(
    url: str,
    service: str,
    *,
    cluster: bool,
    prefix: str,
    yes: bool,
    stdin: TextIO | None = None,
    out: TextIO | None = None,
) -> int:
    """Close a service's breaker and refill its buckets, after confirmation."""
    stdin, out = stdin or sys.stdin, out or sys.stdout
    from redis.exceptions import RedisError

    from ..backends.redis._inspect import list_services, reset_service

    client = await _reachable(url, cluster)
    if client is None:
        return EXIT_UNREACHABLE
    try:
        if service not in await list_services(client, prefix):
            print(f"error: unknown service {service!r}", file=sys.stderr)
            return EXIT_UNKNOWN_SERVICE
        if not yes:
            print(
                f"Close the breaker and refill the buckets of {service!r} for every worker? [y/N] ",
                end="",
                file=out,
                flush=True,
            )
            answer = stdin.readline().strip().lower()
            if answer not in ("y", "yes"):
                print("aborted", file=out)
                return EXIT_ABORTED
        removed = await reset_service(client, service, prefix)
    except RedisError as exc:
        print(f"error: Redis failed during reset ({type(exc).__name__})", file=sys.stderr)
        return EXIT_UNREACHABLE
    finally:
        await client.aclose()
    print(
        f"reset {service!r}: breaker closed, buckets full ({plural(removed, 'key')} removed)",
        file=out,
    )
    return EXIT_OK
