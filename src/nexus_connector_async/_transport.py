"""The HTTP seam: a `Transport` protocol and its aiohttp implementation.

Tests and users can pass any object with `send()`/`aclose()`; the default owns one aiohttp
`ClientSession` per connector, so connections are pooled across all tasks of a process.
"""

from __future__ import annotations

import asyncio
import ssl as _ssl
import warnings
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import aiohttp

from ._config import Timeouts
from ._errors import (
    ConnectionFailed,
    ConnectorError,
    InvalidRequest,
    RequestTimeout,
    ResponseTooLarge,
)
from ._models import Response

__all__ = ["AiohttpTransport", "Transport"]

DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024


@runtime_checkable
class Transport(Protocol):
    """Sends one HTTP request and returns the whole response, mapping failures to our errors.

    Implementations raise `RequestTimeout`, `ConnectionFailed` (with `sent=False` only when no
    byte reached the vendor) or `ResponseTooLarge`; never a library-specific exception.
    """

    async def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: Timeouts,
    ) -> Response:
        """Send one request and return the whole response (status, headers, body)."""
        ...

    async def aclose(self) -> None:
        """Release pooled connections; the transport is unusable afterwards."""
        ...


_TIMEOUT_CACHE = 256


class AiohttpTransport:
    """The default transport: one pooled aiohttp session, created on first use.

    The session it creates keeps no cookies (every tenant shares it); a `session` passed in is
    used as it is. `verify_ssl=False` is for local test servers only and warns loudly.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession | None = None,
        *,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        limit: int = 100,
        limit_per_host: int = 0,
        verify_ssl: bool = True,
    ) -> None:
        if (
            isinstance(max_response_bytes, bool)
            or not isinstance(max_response_bytes, int)
            or max_response_bytes < 1
        ):
            raise InvalidRequest("max_response_bytes must be an integer >= 1")
        # A session passed in may carry its own `ssl=False`: that must not go unnoticed either.
        given_ssl = getattr(session.connector, "_ssl", True) if session is not None else True
        if not verify_ssl or given_ssl is False:
            warnings.warn(
                "TLS certificate verification is DISABLED for this connector; "
                "use this only against local test servers",
                RuntimeWarning,
                stacklevel=2,
            )
        self._session = session
        self._owns_session = session is None
        self._max = max_response_bytes
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._ssl: bool | _ssl.SSLContext = verify_ssl
        self._timeouts: dict[Timeouts, aiohttp.ClientTimeout] = {}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._limit, limit_per_host=self._limit_per_host, ssl=self._ssl
            )
            # No cookie jar: one session serves every tenant and account, and a cookie one
            # vendor answer set must not ride along on another tenant's request.
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=True, cookie_jar=aiohttp.DummyCookieJar()
            )
            self._owns_session = True
        return self._session

    def _timeout(self, t: Timeouts) -> aiohttp.ClientTimeout:
        ct = self._timeouts.get(t)
        if ct is None:
            ct = aiohttp.ClientTimeout(total=t.total, sock_connect=t.connect, sock_read=t.read)
            if len(self._timeouts) < _TIMEOUT_CACHE:  # endpoints' own; not every cut to a deadline
                self._timeouts[t] = ct
        return ct

    async def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: Timeouts,
    ) -> Response:
        """One exchange on the pooled session; aiohttp failures become our typed errors.

        The typed error is raised after the `except` block, not inside it: aiohttp's exception
        (whose `request_info` holds the request headers, Authorization included) must not ride
        along as `__context__`.
        """
        session = self._client()
        error: ConnectorError
        try:
            # Awaited, not `async with`: its two context managers are five coroutines per call
            # (measured: 13,000 instructions). `release()` in `finally` does what their exit
            # does: the connection goes back to the pool, or is closed if unread.
            resp = await session.request(
                method,
                url,
                headers=headers,
                data=body,
                timeout=self._timeout(timeout),
                allow_redirects=False,
            )
            try:
                length = resp.content_length
                if length is not None and length > self._max:
                    raise ResponseTooLarge(
                        f"response of {length} bytes exceeds max_response_bytes={self._max}"
                    )
                if length is not None and "Content-Encoding" not in resp.headers:
                    data = await resp.read()
                else:
                    # Chunked, or compressed: Content-Length counts the compressed bytes, so a
                    # small gzip body can inflate far past the cap. Count what we decode.
                    data = await self._read_capped(resp)
                return Response(resp.status, resp.headers, data)
            finally:
                resp.release()
        except aiohttp.ConnectionTimeoutError:
            error = RequestTimeout("timed out connecting", sent=False)
        except (TimeoutError, aiohttp.ServerTimeoutError):
            error = RequestTimeout(f"no complete response within {timeout.total:g}s")
        except aiohttp.ClientConnectorCertificateError:
            # Its own branch: aiohttp 3.10.0's certificate error has no `os_error`.
            error = ConnectionFailed(
                "could not connect: certificate verification failed", sent=False
            )
        except aiohttp.ClientConnectorError as exc:
            error = ConnectionFailed(f"could not connect: {exc.os_error}", sent=False)
        except aiohttp.InvalidURL:
            error = InvalidRequest("invalid URL")
        except (aiohttp.ClientError, OSError) as exc:
            error = ConnectionFailed(f"connection failed: {type(exc).__name__}")
        except ConnectorError:
            raise  # ours (ResponseTooLarge): no foreign context to drop
        except ValueError:
            # aiohttp refusing a header or URL before sending. The connector checks both first,
            # so only a direct caller of the transport gets here; never the raw ValueError.
            error = InvalidRequest("the HTTP client refused the request's headers or URL")
        raise error

    async def _read_capped(self, resp: aiohttp.ClientResponse) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_any():
            size += len(chunk)
            if size > self._max:
                resp.close()
                raise ResponseTooLarge(f"response exceeds max_response_bytes={self._max}")
            chunks.append(chunk)
        return b"".join(chunks)

    async def aclose(self) -> None:
        """Close the session if we created it (a session passed in stays the caller's)."""
        if self._session is not None and self._owns_session and not self._session.closed:
            await self._session.close()
            # Let aiohttp close its transports before the loop goes away.
            await asyncio.sleep(0)
