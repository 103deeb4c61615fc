"""The scripts' replies, decoded once each into named fields (the order is each script's header).

Lua returns flat arrays; these functions are the only code that reads them by position, so the
backend's logic reads `reply.lease_left`, never `r[3]`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .._base import Admission, AdmissionReason, ClaimState, RedisPermit

__all__ = [
    "ClaimReply",
    "ReleaseReply",
    "SlotReply",
    "admission",
    "claim_reply",
    "counter_reply",
    "record_reply",
    "release_reply",
    "slot_reply",
    "usage_reply",
]

# Every field given: built without NamedTuple's generated `__new__` (a Python frame per call).
_new = tuple.__new__
_REASONS = tuple(AdmissionReason)  # by value: a tuple index, cheaper than the enum's call
_CLAIM_STATES: tuple[ClaimState, ...] = (
    "acquired",
    "completed",
    "in_progress",
    "conflict",
    "unknown",
)


def admission(r: Any) -> Admission:
    """admit.lua: {reason, wait, probe, clean, would_block, half_opened, slot, generation}."""
    return _new(
        Admission,
        (
            _REASONS[r[0]],
            float(r[1]),
            RedisPermit(r[2], "ascii") if r[2] else "",
            r[3] == 1,
            _REASONS[r[4]],
            r[5] == 1,
            r[6].decode() if r[6] else "",
            r[7],
        ),
    )


class ClaimReply(NamedTuple):
    """idem_claim.lua: the key's state, our token (acquired), the stored result (completed),
    and the holder's lease left in seconds (in progress)."""

    state: ClaimState
    token: str = ""
    result: bytes | None = None
    lease_left: float = 0.0


def claim_reply(r: Any) -> ClaimReply:
    state = _CLAIM_STATES[r[0]]
    if state == "acquired":
        return ClaimReply(state, r[1].decode())
    if state == "completed":
        return ClaimReply(state, result=bytes(r[2]))
    if state == "in_progress":
        return ClaimReply(state, lease_left=float(r[3]))
    return ClaimReply(state)


class SlotReply(NamedTuple):
    """slots.lua acquire: granted (with the limit's generation), refused, or queued; the
    seconds until the earliest lease ends (refused, queued)."""

    granted: bool
    queued: bool
    retry_after: float
    generation: int


def slot_reply(r: Any) -> SlotReply:
    granted = r[0] == 1
    return SlotReply(
        granted, r[0] == 2, 0.0 if granted else float(r[1]), int(r[2]) if granted else 0
    )


def granted(r: Any) -> bool:
    """slots.lua acquire (for an orphaned reply): whether a slot or a queue place was taken."""
    return bool(r[0] != 0)


class ReleaseReply(NamedTuple):
    """slots.lua release (and record.lua with a slot): whether the token held a slot or a queue
    place, and the adaptive limit's new value (None: unchanged)."""

    removed: bool
    new_limit: int | None


def release_reply(r: Any) -> ReleaseReply:
    return ReleaseReply(r[0] == 1, None if r[1] == -1 else int(r[1]))


def record_reply(r: Any) -> str | None:
    """record.lua: the breaker's new state, if it changed (nil, or '' when a slot rode along)."""
    if isinstance(r, list):
        r = r[2]
    return str(r.decode()) if r else None


def counter_reply(r: Any) -> tuple[bool, int]:
    """kv_add.lua: {applied 1/0, total}."""
    return bool(int(r[0])), int(r[1])


def usage_reply(r: Any) -> tuple[int, int]:
    """slots.lua usage: {in use, limit}."""
    return int(r[0]), int(r[1])
