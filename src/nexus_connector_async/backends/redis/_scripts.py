"""The Lua scripts: read from `lua/*.lua` once, registered once per client.

Each file's header names its KEYS, ARGV and return value. `_prelude.lua` (time, number
formatting, TTL helpers) is prepended to every script, so the SHA covers the whole text.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any, NamedTuple

__all__ = ["SCRIPT_NAMES", "Scripts", "register", "source"]

SCRIPT_NAMES = (
    "admit",
    "record",
    "pause",
    "claim",
    "complete",
    "release",
    "extend",
    "mark_unknown",
    "forget",
    "kv_get",
    "kv_set",
    "kv_add",
    "lock_acquire",
    "lock_release",
    "renew_probe",
    "kv_cas",
    "lock_extend",
    "slots",
)


@functools.cache
def _read(name: str) -> str:
    return resources.files(__package__).joinpath("lua", f"{name}.lua").read_text("utf-8")


@functools.cache
def source(name: str) -> str:
    """The full text of script `name`: the shared prelude, then the script itself."""
    return _read("_prelude") + "\n" + _read(name)


class Scripts(NamedTuple):
    """One registered script (`redis.asyncio` `AsyncScript`) per Lua file, for one client."""

    admit: Any
    record: Any
    pause: Any
    claim: Any
    complete: Any
    release: Any
    extend: Any
    mark_unknown: Any
    forget: Any
    kv_get: Any
    kv_set: Any
    kv_add: Any
    lock_acquire: Any
    lock_release: Any
    renew_probe: Any
    kv_cas: Any
    lock_extend: Any
    slots: Any


def register(client: Any) -> Scripts:
    """`register_script` every script on `client` (computes SHAs; loads lazily on NOSCRIPT)."""
    return Scripts(*(client.register_script(source(name)) for name in SCRIPT_NAMES))
