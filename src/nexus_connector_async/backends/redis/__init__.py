"""The Redis backend: every state transition is one Lua script reading Redis `TIME`."""

from ._backend import RedisBackend

__all__ = ["RedisBackend"]
