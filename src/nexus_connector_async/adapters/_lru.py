"""The bounded, least-recently-stored caches the adapters keep (currencies, accounts, opt-outs)."""

from __future__ import annotations

from collections import OrderedDict
from typing import TypeVar

__all__ = ["remember"]

_K = TypeVar("_K")
_V = TypeVar("_V")


def remember(cache: OrderedDict[_K, _V], key: _K, value: _V, size: int) -> _V:
    """Store `value` as the newest entry of `cache`, dropping the oldest beyond `size`."""
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > size:
        cache.popitem(last=False)
    return value
