"""Service and tenant names as they appear inside backend key names: escaped, so never ambiguous.

A name is caller input; a key is `...:<service>:...:<tenant>:<suffix>`. Unescaped, a tenant named
`victim:lock` would write where tenant `victim`'s refresh lock lives, and a service named `*` would
be a glob in an operator's SCAN pattern. Every character outside `[A-Za-z0-9._~-]` is therefore
percent-encoded (UTF-8), which is injective: two different names never give the same escaped form,
and no escaped form contains `:`, braces, glob characters, spaces or control characters. Common
names (`stripe`, `tenant-42`) are unchanged, so existing keys keep their names.
"""

from __future__ import annotations

import functools
import re
from urllib.parse import quote, unquote

__all__ = ["escape_name", "unescape_name"]

_SAFE = "._~-"  # with letters and digits: what quote() never encodes besides these
_PLAIN = re.compile(r"[A-Za-z0-9._~-]*").fullmatch


def escape_name(name: str) -> str:
    """The form of a service or tenant name inside a key: percent-encoded, no separators."""
    return name if _PLAIN(name) else _quote(name)


@functools.lru_cache(maxsize=4096)
def _quote(name: str) -> str:
    return quote(name, safe=_SAFE, errors="surrogateescape")


def unescape_name(part: str) -> str | None:
    """The name a key part was escaped from, or None if no name escapes to exactly `part`.

    Key parts found in a shared Redis are not trusted: a part that is not a canonical escaped
    form (raw separators, glob or control characters, lowercase escapes) was not written by us.
    """
    name = unquote(part, errors="surrogateescape")
    return name if escape_name(name) == part else None
