"""Wire helpers shared by the simulators: JSON answers, vendor-looking ids, bracket forms, and
the reason a refusal gives (for the log line that says why)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from aiohttp import web

from .._logging import redact_text

__all__ = ["json_response", "new_id", "parse_brackets", "rejection_reason"]

_XML_MESSAGE = re.compile(rb"<Message>([^<]*)</Message>")
_XML_CODE = re.compile(rb"<Code>([^<]*)</Code>")


def rejection_reason(body: bytes) -> str | None:
    """The vendor-style reason in an error body (Stripe, PayPal, Twilio, AWS shapes), shortened."""
    if body.lstrip().startswith(b"<"):  # AWS Query protocol: <Error><Code>..<Message>..
        xml = _XML_MESSAGE.search(body) or _XML_CODE.search(body)
        return _shorten(xml.group(1).decode("utf-8", "replace")) if xml else None
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    found: Any = None
    if isinstance(error, dict):  # Stripe: {"error": {"message": ..., "code": ...}}
        found = error.get("message") or error.get("code")
    if not found:  # PayPal and Twilio: a top-level message; OAuth: error_description
        details = data.get("details")
        issue = details[0].get("issue") if isinstance(details, list) and details else None
        found = data.get("message") or data.get("error_description") or issue or error
    if not isinstance(found, str | int) or isinstance(found, bool):
        return None
    return _shorten(str(found))


def _shorten(found: str) -> str:
    text = redact_text(found)
    return text if len(text) <= 200 else text[:197] + "..."


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    """A JSON response (msgspec-encoded)."""
    return web.Response(
        status=status,
        body=msgspec.json.encode(body),
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def new_id(prefix: str, size: int = 12) -> str:
    """A random vendor-looking id: `prefix` + hex."""
    return prefix + secrets.token_hex(size)


_KEY = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")


def parse_brackets(body: str) -> dict[str, Any]:
    """Decode a bracket-notation form (`a[b][0]=x`) into nested dicts and lists.

    Raises `ValueError` for keys that are not well-formed bracket notation.
    """
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True, strict_parsing=bool(body)):
        match = _KEY.fullmatch(key)
        if match is None:
            raise ValueError(f"malformed parameter name {key!r}")
        parts = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        node = root
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"parameter {key!r} mixes a value and a hash")
            node = child
        if parts[-1] in node:
            raise ValueError(f"parameter {key!r} given twice")
        node[parts[-1]] = value
    parsed: dict[str, Any] = _listify(root)
    return parsed


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    items = {k: _listify(v) for k, v in node.items()}
    if items and all(k.isdigit() for k in items):
        indexes = sorted(int(k) for k in items)
        if indexes == list(range(len(items))):
            return [items[str(i)] for i in indexes]
    return items
