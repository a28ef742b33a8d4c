"""A loopback TCP relay whose connections a test can cut, as a flaky network would.

Between a client and the app it forwards bytes both ways; ``cut()`` aborts every
connection open through it at once (a reset, no orderly close), while new ones still get
through: what a dropped Wi-Fi or a proxy restart looks like to both ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Relay:
    def __init__(self, port: int) -> None:
        self.port = port
        self.cuts = 0
        self._open: set[asyncio.StreamWriter] = set()

    def cut(self) -> int:
        """Abort every open connection; returns how many there were."""
        writers = list(self._open)
        for writer in writers:
            writer.transport.abort()
        self._open.clear()
        self.cuts += 1
        return len(writers) // 2


@asynccontextmanager
async def tcp_relay(target: str) -> AsyncIterator[Relay]:
    """A relay to ``target`` (host:port) on a free loopback port, for the block."""
    host, port = target.rsplit(":", 1)

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            writer.close()

    async def accept(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(host, int(port))
        relay._open.update((client_w, server_w))
        try:
            await asyncio.gather(pump(client_r, server_w), pump(server_r, client_w))
        finally:
            relay._open.discard(client_w)
            relay._open.discard(server_w)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    relay = Relay(server.sockets[0].getsockname()[1])
    try:
        yield relay
    finally:
        relay.cut()
        server.close()
        await server.wait_closed()
