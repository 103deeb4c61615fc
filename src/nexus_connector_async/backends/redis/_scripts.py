"""The Lua scripts: read from `lua/*.lua` once, registered once per client.

Each file's header names its KEYS, ARGV and return value. `_prelude.lua` (time, number
formatting, expiry, record and slot helpers) is prepended to every script, so the SHA covers
the whole text. `Scripts` is the one table of them: a field per file, in the same name.

The hot path's scripts also come batched (`BATCHED`): the same text wrapped as a function and run
once per call by `_batch.lua`, so the concurrent calls of one service in one event-loop tick
cost one script call (`Pipeliner.submit_call`).
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any, NamedTuple, Protocol

__all__ = ["BATCHED", "SCRIPT_NAMES", "Script", "Scripts", "batched_source", "register", "source"]


class Script(Protocol):
    """A registered script (redis-py's `AsyncScript`): its SHA, reloaded on NOSCRIPT."""

    sha: str


@functools.cache
def _read(name: str) -> str:
    return resources.files(__package__).joinpath("lua", f"{name}.lua").read_text("utf-8")


#: Scripts made of others: each part defined as a function `<part>(KEYS, ARGV)`, then the glue
#: in `lua/<name>.lua` calls them.
_COMPOSED = {"idem_claim_admit": ("idem_claim", "admit")}


def _body(name: str) -> str:
    parts = _COMPOSED.get(name, ())
    functions = "".join(f"local function {p}(KEYS, ARGV)\n{_read(p)}\nend\n" for p in parts)
    return functions + _read(name)


@functools.cache
def source(name: str) -> str:
    """The full text of script `name`: the shared prelude, then the script itself."""
    return _read("_prelude") + "\n" + _body(name)


@functools.cache
def batched_source(name: str) -> str:
    """Script `name` as `one(KEYS, ARGV)`, run once per call of a batch (see `_batch.lua`)."""
    body = _body(name)
    return f"{_read('_prelude')}\nlocal function one(KEYS, ARGV)\n{body}\nend\n{_read('_batch')}"


class Scripts(NamedTuple):
    """One registered script per Lua file (`lua/<field>.lua`), for one client."""

    admit: Script
    record: Script
    pause: Script
    renew_probe: Script
    idem_claim: Script
    idem_claim_admit: Script
    idem_complete: Script
    idem_release: Script
    idem_extend: Script
    idem_mark_unknown: Script
    idem_forget: Script
    kv_get: Script
    kv_set: Script
    kv_add: Script
    kv_cas: Script
    lock_acquire: Script
    lock_release: Script
    lock_extend: Script
    slots: Script


SCRIPT_NAMES: tuple[str, ...] = Scripts._fields
#: The scripts whose concurrent calls are batched: each call of the hot path.
BATCHED: tuple[str, ...] = ("admit", "record", "idem_claim", "idem_claim_admit", "idem_complete")


def register(client: Any) -> tuple[Scripts, dict[int, Script]]:
    """`register_script` every script on `client` (computes SHAs; loads lazily on NOSCRIPT),
    and the batched form of each `BATCHED` one, by the `id` of its plain form."""
    scripts = Scripts(*(client.register_script(source(name)) for name in SCRIPT_NAMES))
    batched = {
        id(getattr(scripts, name)): client.register_script(batched_source(name)) for name in BATCHED
    }
    return scripts, batched
