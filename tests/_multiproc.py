"""Run one async function in N separate OS processes that all start at the same moment.

This is how the suite plays several workers sharing Redis state::

    async def incr_counter(index: int, url: str) -> int:  # module level!
        ...

    outcomes = run_in_processes(incr_counter, 4, redis_url, timeout=30)
    values = [outcome.unwrap() for outcome in outcomes]

Processes use the ``spawn`` start method (no inherited event loops, sockets or locks), so
``target`` and its arguments are pickled: ``target`` must be a module-level ``async def`` in
a module the child can import (a test module or a helper module under ``tests/``; not a
lambda, closure or nested function). Each child imports that module and reports ready; once
all are ready the parent sends every child "go" and each runs
``asyncio.run(target(index, *args))``. The parent holds the start gate, so a worker that
dies or fails never disturbs the start of the others.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import pickle
import time
import traceback
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any, Generic, TypeVar

__all__ = ["Outcome", "WorkerError", "run_in_processes"]

T = TypeVar("T")

_KILL_GRACE = 5.0


class WorkerError(RuntimeError):
    """A worker died, or failed in a way that could not be sent back as its own exception."""


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """What worker ``index`` returned, or the exception it raised (with its traceback text)."""

    index: int
    value: T | None = None
    error: BaseException | None = None
    traceback: str = ""

    def unwrap(self) -> T:
        """Return the value, or raise the worker's exception."""
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]  # None only when T allows it


def run_in_processes(
    target: Callable[..., Coroutine[Any, Any, T]],
    processes: int,
    *args: Any,
    timeout: float = 60.0,
) -> list[Outcome[T]]:
    """Run ``target(index, *args)`` in ``processes`` spawned processes; outcomes in index order.

    Raises ``WorkerError`` when a worker dies before the start, and ``TimeoutError`` when not
    every worker has reported within ``timeout`` seconds (counted from the call, spawn time
    included); either way every worker is ended and reaped first.
    """
    deadline = time.monotonic() + timeout
    ctx = multiprocessing.get_context("spawn")
    workers: list[BaseProcess] = []
    pipes: list[Connection] = []
    finished = False
    try:
        for index in range(processes):
            parent_end, child_end = ctx.Pipe()
            worker = ctx.Process(
                target=_worker_main,
                args=(child_end, target, index, args),
                name=f"nexus-worker-{index}",
                daemon=True,
            )
            worker.start()
            child_end.close()  # so the parent sees EOF when the child dies
            workers.append(worker)
            pipes.append(parent_end)

        for index, message in _collect(pipes, deadline, timeout).items():
            if message is None:
                raise WorkerError(f"worker {index} died before the start (see its stderr)")
        for pipe in pipes:
            pipe.send(_GO)
        outcomes = [
            _outcome(index, message, workers[index])
            for index, message in sorted(_collect(pipes, deadline, timeout).items())
        ]
        finished = True
    finally:
        for pipe in pipes:
            pipe.close()  # a worker still waiting for "go" sees EOF and exits
        # Workers that reported are exiting on their own; after a failure, stop the rest now.
        _reap(workers, grace=_KILL_GRACE if finished else 0.0)
    return outcomes


_GO = "go"
_READY = "ready"


def _collect(
    pipes: list[Connection], deadline: float, timeout: float
) -> dict[int, tuple[Any, ...] | None]:
    """One message from each pipe (None when its worker died), before the deadline."""
    pending = {pipe: index for index, pipe in enumerate(pipes)}
    messages: dict[int, tuple[Any, ...] | None] = {}
    while pending:
        remaining = deadline - time.monotonic()
        ready = wait(list(pending), timeout=remaining) if remaining > 0 else []
        if not ready:
            raise TimeoutError(
                f"workers {sorted(pending.values())} did not report within {timeout}s"
            )
        for pipe in ready:
            assert isinstance(pipe, Connection)
            index = pending.pop(pipe)
            try:
                messages[index] = pickle.loads(pipe.recv_bytes())
            except EOFError:
                messages[index] = None
            except Exception as exc:  # e.g. an exception class whose __init__ needs arguments
                error = WorkerError(f"worker {index}: unreadable result: {exc!r}")
                messages[index] = ("error", error, "")
    return messages


def _outcome(index: int, message: tuple[Any, ...] | None, worker: BaseProcess) -> Outcome[Any]:
    if message is None:
        worker.join(_KILL_GRACE)
        error = WorkerError(f"worker {index} died without a result (exit code {worker.exitcode})")
        return Outcome(index, error=error)
    kind, *payload = message
    if kind == "ok":
        return Outcome(index, value=payload[0])
    error, text = payload
    return Outcome(index, error=error, traceback=text)


def _worker_main(
    pipe: Connection,
    target: Callable[..., Coroutine[Any, Any, object]],
    index: int,
    args: tuple[Any, ...],
) -> None:
    try:
        pipe.send((_READY,))
        try:
            if pipe.recv() != _GO:
                return
        except EOFError:  # the parent gave up before the start
            return
        try:
            message: tuple[Any, ...] = ("ok", asyncio.run(target(index, *args)))
        except BaseException as exc:
            message = ("error", exc, traceback.format_exc())
        try:
            pipe.send(message)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            # Unpicklable result or exception: send its text instead.
            detail = message[2] if message[0] == "error" else repr(message[1])
            pipe.send(("error", WorkerError(f"worker {index}: {exc}"), detail))
    finally:
        pipe.close()


def _reap(workers: list[BaseProcess], *, grace: float) -> None:
    """Join every worker; terminate, then kill, any still running after ``grace`` seconds."""
    deadline = time.monotonic() + grace
    for worker in workers:
        worker.join(max(deadline - time.monotonic(), 0.0))
    for worker in workers:
        if worker.exitcode is None:
            worker.terminate()
            worker.join(_KILL_GRACE)
        if worker.exitcode is None:
            worker.kill()
            worker.join()
        worker.close()
