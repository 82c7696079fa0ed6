"""Several syncserver processes on one Redis behave as one server."""

from __future__ import annotations

from typing import Any

from syncserver import serve
from tests.redis.conftest import Client, Clients, Instances


async def pushes(client: Client, count: int) -> list[dict[str, Any]]:
    """The next ``count`` pushes this client receives (other messages are kept)."""
    return [await client.recv_type("push") for _ in range(count)]


async def test_writes_on_one_instance_reach_devices_on_every_instance(
    instances: Instances, clients: Clients
) -> None:
    """A set on one instance is acked there and pushed to devices on all three."""
    a, b, c = await instances(3)
    writer, *others = [await clients(i.url) for i in (a, b, c)]
    for n, client in enumerate((writer, *others)):
        assert (await client.hello(device_id=n + 1))["revision"] == 0
    ack = await writer.set("like/tea", True, request_id="t", local_revision=3, device_id=1)
    assert ack == {
        "type": "ack", "request_id": "t", "space": "default", "key": "like/tea", "value": True,
        "server_revision": 1,
    }  # fmt: skip
    expected = {
        "type": "push", "space": "default", "key": "like/tea", "value": True,
        "server_revision": 1, "local_revision": 3, "device_id": 1, "prev": 0,
    }  # fmt: skip
    for client in (writer, *others):
        assert await client.recv_type("push") == expected


async def test_devices_on_different_instances_converge(
    instances: Instances, clients: Clients
) -> None:
    """Concurrent writers on three instances: every instance ends with the same registers."""
    started = await instances(3)
    writers = [await clients(i.url) for i in started]
    for n, writer in enumerate(writers):
        await writer.hello(device_id=n + 1)
    rounds = 40
    for seq in range(rounds):
        for n, writer in enumerate(writers):
            await writer.set_nowait(f"k{seq % 7}", [n, seq], request_id=seq, device_id=n + 1)
    for writer in writers:
        for _ in range(rounds):
            await writer.recv_type("ack")
        await pushes(writer, rounds * len(writers))
    snapshots = []
    for instance in started:
        reader = await clients(instance.url)
        snapshots.append(await reader.hello(device_id=99))
    assert snapshots[0]["revision"] == rounds * len(writers)
    assert snapshots[1:] == snapshots[:1] * (len(snapshots) - 1)
    reads = [await (await clients(i.url)).get("k3") for i in started]
    assert reads[1:] == reads[:1] * (len(reads) - 1)
    assert reads[0]["server_revision"] > 0


async def test_pushes_arrive_in_revision_order_at_every_device(
    instances: Instances, clients: Clients
) -> None:
    """Three writers on three instances; six devices each see revisions 1..N, in order."""
    started = await instances(3)
    devices = [await clients(i.url) for i in started for _ in range(2)]
    for n, device in enumerate(devices):
        await device.hello(device_id=n + 1)
    writers = devices[::2]
    per_writer = 150
    for seq in range(per_writer):
        for writer in writers:
            await writer.set_nowait(f"like/item-{seq % 20}", seq % 2 == 0, seq, seq + 1)
    total = per_writer * len(writers)
    for device in devices:
        revisions = [push["server_revision"] for push in await pushes(device, total)]
        assert revisions == list(range(1, total + 1))
    for n, writer in enumerate(writers):
        acked = [(await writer.recv_type("ack"))["request_id"] for _ in range(per_writer)]
        assert acked == list(range(per_writer)), f"writer {n} acked out of order"


async def test_hello_since_on_another_instance_returns_only_newer_writes(
    instances: Instances, clients: Clients
) -> None:
    """Catch-up on instance B covers the writes made through instance A after ``since``."""
    a, b = await instances(2)
    writer = await clients(a.url)
    watcher = await clients(b.url)
    await writer.hello()
    await watcher.hello(device_id=2)
    for n in range(5):
        await writer.set(f"key-{n}", n, request_id=n)
    await pushes(watcher, 5)  # instance B has applied revision 5
    late = await clients(b.url)
    snapshot = await late.hello(device_id=3, since=2)
    assert snapshot["revision"] == 5
    assert [(v["key"], v["value"], v["server_revision"]) for v in snapshot["values"]] == [
        ("key-2", 2, 3),
        ("key-3", 3, 4),
        ("key-4", 4, 5),
    ]


async def test_a_new_instance_starts_with_every_register(
    instances: Instances, clients: Clients
) -> None:
    """An instance started after writes serves them, and the counter continues."""
    (first,) = await instances(1)
    writer = await clients(first.url)
    await writer.hello()
    await writer.set("like/fig", True)
    await writer.set("like/jam", False)
    (second,) = await instances(1)
    reader = await clients(second.url)
    snapshot = await reader.hello(device_id=2)
    assert snapshot["revision"] == 2
    assert {v["key"]: v["value"] for v in snapshot["values"]} == {
        "like/fig": True,
        "like/jam": False,
    }
    assert (await reader.set("like/fig", False, device_id=2))["server_revision"] == 3


async def test_bad_input_gets_the_same_errors_on_the_redis_backend(
    instances: Instances, clients: Clients
) -> None:
    """Not JSON, a too large value, an empty key: error replies, nothing written."""
    a, b = await instances(2)
    client = await clients(a.url)
    await client.hello()
    await client.send("{not json")
    assert (await client.recv_type("error"))["code"] == "bad_request"
    await client.set_nowait("big", "x" * (64 * 1024 + 1), request_id="big")
    error = await client.recv_type("error")
    assert (error["code"], error["request_id"]) == ("too_large", "big")
    await client.set_nowait("", 1, request_id="empty")
    error = await client.recv_type("error")
    assert (error["code"], error["request_id"]) == ("bad_request", "empty")
    await client.send(b"\x00binary")
    assert (await client.recv_type("error"))["code"] == "bad_request"
    # Still serving, and nothing reached Redis: the next write is revision 1 everywhere.
    assert (await client.set("ok", 1))["server_revision"] == 1
    other = await clients(b.url)
    await other.hello(device_id=2)
    assert (await other.get("big"))["value"] is None


async def test_serve_runs_in_process_on_the_redis_backend(redis_url: str, clients: Clients) -> None:
    """``serve(backend=redis://...)`` reports the backend and serves like the subprocess."""
    async with serve(backend=redis_url) as server:
        assert server.backend.startswith("redis redis://127.0.0.1:")
        client = await clients(server.url)
        await client.hello()
        ack = await client.set("k", {"v": 1})
        assert ack["server_revision"] == 1
        assert server.revision == 1
        assert (await client.recv_type("push"))["server_revision"] == 1
