"""Spaces on Redis: two syncserver processes on one Redis keep spaces apart, chain
``prev`` per space across processes, and answer ``hello since`` per space after a
restart."""

from __future__ import annotations

from typing import Any

import redis

from syncserver import serve
from syncserver.backends.redis import RedisBackend
from tests.redis.conftest import Client, Clients, Instances


async def set_in(
    client: Client, space: str, key: str, value: Any, request_id: Any = "r"
) -> dict[str, Any]:
    """A set in ``space``; returns its ack."""
    assert client.device_id is not None, "say hello first"
    await client.send(
        {
            "type": "set", "request_id": request_id, "space": space, "key": key,
            "value": value, "local_revision": 1, "device_id": client.device_id,
        }
    )  # fmt: skip
    return await client.recv_type("ack")


async def pushes_until(client: Client, key: str) -> list[dict[str, Any]]:
    """Every push up to and including the first one for ``key``."""
    received = []
    while True:
        push = await client.recv_type("push")
        received.append(push)
        if push["key"] == key:
            return received


async def test_a_device_never_sees_another_spaces_keys_on_two_processes(
    instances: Instances, clients: Clients
) -> None:
    """Devices in "red" and "blue" on two processes write the same key names: each
    gets pushes and snapshots of its own space only, from either process."""
    one, two = await instances(2)
    red = await clients(one.url)
    blue = await clients(two.url)
    red_too = await clients(two.url)
    await red.hello(device_id=1, space="red")
    await blue.hello(device_id=2, space="blue")
    await red_too.hello(device_id=3, space="red")
    for n in range(5):
        await set_in(red, "red", f"k{n}", f"red {n}", request_id=n)
        await set_in(blue, "blue", f"k{n}", f"blue {n}", request_id=n)
    await set_in(red_too, "red", "end", "red end")
    await set_in(blue, "blue", "end", "blue end")
    for device, space in ((red, "red"), (red_too, "red"), (blue, "blue")):
        seen = await pushes_until(device, "end")
        assert {push["space"] for push in seen} == {space}
        assert [push["value"] for push in seen] == [f"{space} {n}" for n in range(5)] + [
            f"{space} end"
        ]
    for url in (one.url, two.url):
        for space in ("red", "blue"):
            snapshot = await (await clients(url)).hello(device_id=9, space=space)
            assert snapshot["space"] == space
            assert {entry["value"] for entry in snapshot["values"]} == {
                *(f"{space} {n}" for n in range(5)),
                f"{space} end",
            }
        default = await (await clients(url)).hello(device_id=9)
        assert default["values"] == []


async def test_prev_chains_each_space_across_two_processes(
    instances: Instances, clients: Clients
) -> None:
    """Writers on two processes interleave two spaces: a watcher of one space sees
    its revisions skip and each push's prev name the push before it."""
    one, two = await instances(2)
    writer_one = await clients(one.url)
    writer_two = await clients(two.url)
    watcher = await clients(two.url)
    await writer_one.hello(device_id=1, space="a")
    await writer_one.hello(device_id=1, space="b")
    await writer_two.hello(device_id=2, space="a")
    await writer_two.hello(device_id=2, space="b")
    await watcher.hello(device_id=3, space="a")
    for n in range(30):
        writer = writer_one if n % 3 else writer_two
        await set_in(writer, "a" if n % 2 else "b", f"k{n}", n, request_id=n)
    seen = await pushes_until(watcher, "k29")
    assert [push["key"] for push in seen] == [f"k{n}" for n in range(1, 30, 2)]
    revisions = [push["server_revision"] for push in seen]
    assert [push["prev"] for push in seen] == [0, *revisions[:-1]]
    assert revisions == list(range(2, 31, 2))


async def test_hello_since_after_a_restart_answers_per_space(
    redis_url: str, clients: Clients
) -> None:
    """A server started again on the same Redis knows each space's head: hello since
    R in one space gets that space's registers after R only, and since its head
    gets none."""
    async with serve(backend=redis_url) as server:
        client = await clients(server.url)
        await client.hello(device_id=4, space="a")
        await client.hello(device_id=4, space="b")
        for index, (space, key) in enumerate(
            [("a", "x"), ("b", "x"), ("a", "y"), ("b", "y"), ("a", "x"), ("b", "z")], start=1
        ):
            assert (await set_in(client, space, key, index))["server_revision"] == index
    async with serve(backend=redis_url) as server:
        epoch = server.epoch
        backend = server.core.backend
        assert isinstance(backend, RedisBackend)
        assert backend.followed == [], "a process follows no space until joined"
        client = await clients(server.url)
        after = await client.hello(device_id=4, space="a", since=2, epoch=epoch)
        assert [(e["key"], e["value"]) for e in after["values"]] == [("y", 3), ("x", 5)]
        full = await client.hello(device_id=4, space="b", epoch=epoch)
        assert [(e["key"], e["value"]) for e in full["values"]] == [
            ("x", 2),
            ("y", 4),
            ("z", 6),
        ]
        assert (server.core.backend.head("a"), server.core.backend.head("b")) == (5, 6)
        up_to_date = await client.hello(device_id=4, space="a", since=5, epoch=epoch)
        assert up_to_date["values"] == []
        ack = await set_in(client, "a", "w", 7)
        assert ack["server_revision"] == 7
        push = await client.recv_type("push")
        while push["key"] != "w":
            push = await client.recv_type("push")
        assert (push["space"], push["prev"]) == ("a", 5)


async def test_data_from_before_spaces_is_served_as_the_default_space(
    redis_url: str, clients: Clients
) -> None:
    """Redis data an older optisync wrote (no heads, entries without space or prev)
    is the default space: served by snapshot, and the next write's prev is its head."""
    old = redis.Redis.from_url(redis_url)
    try:
        for revision, key in enumerate(["like/tea", "like/jam"], start=1):
            entry = f'["{key}",true,{revision},5,1,{revision}]'
            old.hset("optisync:registers", key, f"{revision} {entry}")
            old.xadd("optisync:log", {"w": entry}, id=f"{revision}-0")
        old.set("optisync:revision", 2)
        async with serve(backend=redis_url) as server:
            client = await clients(server.url)
            snapshot = await client.hello(device_id=5)
            assert [(e["key"], e["server_revision"]) for e in snapshot["values"]] == [
                ("like/tea", 1),
                ("like/jam", 2),
            ]
            assert (await client.hello(device_id=5, space="other"))["values"] == []
            await set_in(client, "default", "like/fig", False)
            push = await client.recv_type("push")
            assert (push["space"], push["server_revision"], push["prev"]) == ("default", 3, 2)
        assert old.hgetall("optisync:heads") == {b"default": b"3"}
    finally:
        old.close()
