"""A reply that arrives just before its caller is cancelled is given back, not lost.

The batcher hands a reply to `on_orphan` when its caller's future was cancelled first. The
other order exists too: the reply is set, the caller's task is woken, and a cancellation lands
before it resumes; the task then raises CancelledError and the granted slot (or probe permit)
was held by nobody until its lease. The proxy-free way to hit that instant: cancel the caller
from a done-callback of the reply's future, which runs before the task's own wake-up.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from nexus_connector_async import RedisBackend

pytestmark = pytest.mark.redis


@pytest.mark.usefixtures("redis_flush")
async def test_a_slot_granted_as_its_caller_is_cancelled_goes_back(redis_url: str) -> None:
    backend = RedisBackend.from_url(redis_url)
    try:
        assert (await backend.slot_usage("svc", None, 2)) == (0, 2)  # scripts loaded
        task: asyncio.Task[Any] | None = None
        real_submit = backend._pipe.submit

        def submit(*args: Any, **kwargs: Any) -> asyncio.Future[Any]:
            fut = real_submit(*args, **kwargs)
            fut.add_done_callback(lambda _: task.cancel() if task is not None else None)
            return fut

        backend._pipe.submit = submit  # type: ignore[method-assign]
        task = asyncio.ensure_future(backend.acquire_slot("svc", None, 2, 600.0, 0.0))
        with pytest.raises(asyncio.CancelledError):
            await task
        backend._pipe.submit = real_submit  # type: ignore[method-assign]
        async with asyncio.timeout(5.0):
            while await backend.slot_usage("svc", None, 2) != (0, 2):
                await asyncio.sleep(0.01)  # the give-back is queued; polled with a deadline
    finally:
        await backend.aclose()
