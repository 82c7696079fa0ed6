"""Every database has an epoch; a hello from another epoch gets a full snapshot."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from syncserver import SyncServer, serve
from syncserver.backends.memory import MemoryBackend
from tests.timeouts import TIMEOUT

from .conftest import Clients


async def test_every_snapshot_names_the_database_epoch(server: SyncServer, clients: Clients):
    """The snapshot's epoch is 32 hex digits and the same for every hello."""
    first = await clients(server.url)
    epoch = (await first.hello())["epoch"]
    assert len(epoch) == 32
    int(epoch, 16)
    assert epoch == server.epoch
    second = await clients(server.url)
    assert (await second.hello(device_id=2, since=5))["epoch"] == epoch


async def test_the_epoch_survives_a_restart_and_differs_per_database(
    db_path: Path, tmp_path: Path, clients: Clients
):
    """The SQLite file keeps its epoch (meta table); another file has another one."""
    async with serve(db_path=db_path) as first:
        epoch = (await (await clients(first.url)).hello())["epoch"]
    async with serve(db_path=db_path) as again:
        assert (await (await clients(again.url)).hello())["epoch"] == epoch
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT value FROM meta WHERE name = 'epoch'").fetchone() == (epoch,)
    async with serve(db_path=tmp_path / "other.sqlite3") as other:
        assert (await (await clients(other.url)).hello())["epoch"] != epoch


async def test_hello_with_another_epoch_gets_everything(server: SyncServer, clients: Clients):
    """since counts in another database: answered as since 0, saying since 0."""
    client = await clients(server.url)
    for index in range(3):
        await client.set(f"like/{index}", True, request_id=index)
    stale = await clients(server.url)
    snapshot = await stale.hello(device_id=2, since=3, epoch="0" * 32)
    assert snapshot["since"] == 0
    assert sorted(v["key"] for v in snapshot["values"]) == ["like/0", "like/1", "like/2"]


async def test_hello_with_the_same_epoch_gets_only_what_is_newer(
    server: SyncServer, clients: Clients
):
    """With the server's epoch, since is honoured."""
    client = await clients(server.url)
    for index in range(3):
        await client.set(f"like/{index}", True, request_id=index)
    back = await clients(server.url)
    snapshot = await back.hello(device_id=2, since=2, epoch=server.epoch)
    assert snapshot["since"] == 2
    assert [v["key"] for v in snapshot["values"]] == ["like/2"]


async def test_a_database_reset_closes_connections_and_brings_a_new_epoch(clients: Clients):
    """MemoryBackend.reset_history: devices are closed with 1012 and meet a new, empty epoch."""
    async with serve(backend="memory") as server:
        backend = server.core.backend
        assert isinstance(backend, MemoryBackend)
        client = await clients(server.url)
        old = (await client.hello())["epoch"]
        await client.set("like/1", True)
        backend.reset_history()

        async def read_to_the_end() -> None:
            while True:
                await client.ws.recv()

        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(read_to_the_end(), TIMEOUT)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1012
        fresh = await clients(server.url)
        snapshot = await fresh.hello(since=1, epoch=old)
        assert snapshot["epoch"] != old
        assert (snapshot["revision"], snapshot["values"], snapshot["since"]) == (0, [], 0)
