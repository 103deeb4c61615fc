"""Small pieces both payment adapters share: secret-safe header maps and input checks."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .._errors import InvalidRequest

__all__ = ["SecretHeaders", "check_text", "header_safe"]

_SECRET_HEADERS = frozenset({"authorization"})


class SecretHeaders(Mapping[str, str]):
    """Endpoint headers whose `repr` masks `Authorization`, so no repr ever shows a key."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str]) -> None:
        self._items = dict(items)

    def __getitem__(self, key: str) -> str:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        shown = {k: "***" if k.lower() in _SECRET_HEADERS else v for k, v in self._items.items()}
        return repr(shown)


def header_safe(value: object, what: str) -> str:
    """`value` if it is a non-empty str fit for an HTTP header (the value is never echoed)."""
    if (
        not isinstance(value, str)
        or not value
        or value != value.strip()
        or not all(" " <= c <= "~" for c in value)
    ):
        raise InvalidRequest(f"{what} must be a non-empty printable ASCII str")
    return value


def check_text(value: Any, what: str, max_length: int) -> str | None:
    """`None`, or a str of at most `max_length` characters."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_length:
        raise InvalidRequest(f"{what} must be a str of at most {max_length} characters")
    return value
