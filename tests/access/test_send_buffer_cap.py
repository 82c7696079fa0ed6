"""The cap on bytes queued for all connections, measured on a real server process."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import urllib.parse
from contextlib import ExitStack

from websockets.asyncio.client import connect
from websockets.frames import Frame, Opcode

from tests.timeouts import TIMEOUT

from .conftest import Servers, rss_bytes

STALLED = 200
CAP = 32 * 2**20
MARGIN = 64 * 2**20
"""What the server may hold beyond the cap: frames being encoded, the
connections' own state, the allocator's slack."""


def _stalled_connection(url: str, device_id: int) -> socket.socket:
    """A client that says hello and then never reads (a tiny receive buffer, so
    the server's queue for it grows instead of the kernel's)."""
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(TIMEOUT)
    sock.connect((parts.hostname, parts.port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET / HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(4096)
        assert chunk, "the server closed the handshake"
        response += chunk
    assert response.startswith(b"HTTP/1.1 101"), response[:80]
    hello = json.dumps({"type": "hello", "device_id": device_id}).encode()
    sock.sendall(Frame(Opcode.TEXT, hello).serialize(mask=True, extensions=[]))
    return sock


async def test_200_non_reading_connections_stay_under_the_total_send_buffer_cap(
    servers: Servers,
) -> None:
    """200 stalled readers and a writer of 60 kB values: the server's peak RSS stays
    under its idle RSS + the cap + a margin, and the reading writer is never dropped."""
    server = await servers.start("--max-total-send-buffer", str(CAP))
    idle = rss_bytes(server.pid)
    value = "x" * 60_000
    # 7.2 MB of pushes per connection: the kernel takes up to ~4 MB of it, the
    # server would hold the rest (~600 MB in all) without the cap.
    writes = 120
    with ExitStack() as stack:
        for n in range(STALLED):
            stack.callback(_stalled_connection(server.url, 1000 + n).close)
        async with connect(server.url, max_size=2**21) as writer:
            await writer.send(json.dumps({"type": "hello", "device_id": 1}))
            for n in range(writes):
                await writer.send(
                    json.dumps(
                        {"type": "set", "request_id": n, "key": f"k{n % 4}", "value": value,
                         "local_revision": n + 1}
                    )
                )  # fmt: skip
                while json.loads(await asyncio.wait_for(writer.recv(), TIMEOUT))["type"] != "ack":
                    pass
        peak = rss_bytes(server.pid, "VmHWM")
    print(
        f"\nserver RSS: idle {idle / 2**20:.0f} MiB, peak {peak / 2**20:.0f} MiB with "
        f"{STALLED} stalled readers (cap {CAP / 2**20:.0f} MiB, bound "
        f"{(idle + CAP + MARGIN) / 2**20:.0f} MiB; {writes} writes of 60 kB)"
    )
    assert peak < idle + CAP + MARGIN
