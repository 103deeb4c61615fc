"""The Redis backend: every state transition is one Lua script reading Redis `TIME`."""

from ..._extras import require_extra

require_extra("RedisBackend", "redis", "redis")

from ._backend import RedisBackend  # noqa: E402 - after the check names the missing extra

__all__ = ["RedisBackend"]
