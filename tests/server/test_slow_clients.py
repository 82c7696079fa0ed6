"""A device that stops reading is dropped, not buffered without bound."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from syncserver import serve
from syncserver.backends import Write
from syncserver.backends.sqlite import SQLiteBackend
from tests.timeouts import TIMEOUT

from .conftest import Clients

LIMIT = 256 * 1024
BIG = "x" * 60_000


async def test_a_connection_that_stops_reading_is_dropped_and_others_keep_going(
    db_path: Path, clients: Clients
) -> None:
    """Past max_send_buffer unread bytes the stalled connection is dropped; writers go on."""
    async with serve(db_path=db_path, max_send_buffer=LIMIT) as server:
        stalled = await clients(server.url)
        await stalled.hello(device_id=7)
        stalled.ws.transport.pause_reading()  # the device froze: nothing is read any more
        writer = await clients(server.url)
        await writer.hello(device_id=8)

        async def write_until_dropped() -> int:
            writes = 0
            while server.slow_connections_dropped == 0:
                writes += 1
                await writer.set(f"k{writes % 5}", BIG, request_id=writes)
                writer.skipped.clear()  # our own pushes: not what this test reads
            return writes

        writes = await asyncio.wait_for(write_until_dropped(), TIMEOUT)
        assert server.slow_connections_dropped == 1
        assert (await writer.set("after", 1, request_id="after"))["server_revision"] == writes + 1
        stalled.ws.transport.resume_reading()

        async def read_to_the_end() -> None:
            while True:
                await stalled.ws.recv()

        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(read_to_the_end(), TIMEOUT)


async def test_a_big_snapshot_does_not_count_as_a_stalled_reader(
    db_path: Path, clients: Clients
) -> None:
    """A device catching up on a snapshot bigger than max_send_buffer is not dropped."""
    await fill_big(db_path, 130)  # about 8 MiB of registers
    async with serve(db_path=db_path, max_send_buffer=LIMIT) as server:
        device = await clients(server.url)
        device.ws.transport.pause_reading()  # busy: it reads the snapshot a bit later
        await device.send({"type": "hello", "device_id": 7})
        writer = await clients(server.url)
        await writer.set("after", 1, device_id=8)
        device.ws.transport.resume_reading()
        snapshot = await device.read_snapshot()
        assert len(snapshot["values"]) == 130
        assert (await device.recv_type("push"))["key"] == "after"
        assert server.slow_connections_dropped == 0


async def fill_big(db_path: Path, count: int) -> None:
    """``count`` registers of 64 KiB each, written with the real backend."""
    done = asyncio.Event()
    value = json.dumps("x" * (64 * 1024 - 2)).encode()

    def on_commit(writes: Any) -> None:
        if writes[-1].revision == count:
            done.set()

    backend = SQLiteBackend(db_path, on_commit, lambda writes, exc: None, synchronous="NORMAL")
    await backend.open()
    for index in range(count):
        backend.submit(Write(f"big/{index}", value, 0, 1, 1))
    await asyncio.wait_for(done.wait(), TIMEOUT)
    await backend.close()
