"""What may leave the library: checks and masks shared by the pipeline, transports and adapters.

Kept free of other library imports, so models, config, transports and adapters can all use it.
"""

from __future__ import annotations

import re

__all__ = ["has_control"]

# C0 controls (including TAB), DEL and C1 controls: none belongs in a header value or a token.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def has_control(text: str) -> bool:
    """True if `text` holds any control character (C0, DEL or C1)."""
    return _CONTROL.search(text) is not None
