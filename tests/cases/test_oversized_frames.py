"""Case 4: data whose snapshot or push batch is bigger than one frame may be."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path

from tests.cases.conftest import RawClient, StartDevice, StartServer, raw_client, registers

FRAME_LIMIT = 1024 * 1024
"""The link's websocket max_size (MAX_FRAME_BYTES)."""


async def send_all(writer: RawClient, values: Mapping[str, object]) -> None:
    """Send a set for every value, without waiting for any answer."""
    for number, (key, value) in enumerate(values.items(), start=1):
        await writer.send(
            type="set", request_id=number, key=key, value=value, local_revision=1, device_id=7
        )


async def acks(writer: RawClient, count: int) -> int:
    """Wait for ``count`` acks; return the newest revision among them."""
    newest = 0
    for _ in range(count):
        message = await writer.receive_until(lambda m: m["type"] in ("ack", "error"))
        assert message["type"] == "ack", message
        newest = max(newest, message["server_revision"])
    return newest


async def write_all(writer: RawClient, values: Mapping[str, object]) -> int:
    """Write every value in one burst; wait for every ack; return the newest revision."""
    await writer.send(type="hello", device_id=7, since=0)
    await send_all(writer, values)
    return await acks(writer, len(values))


async def test_device_catches_up_on_a_snapshot_of_twelve_thousand_keys(
    start_server: StartServer, start_device: StartDevice, tmp_path: Path
) -> None:
    """A fresh device joins a server whose snapshot would be several MiB in one frame."""
    server = await start_server("--rate-limit", "1000000", "--rate-burst", "1000000")
    values = {f"note/{n:05}": "x" * 150 for n in range(12_000)}
    async with raw_client(server.url) as writer:
        revision = await write_all(writer, values)
    device = await start_device("Late", tmp_path / "late", server.url)
    await device.settled(revision)
    assert (await registers(server.url))[0] == revision


async def test_device_online_through_a_commit_bigger_than_one_frame(
    start_server: StartServer, start_device: StartDevice, tmp_path: Path
) -> None:
    """Thirty near-limit values committed in one transaction reach an online device."""
    server = await start_server(db="burst.sqlite3")
    device = await start_device("Watcher", tmp_path / "watcher", server.url)
    await device.settled(0)
    values = {f"blob/{n}": "y" * 60_000 for n in range(30)}
    assert sum(len(v) for v in values.values()) > FRAME_LIMIT
    # A slow disk: while another process holds the database, the server's queue piles
    # up, and the transaction after the lock holds (nearly) every write at once.
    disk = sqlite3.connect(tmp_path / "burst.sqlite3", isolation_level=None)
    try:
        disk.execute("BEGIN EXCLUSIVE")
        async with raw_client(server.url) as writer:
            await writer.send(type="hello", device_id=7, since=0)
            await send_all(writer, values)
            await writer.send(type="get", request_id="after", key="blob/0")
            await writer.reply_to("after")  # frames are handled in order: all are queued
            disk.execute("COMMIT")
            revision = await acks(writer, len(values))
    finally:
        disk.close()
    await device.settled(revision)
