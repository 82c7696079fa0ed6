"""A hello binds a connection to its device; nothing is served or pushed before it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from syncserver import SyncServer, serve

from .conftest import Clients

SET = {"type": "set", "request_id": "r", "key": "k", "value": 1, "local_revision": 1}


async def test_set_before_hello_is_hello_required(server: SyncServer, clients: Clients):
    """A set before any hello is refused with hello_required and writes nothing."""
    client = await clients(server.url)
    await client.send({**SET, "device_id": 1})
    error = await client.recv_type("error")
    assert (error["code"], error["request_id"]) == ("hello_required", "r")
    assert server.revision == 0


async def test_get_before_hello_is_hello_required(server: SyncServer, clients: Clients):
    """A get before any hello is refused with hello_required."""
    client = await clients(server.url)
    await client.send({"type": "get", "request_id": 9, "key": "k"})
    error = await client.recv_type("error")
    assert (error["code"], error["request_id"]) == ("hello_required", 9)


async def no_push_before_hello(url: str, clients: Clients, **hello: Any) -> None:
    silent = await clients(url)
    writer = await clients(url)
    await writer.hello(device_id=2, **hello)
    await writer.set("k", 1, device_id=2)
    await writer.recv_type("push")  # the write has been fanned out by now
    await silent.send({"type": "hello", "device_id": 1, "since": 1, **hello})
    # Frames on a connection keep their order: a push sent before the hello
    # would arrive before the snapshot.
    assert (await silent.recv())["type"] == "snapshot"


async def test_no_pushes_before_hello(server: SyncServer, clients: Clients):
    """A connection that has not said hello is not pushed to, even without a token."""
    await no_push_before_hello(server.url, clients)


async def test_no_pushes_before_hello_on_a_token_server(db_path: Path, clients: Clients):
    """The same on a server with a token."""
    async with serve(db_path=db_path, token="t") as guarded:
        await no_push_before_hello(guarded.url, clients, token="t")


async def test_set_naming_another_device_is_device_mismatch(server: SyncServer, clients: Clients):
    """A set whose device_id is not the hello's is refused and writes nothing."""
    client = await clients(server.url)
    await client.hello(device_id=1)
    await client.send({**SET, "device_id": 2})
    error = await client.recv_type("error")
    assert (error["code"], error["request_id"]) == ("device_mismatch", "r")
    assert server.revision == 0


async def test_set_without_device_id_writes_as_the_hello_device(
    server: SyncServer, clients: Clients
):
    """set.device_id may be left out: the write is the hello's device's."""
    client = await clients(server.url)
    await client.hello(device_id=7)
    await client.send(SET)
    assert (await client.recv_type("ack"))["server_revision"] == 1
    assert (await client.recv_type("push"))["device_id"] == 7


async def test_second_hello_as_another_device_is_device_mismatch(
    server: SyncServer, clients: Clients
):
    """A second hello with another device_id is refused and changes nothing."""
    client = await clients(server.url)
    await client.hello(device_id=1)
    await client.send({"type": "hello", "device_id": 2, "batch_pushes": True})
    error = await client.recv_type("error")
    assert (error["code"], error["request_id"]) == ("device_mismatch", None)
    await client.send({**SET, "device_id": 1})
    await client.recv_type("ack")
    push = await client.recv()
    assert (push["type"], push["device_id"]) == ("push", 1)  # still plain pushes, device 1


async def test_second_hello_may_switch_to_batched_pushes(server: SyncServer, clients: Clients):
    """A second hello from the same device resyncs and may change batch_pushes."""
    client = await clients(server.url)
    await client.hello(device_id=1)
    snapshot = await client.hello(device_id=1, batch_pushes=True)
    assert snapshot["revision"] == 0
    await client.set("k", 1)
    assert [p["key"] for p in (await client.recv_type("pushes"))["pushes"]] == ["k"]


async def test_snapshot_says_which_protocol_the_connection_speaks(
    server: SyncServer, clients: Clients
):
    """A client speaking a newer protocol gets the server's version; unknown fields pass."""
    client = await clients(server.url)
    snapshot = await client.hello(protocol=7, capabilities=["later"])
    assert snapshot["protocol"] == 1


async def test_demo_controls_need_the_token_on_a_server_with_one(db_path: Path, clients: Clients):
    """On a token server, chaos and observe before a hello close 1008 and change nothing."""
    async with serve(db_path=db_path, token="t", allow_chaos=True) as guarded:
        for message in (
            {"type": "chaos", "request_id": 1, "push_enabled": False},
            {"type": "observe", "request_id": 2},
        ):
            early = await clients(guarded.url)
            await early.send(message)
            with pytest.raises(ConnectionClosed) as closed:
                await early.recv()
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1008
        assert guarded.chaos.settings.push_enabled
        client = await clients(guarded.url)
        await client.hello(token="t")
        await client.send({"type": "chaos", "request_id": 3, "push_enabled": False})
        assert (await client.recv_type("chaos_state"))["settings"]["push_enabled"] is False
