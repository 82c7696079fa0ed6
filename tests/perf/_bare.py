"""Ceilings and load for the server benchmark.

``python -m tests.perf._bare echo|broadcast`` runs a bare websockets server
(compression off, like the sync server) that echoes each message to its
sender, or broadcasts it to every connection with ``broadcast()``. It prints
its ``ws://`` URL like ``python -m syncserver`` does. Nothing else happens in
it, so it is what this machine and this stack can do at best.

:class:`RawClient` is a minimal websocket client on a bare asyncio protocol:
it only splits frames and counts, so in the benchmark the load generator
spends as little CPU as possible and the server is what gets measured.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

__all__ = ["RawClient", "connect_raw", "main"]


class RawClient(asyncio.Protocol):
    """Handshake, then hand every text/binary payload to ``on_payload``."""

    def __init__(self, host: str, on_payload: Callable[[bytes], None]) -> None:
        self._host = host
        self._on_payload = on_payload
        self._buffer = bytearray()
        self._handshaken = False
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                f"GET / HTTP/1.1\r\nHost: {self._host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("connection lost during handshake"))

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        if not self._handshaken:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                self.opened.set_exception(ConnectionError(bytes(buffer[:end]).decode()))
                return
            del buffer[: end + 4]
            self._handshaken = True
            self.opened.set_result(None)
        position, size = 0, len(buffer)
        on_payload = self._on_payload
        while size - position >= 2:
            first, length = buffer[position], buffer[position + 1] & 0x7F
            header = 2
            if length == 126:
                if size - position < 4:
                    break
                length = int.from_bytes(buffer[position + 2 : position + 4], "big")
                header = 4
            elif length == 127:
                if size - position < 10:
                    break
                length = int.from_bytes(buffer[position + 2 : position + 10], "big")
                header = 10
            end = position + header + length
            if end > size:
                break
            payload = bytes(buffer[position + header : end])
            position = end
            opcode = first & 0x0F
            if opcode in (1, 2):
                on_payload(payload)
            elif opcode == 9:
                self._send(0xA, payload)
        del buffer[:position]

    def send_text(self, data: bytes) -> None:
        """Send one text frame (masked with a zero key: the bytes go out unchanged)."""
        self._send(0x1, data)

    def _send(self, opcode: int, data: bytes) -> None:
        length = len(data)
        if length < 126:
            header = bytes((0x80 | opcode, 0x80 | length))
        elif length < 65536:
            header = bytes((0x80 | opcode, 0xFE)) + length.to_bytes(2, "big")
        else:
            header = bytes((0x80 | opcode, 0xFF)) + length.to_bytes(8, "big")
        assert self.transport is not None
        self.transport.write(header + b"\0\0\0\0" + data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def connect_raw(url: str, on_payload: Callable[[bytes], None]) -> RawClient:
    """Open a :class:`RawClient` to ``ws://host:port``."""
    host, port = url.removeprefix("ws://").rsplit(":", 1)
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(
        lambda: RawClient(f"{host}:{port}", on_payload), host, int(port)
    )
    await client.opened
    return client


async def _echo(ws: ServerConnection) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for message in ws:
            await ws.send(message)


def _relay_to_all() -> Callable[[ServerConnection], Awaitable[None]]:
    """A handler that sends every frame it receives to every connection."""
    connections: set[ServerConnection] = set()

    async def relay(ws: ServerConnection) -> None:
        connections.add(ws)
        try:
            async for message in ws:
                broadcast(connections, message)
        except ConnectionClosed:
            pass
        finally:
            connections.discard(ws)

    return relay


@contextlib.asynccontextmanager
async def bare_running(kind: str, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """A bare ``echo`` or ``broadcast`` server on this loop; yields its ``ws://`` URL."""
    handler = _echo if kind == "echo" else _relay_to_all()
    async with serve(handler, host, port, compression=None) as server:
        yield f"ws://{host}:{server.sockets[0].getsockname()[1]}"


async def _serve(kind: str, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    async with bare_running(kind, host, port) as url:
        print(f"bare {kind} server listening on {url}", flush=True)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["echo", "broadcast"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(_serve(args.kind, args.host, args.port))


if __name__ == "__main__":
    main()
