"""Every message of the protocol against a real in-process server."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from syncserver import SyncServer, serve

from .conftest import Clients


async def test_hello_on_empty_server_gets_empty_snapshot(server: SyncServer, clients: Clients):
    """hello on a fresh server answers revision 0 and no values."""
    client = await clients(server.url)
    snapshot = await client.hello()
    assert isinstance(snapshot.pop("epoch"), str)
    assert snapshot == {
        "type": "snapshot",
        "revision": 0,
        "values": [],
        "protocol": 1,
        "since": 0,
        "more": False,
        "space": "default",
    }


async def test_set_is_acked_with_first_revision_1(server: SyncServer, clients: Clients):
    """The first accepted set gets server_revision 1 and an ack echoing key and value."""
    client = await clients(server.url)
    ack = await client.set("like/1", True, request_id="req-1")
    assert ack == {
        "type": "ack",
        "request_id": "req-1",
        "key": "like/1",
        "value": True,
        "server_revision": 1,
        "space": "default",
    }


async def test_push_reaches_every_client_including_sender(server: SyncServer, clients: Clients):
    """A set is pushed, with exactly the pinned fields, to the writer and every other client."""
    writer, other = await clients(server.url), await clients(server.url)
    await writer.hello(device_id=7)
    await other.hello(device_id=8)
    await writer.send(
        {
            "type": "set",
            "request_id": 3,
            "key": "k",
            "value": {"a": [1, None]},
            "local_revision": 4,
            "device_id": 7,
        }
    )
    expected = {
        "type": "push",
        "key": "k",
        "value": {"a": [1, None]},
        "server_revision": 1,
        "local_revision": 4,
        "device_id": 7,
        "space": "default",
        "prev": 0,
    }
    assert await writer.recv_type("push") == expected
    assert await other.recv_type("push") == expected


async def test_get_of_unknown_key_is_null_at_revision_0(server: SyncServer, clients: Clients):
    """A key never written reads as value null, server_revision 0."""
    client = await clients(server.url)
    assert await client.get("nope", request_id=9) == {
        "type": "value",
        "request_id": 9,
        "key": "nope",
        "value": None,
        "server_revision": 0,
        "space": "default",
    }


async def test_get_returns_last_written_value(server: SyncServer, clients: Clients):
    """get answers the newest value of a key and the revision that wrote it."""
    client = await clients(server.url)
    await client.set("k", "old")
    await client.set("other", 1)
    await client.set("k", "new")
    reply = await client.get("k")
    assert (reply["value"], reply["server_revision"]) == ("new", 3)


async def test_revisions_are_global_and_strictly_increasing(server: SyncServer, clients: Clients):
    """One counter for all keys: every set gets the previous revision plus one."""
    client = await clients(server.url)
    revisions = [(await client.set(f"k{i % 3}", i))["server_revision"] for i in range(10)]
    assert revisions == list(range(1, 11))


async def test_snapshot_since_holds_only_newer_writes(server: SyncServer, clients: Clients):
    """hello with since=N returns each key written after N, at its newest value and writer."""
    client, other = await clients(server.url), await clients(server.url)
    await client.set("a", 1)
    await client.set("b", 2)
    await other.set("a", 3, local_revision=2, device_id=7)
    await client.set("c", 4)
    snapshot = await client.hello(since=2)
    assert snapshot["revision"] == 4
    assert sorted(snapshot["values"], key=lambda v: v["key"]) == [
        {"key": "a", "value": 3, "server_revision": 3, "local_revision": 2, "device_id": 7},
        {"key": "c", "value": 4, "server_revision": 4, "local_revision": 1, "device_id": 1},
    ]
    full = await client.hello(since=0)
    assert {v["key"]: v["server_revision"] for v in full["values"]} == {"a": 3, "b": 2, "c": 4}


async def test_catch_up_after_reconnect(server: SyncServer, clients: Clients):
    """A device that was away gets what it missed by saying hello with its last revision."""
    away = await clients(server.url)
    seen = (await away.hello(device_id=1))["revision"]
    await away.ws.close()
    writer = await clients(server.url)
    await writer.set("like/a", True, device_id=2)
    await writer.set("like/b", False, device_id=2)
    back = await clients(server.url)
    snapshot = await back.hello(device_id=1, since=seen)
    assert snapshot["revision"] == 2
    assert {v["key"]: v["value"] for v in snapshot["values"]} == {"like/a": True, "like/b": False}


async def test_hello_again_resyncs(server: SyncServer, clients: Clients):
    """A second hello on the same connection answers a fresh snapshot."""
    client = await clients(server.url)
    await client.hello()
    await client.set("k", 1)
    snapshot = await client.hello(since=0)
    assert snapshot["values"] == [
        {"key": "k", "value": 1, "server_revision": 1, "local_revision": 1, "device_id": 1}
    ]


async def test_batched_pushes_arrive_in_one_frame(server: SyncServer, clients: Clients):
    """A client that opts in with batch_pushes gets a pushes frame holding the push."""
    batched = await clients(server.url)
    await batched.hello(device_id=2, batch_pushes=True)
    writer = await clients(server.url)
    await writer.set("k", "v", local_revision=5, device_id=1)
    frame = await batched.recv_type("pushes")
    assert frame["pushes"] == [
        {
            "type": "push",
            "key": "k",
            "value": "v",
            "server_revision": 1,
            "local_revision": 5,
            "device_id": 1,
            "space": "default",
            "prev": 0,
        }
    ]


async def test_revisions_continue_after_restart_on_same_port(db_path: Path, clients: Clients):
    """A server restarted on the same port and database keeps values and the counter."""
    async with serve(db_path=db_path) as first:
        port = first.port
        client = await clients(first.url)
        await client.set("k", "kept")
    async with serve(port=port, db_path=db_path) as second:
        assert second.port == port
        client = await clients(second.url)
        assert (await client.get("k"))["value"] == "kept"
        assert (await client.set("j", 1))["server_revision"] == 2


async def test_start_and_close_without_async_with(db_path: Path, clients: Clients):
    """SyncServer.start / close work for code that cannot use async with."""
    running = await SyncServer.start(db_path=db_path)
    try:
        client = await clients(running.url)
        assert (await client.set("k", 1))["server_revision"] == 1
    finally:
        await running.close()
    await running.close()  # closing twice is harmless


async def test_snapshot_entries_name_their_writer_after_a_restart(db_path: Path, clients: Clients):
    """Writer device and local revision are stored, so catch-up after a restart still
    lets a device recognise its own older writes."""
    async with serve(db_path=db_path) as first:
        await (await clients(first.url)).set("k", True, local_revision=5, device_id=99)
    async with serve(db_path=db_path) as second:
        snapshot = await (await clients(second.url)).hello()
    assert snapshot["values"] == [
        {"key": "k", "value": True, "server_revision": 1, "local_revision": 5, "device_id": 99}
    ]


async def test_database_without_writer_columns_is_upgraded_in_place(
    db_path: Path, clients: Clients
):
    """A database from before snapshots named writers opens, keeps its values, and
    reports their writer as unknown (0)."""
    legacy = sqlite3.connect(db_path)
    legacy.execute(
        "CREATE TABLE registers (key TEXT PRIMARY KEY, value TEXT NOT NULL,"
        " revision INTEGER NOT NULL)"
    )
    legacy.execute("INSERT INTO registers VALUES ('old', '\"kept\"', 7)")
    legacy.commit()
    legacy.close()
    async with serve(db_path=db_path) as server:
        client = await clients(server.url)
        snapshot = await client.hello()
        assert (await client.set("new", 1))["server_revision"] == 8
    assert snapshot["values"] == [
        {"key": "old", "value": "kept", "server_revision": 7, "local_revision": 0, "device_id": 0}
    ]
