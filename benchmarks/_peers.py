"""The stack a user would assemble today from peers: `limits` + `purgatory` + `tenacity`.

It does the same per-call work as `Connector.execute` on the benchmark's endpoint: every attempt
takes a rate-limit hit (limits' moving window, its accurate strategy) and passes a shared circuit
breaker (purgatory), and 5xx answers are retried with exponential backoff and full jitter
(tenacity). State lives in Redis (limits' redis-py storage and purgatory's Redis unit of work)
or, for the memory comparison, in process memory.

limits' Redis storage defaults to the `coredis` client, whose current release pins
`packaging<26`; we pass ``implementation="redispy"`` so the peer stack uses the same redis-py
client as the library (and needs no extra package).
"""

from __future__ import annotations

from typing import Any

import aiohttp
from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from purgatory import AsyncCircuitBreakerFactory, AsyncInMemoryUnitOfWork, AsyncRedisUnitOfWork
from purgatory.domain.model import OpenedState
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

__all__ = ["PeerError", "PeerRateLimited", "PeerStack", "PeerStatusError", "PeerCircuitOpen"]


class PeerError(Exception):
    """Base of what the peer stack raises."""


class PeerRateLimited(PeerError):
    """limits said no."""


class PeerCircuitOpen(PeerError):
    """purgatory's breaker is open."""


class PeerStatusError(PeerError):
    """A final non-2xx answer."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class _Retryable(PeerStatusError):
    """A 5xx: counts against the breaker and is retried."""


class PeerStack:
    """limits + purgatory + tenacity around one aiohttp session, as a user would write it."""

    def __init__(
        self,
        url: str,
        service: str,
        *,
        redis_url: str | None,
        limit_per_second: int,
        failure_threshold: int = 5,
        recovery_timeout: float = 30.0,
        max_attempts: int = 3,
        base_delay: float = 0.1,
        max_delay: float = 10.0,
        connections: int = 100,
    ) -> None:
        self.url = url
        self.service = service
        self.redis_url = redis_url
        self.item = RateLimitItemPerSecond(limit_per_second)
        self.failure_threshold = failure_threshold
        self.recovery_timeout = recovery_timeout
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.connections = connections
        self.storage: Storage | None = None
        self.session: aiohttp.ClientSession | None = None
        self.breakers: AsyncCircuitBreakerFactory | None = None
        self.limiter: MovingWindowRateLimiter | None = None
        self.timeout = aiohttp.ClientTimeout(total=10.0, sock_connect=5.0)

    async def __aenter__(self) -> PeerStack:
        if self.redis_url is None:
            self.storage = MemoryStorage()
            uow: Any = AsyncInMemoryUnitOfWork()
        else:
            host = self.redis_url.split("://", 1)[1]
            self.storage = RedisStorage(f"async+redis://{host}", implementation="redispy")
            uow = AsyncRedisUnitOfWork(self.redis_url)
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.breakers = AsyncCircuitBreakerFactory(
            default_threshold=self.failure_threshold,
            default_ttl=self.recovery_timeout,
            uow=uow,
        )
        await self.breakers.initialize()
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.connections),
            skip_auto_headers=("User-Agent",),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()
        if isinstance(self.storage, RedisStorage):
            await _close_quietly(self.storage)
        if self.breakers is not None:
            repo = getattr(self.breakers.uow, "contexts", None)
            client = getattr(repo, "redis", None)
            if client is not None:
                await client.aclose()

    async def _attempt(self) -> bytes:
        assert self.limiter is not None
        assert self.breakers is not None
        assert self.session is not None
        if not await self.limiter.hit(self.item, self.service):
            raise PeerRateLimited(self.service)
        breaker = await self.breakers.get_breaker(self.service)
        try:
            async with breaker, self.session.get(self.url, timeout=self.timeout) as resp:
                body = await resp.read()
                if resp.status >= 500:
                    raise _Retryable(resp.status)
        except OpenedState:
            raise PeerCircuitOpen(self.service) from None
        if resp.status >= 400:
            raise PeerStatusError(resp.status)
        return body

    async def call(self) -> bytes:
        """One call: rate limit, breaker, GET, retry 5xx with backoff and jitter."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=wait_random_exponential(multiplier=self.base_delay, max=self.max_delay),
            retry=retry_if_exception_type(_Retryable),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._attempt()
        raise AssertionError("unreachable: tenacity reraises the last error")


async def _close_quietly(storage: RedisStorage) -> None:
    # limits has no public close; the redis-py bridge keeps its client on `storage.bridge`.
    bridge = getattr(storage, "bridge", None)
    client = getattr(bridge, "storage", None)
    close = getattr(client, "aclose", None)
    if close is not None:
        await close()
