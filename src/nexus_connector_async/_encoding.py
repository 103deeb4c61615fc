"""Request bodies: JSON, bracket-notation forms (Stripe/Twilio style) and request fingerprints."""

from __future__ import annotations

import datetime
import decimal
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import msgspec

from ._errors import InvalidRequest

__all__ = ["encode_form", "fingerprint", "form_pairs"]

_json_encode = msgspec.json.Encoder(order="sorted").encode
_SAFE = "[]"


def _shorten(text: str, limit: int = 40) -> str:
    """`repr` of a key path, cut so an error message never carries a huge payload."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _scalar(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | decimal.Decimal):
        return str(value)
    if isinstance(value, float):
        # Floats in a payment payload are a bug waiting to round; refuse them loudly.
        raise InvalidRequest("form values must not be floats (use int, Decimal or str)")
    if isinstance(value, datetime.datetime):
        return str(int(value.timestamp()))
    raise InvalidRequest(f"cannot form-encode a value of type {type(value).__name__}")


def form_pairs(payload: Mapping[str, Any] | Sequence[tuple[str, Any]]) -> list[tuple[str, str]]:
    """Flatten a payload into `(key, value)` pairs in bracket notation.

    Dicts become `a[b]=...`, lists `a[0]=...`, booleans `true`/`false`, `None` is omitted. A
    sequence of pairs is taken as already flat (Twilio's repeated `MediaUrl` keys).
    """
    out: list[tuple[str, str]] = []
    if isinstance(payload, Mapping):
        for key, value in payload.items():
            _flatten(str(key), value, out)
    else:
        for key, value in payload:
            if value is not None:
                out.append((key, _scalar(value)))
    return out


def _flatten(prefix: str, value: Any, out: list[tuple[str, str]]) -> None:
    if value is None:
        return
    if isinstance(value, Mapping):
        for key, sub in value.items():
            name = str(key)
            if not name or "[" in name or "]" in name:
                # `a[]` and `a[x][y]` mean something else in the notation: refuse, never garble.
                raise InvalidRequest(
                    f"form keys inside {_shorten(prefix)} must be non-empty, without '[' or ']'"
                )
            _flatten(f"{prefix}[{name}]", sub, out)
    elif isinstance(value, list | tuple):
        for i, sub in enumerate(value):
            _flatten(f"{prefix}[{i}]", sub, out)
    else:
        out.append((prefix, _scalar(value)))


def _plain(text: str) -> bool:
    """ASCII letters and digits only: nothing to percent-encode (most keys and values)."""
    return text.isascii() and text.isalnum()


def urlencode_pairs(pairs: Sequence[tuple[str, str]]) -> str:
    """Percent-encode pairs, keeping literal brackets in keys as Stripe's SDK does."""
    try:
        return "&".join(
            f"{k if _plain(k) else quote(k, safe=_SAFE)}={v if _plain(v) else quote(v, safe='')}"
            for k, v in pairs
        )
    except UnicodeEncodeError:
        raise InvalidRequest(
            "form keys and values must be valid Unicode text (a lone surrogate cannot be encoded)"
        ) from None


def encode_form(payload: Mapping[str, Any] | Sequence[tuple[str, Any]]) -> bytes:
    """`application/x-www-form-urlencoded` body for `payload`."""
    return urlencode_pairs(form_pairs(payload)).encode("ascii")


def encode_json(payload: Any) -> bytes:
    """JSON body for `payload` (msgspec; Decimal as a string, never a float)."""
    try:
        return msgspec.json.encode(payload)
    except (TypeError, msgspec.EncodeError) as exc:
        raise InvalidRequest(f"payload is not JSON-serialisable: {exc}") from None
    except UnicodeEncodeError:
        raise InvalidRequest(
            "JSON payload must be valid Unicode text (a lone surrogate cannot be encoded)"
        ) from None


def fingerprint(method: str, url: str, payload: Any) -> str:
    """A stable hash of (method, URL, payload) to detect a key reused for another request."""
    try:
        body = _json_encode(payload)
    except (TypeError, msgspec.EncodeError, UnicodeEncodeError):
        body = repr(payload).encode("utf-8", "backslashreplace")
    h = hashlib.blake2b(digest_size=16)
    h.update(method.encode("utf-8", "backslashreplace"))
    h.update(b"\0")
    h.update(url.encode("utf-8", "backslashreplace"))
    h.update(b"\0")
    h.update(body)
    return h.hexdigest()
