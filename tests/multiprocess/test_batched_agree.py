"""Batched and separate decisions agree: several processes' admissions and outcomes, as Redis
ran them (recorded with MONITOR), replayed one call per script call decide exactly the same."""

from __future__ import annotations

import asyncio
import codecs
import hashlib
import re

import pytest
import redis.asyncio as aioredis

from nexus_connector_async.backends.redis._replies import admission
from nexus_connector_async.backends.redis._scripts import batched_source, source
from nexus_connector_async.typing import AdmissionReason
from tests._multiproc import run_in_processes
from tests._redis_servers import RedisProcess
from tests.multiprocess import _batch_workers
from tests.multiprocess._batch_workers import decision

pytestmark = [pytest.mark.multiprocess, pytest.mark.redis]

_ARG = re.compile(rb'"((?:[^"\\]|\\.)*)"')
_END = b"nexus-agree-end"


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


async def _monitor(url: str, started: asyncio.Event) -> list[list[bytes]]:
    """Every command clients sent (not the ones scripts ran), until the end marker."""
    host, port = url.split("//")[1].split("/", maxsplit=1)[0].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"MONITOR\r\n")
    await writer.drain()
    assert await reader.readline() == b"+OK\r\n"
    started.set()
    commands = []
    while True:
        line = await reader.readline()
        if b" lua] " in line:  # run inside a script
            continue
        args = [codecs.escape_decode(a)[0] for a in _ARG.findall(line)]
        if args[:2] == [b"ECHO", _END]:
            writer.close()
            return commands
        commands.append(args)


async def test_batched_and_separate_decisions_agree_on_a_recorded_sequence(
    redis_server: RedisProcess, redis_flush: None
) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    for name in ("admit", "record"):  # loaded up front: a NOSCRIPT call would be recorded too
        await client.script_load(source(name))
        await client.script_load(batched_source(name))
    started = asyncio.Event()
    monitor = asyncio.ensure_future(_monitor(redis_server.url, started))
    await started.wait()
    # Three processes batch, one does not: their script calls interleave in one Redis.
    outcomes = await asyncio.to_thread(
        run_in_processes,
        _batch_workers.admit_and_record,
        4,
        redis_server.url,
        150,
        timeout=120,
    )
    await client.echo(_END)
    commands = await asyncio.wait_for(monitor, 30)
    logs = [o.unwrap() for o in outcomes]

    admit = {_sha(source("admit")): False, _sha(batched_source("admit")): True}
    plain = {_sha(batched_source(name)): _sha(source(name)) for name in ("admit", "record")}
    plain.update({_sha(source(name)): _sha(source(name)) for name in ("admit", "record")})
    # Replay on an empty database, one call per script call, in the order Redis ran them.
    replay = aioredis.Redis.from_url(redis_server.url, db=1)
    await replay.flushdb()
    decided: dict[str, list[tuple[object, ...]]] = {}
    batches = 0
    for args in commands:
        if args[0] != b"EVALSHA" or args[1].decode() not in plain:
            continue
        sha, nk = args[1].decode(), int(args[2])
        keys, argv = args[3 : 3 + nk], args[3 + nk :]
        calls = [(keys, argv)]
        if sha != plain[sha]:  # batched: split it into its calls (M runs of equal calls)
            m, k = int(argv[-2]), int(argv[-1])
            runs = [int(r) for r in argv[-2 - m : -2]]
            na = (len(argv) - 2 - m) // m
            calls = [
                (keys[d * k : (d + 1) * k], argv[d * na : (d + 1) * na])
                for d, run in enumerate(runs)
                for _ in range(run)
            ]
            batches += sum(runs) > 1
        for ks, av in calls:
            reply = await replay.evalsha(plain[sha], len(ks), *ks, *av)
            if sha in admit:
                decided.setdefault(av[0].decode(), []).append(decision(admission(reply)))
    await replay.flushdb()
    await replay.aclose()
    await client.aclose()

    assert batches > 50  # the batched processes did batch
    ticks = [tick for log in logs for tick in log]
    assert len(ticks) == 600
    reasons = {d[0] for _, ds in ticks for d in ds}
    moved = {AdmissionReason.ADMITTED, AdmissionReason.RATE_LIMITED, AdmissionReason.CIRCUIT_OPEN}
    assert moved <= reasons  # the state moved: every kind of decision is in the replay
    for at, recorded in ticks:
        assert decided[at] == recorded, at
