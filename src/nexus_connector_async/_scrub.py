"""What may leave the library: checks and masks shared by the pipeline, transports and adapters.

- `has_control`: header values and tokens are refused whole (api.md 32).
- `url_label` / `url_masked`: logged URLs carry scheme, host and path only; reprs mask every
  query value (an allowlist, not a denylist of parameter names).
- `MaskedHeaders`: request headers as the library holds them, so a traceback rendered with
  locals (stdlib or rich) shows `Authorization: '***'`, never the token.
- `Scrubber`: one scrubber for vendor error text, masking an adapter's secrets also in the
  percent-, plus- and base64-encoded forms a vendor may echo.
- `check_vendor_url`: `http://` only for loopback hosts.

Imports nothing of the library but `_logging`'s field-name test, so models, config, transports
and adapters can all use it.
"""

from __future__ import annotations

import base64
import functools
import ipaddress
import re
from collections.abc import Iterable, Iterator
from urllib.parse import (
    SplitResult,
    parse_qsl,
    quote,
    quote_plus,
    urlencode,
    urlsplit,
    urlunsplit,
)

from ._logging import REDACTED, is_sensitive, redact_text

__all__ = [
    "REDACTED",
    "MaskedHeaders",
    "MaskedUrl",
    "Scrubber",
    "Secret",
    "SecretBytes",
    "check_vendor_url",
    "has_control",
    "mask_redis_url",
    "scrub_text",
    "url_label",
    "url_masked",
]

# C0 controls (including TAB), DEL and C1 controls: none belongs in a header value or a token.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def has_control(text: str) -> bool:
    """True if `text` holds any control character (C0, DEL or C1)."""
    return _CONTROL.search(text) is not None


def _netloc(url: str) -> tuple[SplitResult, str]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts, f"{host}:{port}" if port else host


@functools.lru_cache(maxsize=1024)
def url_label(url: str) -> str:
    """`scheme://host[:port]/path`: what logs, events and errors may show of a URL.

    No user info, no query, no fragment: query values (`key=`, `sig=`, `code=`...) are secrets
    often enough that none is logged.
    """
    parts, netloc = _netloc(url)
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@functools.lru_cache(maxsize=1024)
def url_masked(url: str) -> str:
    """The URL without user info and with every query value masked (for reprs)."""
    parts, netloc = _netloc(url)
    query = parts.query
    if query:
        query = urlencode([(k, REDACTED) for k, _ in parse_qsl(query, True)], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def mask_redis_url(url: str) -> str:
    """A Redis URL with its password masked, in the user info and in `?password=`."""
    url = re.sub(r"//[^@/]*@", f"//{REDACTED}@", url)
    return re.sub(r"(?i)([?&]password=)[^&#]*", rf"\g<1>{REDACTED}", url)


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_vendor_url(url: str) -> bool:
    """True for `https://` URLs and for `http://` to a loopback host (local simulators).

    A live API key must not cross a network in clear text.
    """
    parts = urlsplit(url)
    if parts.scheme == "https":
        return bool(parts.hostname)
    return parts.scheme == "http" and _is_loopback(parts.hostname)


class MaskedHeaders(dict[str, str]):
    """Request headers whose `repr` (and rich repr) mask credentials.

    The pipeline carries headers in this type, so a traceback rendered with locals, or an
    exception logged with `log.exception()` and rich, shows `'Authorization': '***'`.
    """

    __slots__ = ()

    def shown(self) -> dict[str, str]:
        """A plain copy with credential headers masked and secret-like values redacted."""
        return {k: REDACTED if is_sensitive(k) else redact_text(v) for k, v in self.items()}

    def __repr__(self) -> str:
        return f"MaskedHeaders({self.shown()!r})"

    def __rich_repr__(self) -> Iterator[tuple[str, str]]:
        yield from self.shown().items()


class Secret(str):
    """A str whose `repr` is `'***'`: secrets held in local variables of library frames."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(REDACTED)


class SecretBytes(bytes):
    """Bytes whose `repr` gives only their length (a request body holding a secret)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<{len(self)} bytes>"


class MaskedBody(bytes):
    """A request body whose `repr` shows its size only: it may carry card data or secrets.

    So that traceback locals (stdlib `capture_locals`, rich `show_locals`) never print it.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<{len(self)} bytes>"


class MaskedUrl(str):
    """A URL whose `repr` masks its query values and user info (see `url_masked`)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(url_masked(self))


def _b64_pieces(secret: bytes) -> set[str]:
    """The base64 text that `secret` always produces, wherever it sits in an encoded value.

    Base64 works on 3-byte groups, so the secret is encoded at each of the three offsets and
    only the characters fully determined by its own bytes are kept.
    """
    pieces = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + secret).decode()
        start = -(-offset * 4 // 3)  # ceil(4 * offset / 3)
        end = (offset + len(secret)) * 4 // 3
        piece = encoded[start:end]
        pieces.add(piece)
        pieces.add(piece.replace("+", "-").replace("/", "_"))  # the URL-safe alphabet
    return pieces


_BEARER = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=%-]+", re.IGNORECASE)
_SECRETISH = re.compile(r"\b(sk|rk|pk)_(live|test)_[A-Za-z0-9]+")
_MIN_PIECE = 6  # shorter encoded fragments would mask ordinary words
# Long runs of token characters mixing letters and digits look like a credential (a bare
# access token the adapter does not know, e.g. one PayPal echoes back).
_TOKENISH = re.compile(r"[A-Za-z0-9._~+/=-]{24,}")
_LETTER = re.compile(r"[A-Za-z]")
_DIGIT = re.compile(r"[0-9]")


def _tokenish(match: re.Match[str]) -> str:
    text = match.group()
    return REDACTED if _LETTER.search(text) and _DIGIT.search(text) else text


class Scrubber:
    """Masks an adapter's secrets in vendor text, in the forms a vendor may echo them.

    Each secret is searched as given, percent-encoded (`quote`, `quote_plus`; once or twice,
    either case of hex digits), with JSON-escaped slashes, in base64 (also inside a longer
    base64 value such as a `Basic` header) and URL-safe base64; `Bearer` and
    `Basic` values, Stripe-style keys and control characters are masked too, and the text is
    shortened to `max_length`. With `tokenish=True` any long run of token characters mixing
    letters and digits is masked as well (a token we never knew). Every adapter and the OAuth
    client use one.
    """

    __slots__ = ("_max", "_pattern", "_tokenish")

    def __init__(
        self, secrets: Iterable[str | None], *, max_length: int = 500, tokenish: bool = False
    ) -> None:
        raw = {secret for secret in secrets if secret}
        encoded: set[str] = set()
        for secret in raw:
            once = {quote(secret, safe=""), quote(secret), quote_plus(secret)}
            encoded.update(once)
            encoded.update(quote(form, safe="") for form in once)  # encoded twice: %252F
            encoded.update(quote_plus(form) for form in once)
            encoded.add(secret.replace("/", "\\/"))  # JSON that escapes its slashes
            encoded.update(_b64_pieces(secret.encode()))
        forms = raw | {form for form in encoded if len(form) >= _MIN_PIECE}
        ordered = sorted(forms, key=len, reverse=True)  # longest first: no partial leftovers
        # Case-blind: percent escapes come with either case of hex digits (%2f, %2F); masking
        # a case variant of a secret too is the safe side.
        pattern = "|".join(map(re.escape, ordered))
        self._pattern = re.compile(pattern, re.IGNORECASE) if ordered else None
        self._max = max_length
        self._tokenish = tokenish

    def __repr__(self) -> str:
        return "Scrubber(<secrets>)"

    def __call__(self, text: str) -> str:
        """`text` with every form of the secrets masked, printable, at most `max_length`."""
        text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
        if self._pattern is not None:
            text = self._pattern.sub(REDACTED, text)
        text = _SECRETISH.sub(REDACTED, text)
        if self._tokenish:
            text = _TOKENISH.sub(_tokenish, text)
        text = "".join(c if c.isprintable() else " " for c in text)
        return text if len(text) <= self._max else text[: self._max - 3] + "..."


def scrub_text(text: str | None, secrets: Scrubber | Iterable[str | None] = ()) -> str | None:
    """`text` through `secrets` (a `Scrubber`, or the secrets to build one from); None stays."""
    if not text:
        return None
    scrubber = secrets if isinstance(secrets, Scrubber) else Scrubber(secrets)
    return scrubber(text)
