"""Placeholder until the Redis backend lands (issue: Redis backend)."""

from __future__ import annotations

from typing import Any

__all__ = ["RedisBackend"]


class RedisBackend:
    """Shared state in Redis or Redis Cluster (not implemented yet)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("RedisBackend is not implemented yet")
