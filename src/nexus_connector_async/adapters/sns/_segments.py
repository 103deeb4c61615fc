"""How many parts SNS bills for a message: it splits long messages between words."""

from __future__ import annotations

import re

from .._phone import count_segments

__all__ = ["sns_segments"]

_WORD = re.compile(r"\S*\s*")


def sns_segments(body: str) -> int:
    """The parts SNS bills for `body`: it splits long messages at word boundaries.

    One SMS holds 160 GSM-7 septets or 70 UCS-2 units (vendor-facts 4.7); a longer message is
    cut into parts of 153 / 67 between words, a word longer than a part being cut inside. That
    can take more parts than packing every part full (`count_segments`), so the spend estimate
    uses this count.
    """
    counted = count_segments(body)
    if counted.segments <= 1:
        return counted.segments
    per_part = 153 if counted.encoding == "GSM-7" else 67
    parts, room = 1, per_part
    for match in _WORD.finditer(body):
        word = match.group()
        if not word:
            continue
        width = count_segments(word).units if counted.encoding == "GSM-7" else _utf16(word)
        if width > room and room < per_part:
            parts, room = parts + 1, per_part  # the word moves whole to a new part
        while width > room:  # longer than a part: cut inside it
            width -= room
            parts, room = parts + 1, per_part
        room -= width
    return parts


def _utf16(text: str) -> int:
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)
