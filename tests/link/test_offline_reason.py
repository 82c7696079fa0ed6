"""An unreachable server: the link's status and log say why (refused, timed out, TLS, 1008)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.link import ConnectionStatus, DeviceSession, SyncClient
from syncserver import serve
from tests.timeouts import TIMEOUT

from .helpers import FAST


async def _first_offline_reason(url: str, request_timeout: float = TIMEOUT) -> str:
    """Start a client on ``url`` and return the reason of its first offline status."""
    client = SyncClient([url], 7, request_timeout=request_timeout, backoff=FAST)
    reasons: asyncio.Queue[str] = asyncio.Queue()

    def keep(status: ConnectionStatus) -> None:
        if status.state == "offline" and status.reason is not None:
            reasons.put_nowait(status.reason)

    client.subscribe_status(keep)
    client.start()
    try:
        return await asyncio.wait_for(reasons.get(), TIMEOUT)
    finally:
        await client.close()


async def _silent_server(reply: bytes = b"") -> AsyncIterator[str]:
    """A TCP server that answers whatever it reads with ``reply`` (or nothing)."""
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.read(1024)
        if reply:
            writer.write(reply)
            writer.close()
            return
        await reader.read()  # hold the connection open, silent

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        for writer in writers:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        await server.wait_closed()


@pytest.fixture
async def silent() -> AsyncIterator[str]:
    async for address in _silent_server():
        yield address


@pytest.fixture
async def not_tls() -> AsyncIterator[str]:
    async for address in _silent_server(b"HTTP/1.1 400 Bad Request\r\n\r\n"):
        yield address


async def test_a_refused_connection_says_refused(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing listening: the status reason and the log both say the connection was refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"ws://127.0.0.1:{probe.getsockname()[1]}"
    with caplog.at_level(logging.INFO, logger="app.link"):
        reason = await _first_offline_reason(url)
    assert reason == "refused"
    assert any(url in r.getMessage() and "refused" in r.getMessage() for r in caplog.records)


async def test_a_silent_server_says_timed_out(silent: str) -> None:
    """A server that never answers the handshake: the reason is a timeout."""
    assert await _first_offline_reason(f"ws://{silent}", request_timeout=0.2) == "timed out"


async def test_a_server_without_tls_says_tls(not_tls: str) -> None:
    """wss:// to a server that does not speak TLS: the reason names TLS."""
    reason = await _first_offline_reason(f"wss://{not_tls}")
    assert reason.startswith("TLS: "), reason


async def test_a_rejected_token_says_1008(tmp_path: Path) -> None:
    """A server that wants a token the device lacks closes with 1008: the reason says so."""
    async with serve(port=0, db_path=tmp_path / "db.sqlite3", token="s3cret") as server:
        reason = await _first_offline_reason(server.url)
    assert reason.startswith("rejected: ")
    assert reason.endswith("(1008)")


def _empty(folder: Path) -> bool:
    return not any(folder.iterdir())


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("localhost:8765", "write it as ws://HOST:PORT"),
        ("http://127.0.0.1:8765", "is HTTP; a sync server speaks ws://127.0.0.1:8765"),
        ("ws://[bad", "is not a URL"),
        ("ws://:8765", "names no host"),
    ],
)
async def test_a_url_websockets_cannot_dial_is_refused_before_anything_opens(
    tmp_path: Path, url: str, words: str
) -> None:
    """DeviceSession.open and SyncClient refuse a non-ws URL at once, touching no state file."""
    with pytest.raises(ValueError, match=re.escape(words)):
        await DeviceSession.open("Typo", [url], data_dir=tmp_path)
    with pytest.raises(ValueError, match=re.escape(words)):
        SyncClient([url], 7)
    assert _empty(tmp_path)
