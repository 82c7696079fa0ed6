"""A loopback TCP proxy the fault tests control: it delays, cuts and retargets."""

from __future__ import annotations

import asyncio
import contextlib
import random

__all__ = ["ChaosProxy"]

MAX_PAIRS = 64
CHUNK = 65536


class ChaosProxy:
    """Forwards 127.0.0.1:port to the server's current port, with per-chunk delays.

    ``cut()`` drops every open connection; ``retarget(port)`` points new
    connections at a restarted server. At most ``MAX_PAIRS`` connections.
    """

    def __init__(self, target_port: int, rng: random.Random, max_delay: float = 0.02) -> None:
        self.target_port = target_port
        self.rng = rng
        self.max_delay = max_delay
        self.port = 0
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self._pairs: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        """Every stream end ever opened, so close() leaves no socket behind."""
        self._closing = False

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def retarget(self, port: int) -> None:
        self.target_port = port

    def cut(self) -> None:
        self.cuts += 1
        for pair in list(self._pairs):
            pair.cancel()

    async def close(self) -> None:
        self._closing = True
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.cut()
        await asyncio.gather(*self._pairs, return_exceptions=True)
        # Connections accepted while closing never became pairs: close them too.
        for writer in self._writers:
            writer.close()
        await asyncio.gather(*(w.wait_closed() for w in self._writers), return_exceptions=True)
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        if self._closing or len(self._pairs) >= MAX_PAIRS:
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._pairs.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            self._writers.add(up_writer)
        except OSError:
            self._pairs.discard(task)
            writer.close()
            return
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except (asyncio.CancelledError, OSError):
            pass
        finally:
            self._pairs.discard(task)
            for end in (writer, up_writer):
                end.close()
                with contextlib.suppress(Exception):
                    await end.wait_closed()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(CHUNK):
            if self.max_delay:
                await asyncio.sleep(self.rng.uniform(0, self.max_delay))  # network latency
            writer.write(data)
            await writer.drain()
        raise OSError("peer closed")
