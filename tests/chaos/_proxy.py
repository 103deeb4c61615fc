"""A TCP proxy between the library and Redis that can cut or stall every connection at will."""

from __future__ import annotations

import asyncio
import contextlib


class FaultProxy:
    """Forwards 127.0.0.1:`port` to Redis; `cut()` drops every connection, `stall()` freezes them.

    A stall keeps the sockets open but forwards nothing in either direction, as a hung server or
    a congested network would; a cut closes both ends, as a proxy or an idle timeout would.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        try:
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while data := await reader.read(65536):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        writer.close()

    def cut(self) -> int:
        """Close every connection now; returns how many were open."""
        writers, self._writers = list(self._writers), set()
        for w in writers:
            w.transport.abort()
        return len(writers) // 2

    async def stall(self, seconds: float) -> None:
        """Forward nothing for `seconds`, then flow again."""
        self._flowing.clear()
        try:
            await asyncio.sleep(seconds)  # the fault's duration, not a race fix
        finally:
            self._flowing.set()

    async def aclose(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
