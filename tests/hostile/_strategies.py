"""Hypothesis strategies for hostile input, and the check every refusal must pass."""

from __future__ import annotations

import decimal
import re
from typing import Any

from hypothesis import strategies as st

from nexus_connector_async import ConnectorError

# Anything a caller might pass where a number, string or mapping is expected.
anything: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.binary(max_size=10),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)

# Text with the characters that break things: controls, CR/LF, NUL, non-ASCII, surrogates.
hostile_text = st.text(
    alphabet=st.one_of(
        st.characters(codec=None),
        st.sampled_from(["\r", "\n", "\x00", " ", "[", "]", "{", "}", "%", "&", "="]),
    ),
    max_size=40,
)


def check_refusal(exc: BaseException, *words: str) -> None:
    """A refusal is a typed `ConnectorError` whose message names the problem."""
    assert isinstance(exc, ConnectorError), f"bare {type(exc).__name__}: {exc}"
    message = str(exc)
    assert message, "an error without a message"
    assert any(re.search(w, message, re.IGNORECASE) for w in words), (
        f"{message!r} names none of {words}"
    )


def is_number(value: object) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and not isinstance(value, decimal.Decimal)
    )
