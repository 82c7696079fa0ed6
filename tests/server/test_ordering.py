"""Concurrency: group commit, push order and last-write-wins between writers."""

from __future__ import annotations

import asyncio
from typing import Any

from syncserver import SyncServer

from .conftest import Client, Clients


async def write_many(
    client: Client, device_id: int, count: int, key: str | None = None
) -> list[int]:
    """Pipeline ``count`` sets and return their revisions in ack order."""
    await client.ensure_hello(device_id)
    for i in range(count):
        await client.send(
            {
                "type": "set",
                "request_id": i,
                "key": key or f"d{device_id}/{i}",
                "value": i,
                "local_revision": i,
                "device_id": device_id,
            }
        )
    acks = [await client.recv_type("ack") for _ in range(count)]
    assert [a["request_id"] for a in acks] == list(range(count))
    return [a["server_revision"] for a in acks]


async def test_fifty_concurrent_writers_get_distinct_consecutive_revisions(
    server: SyncServer, clients: Clients
):
    """50 writers at once: every set is acked, revisions 1..N are each used exactly once."""
    writers = [await clients(server.url) for _ in range(50)]
    results = await asyncio.gather(*(write_many(w, n, 20) for n, w in enumerate(writers)))
    assert sorted(r for revisions in results for r in revisions) == list(range(1, 1001))
    for revisions in results:
        assert revisions == sorted(revisions)


async def test_pushes_arrive_in_revision_order(server: SyncServer, clients: Clients):
    """Under concurrent writers each connection receives every push, in revision order."""
    watchers = [await clients(server.url) for _ in range(3)]
    for number, watcher in enumerate(watchers):
        await watcher.hello(device_id=100 + number)
    writers = [await clients(server.url) for _ in range(5)]
    await asyncio.gather(*(write_many(w, n, 40) for n, w in enumerate(writers)))

    async def revisions_seen(watcher: Client) -> list[int]:
        return [(await watcher.recv_type("push"))["server_revision"] for _ in range(200)]

    for seen in await asyncio.gather(*(revisions_seen(w) for w in watchers)):
        assert seen == list(range(1, 201))


async def test_batched_pushes_arrive_in_revision_order(server: SyncServer, clients: Clients):
    """A batch_pushes client receives every push exactly once, in revision order."""
    watcher = await clients(server.url)
    await watcher.hello(device_id=99, batch_pushes=True)
    writers = [await clients(server.url) for _ in range(5)]
    await asyncio.gather(*(write_many(w, n, 40) for n, w in enumerate(writers)))
    seen: list[int] = []
    while len(seen) < 200:
        seen += [p["server_revision"] for p in (await watcher.recv_type("pushes"))["pushes"]]
    assert seen == list(range(1, 201))


async def test_last_write_wins_between_two_concurrent_writers(server: SyncServer, clients: Clients):
    """Two devices hammering one key converge on the value with the highest revision."""
    a, b = await clients(server.url), await clients(server.url)
    await a.hello(device_id=1)
    await b.hello(device_id=2)
    await asyncio.gather(write_many(a, 1, 50, key="like/x"), write_many(b, 2, 50, key="like/x"))

    async def last_push(client: Client) -> dict[str, Any]:
        pushes = [await client.recv_type("push") for _ in range(100)]
        return max(pushes, key=lambda p: p["server_revision"])

    last_a, last_b = await asyncio.gather(last_push(a), last_push(b))
    assert last_a == last_b
    assert last_a["server_revision"] == 100
    stored = await a.get("like/x")
    assert (stored["value"], stored["server_revision"]) == (last_a["value"], 100)


async def test_the_writer_gets_its_ack_before_its_push(server: SyncServer, clients: Clients):
    """With default settings each write's ack reaches the writer before that write's push."""
    client = await clients(server.url)
    await client.hello(device_id=1)
    for index in range(30):
        await client.set_nowait(f"k{index % 4}", index, request_id=index)
    acked: set[int] = set()
    pushed = 0
    while pushed < 30:
        message = await client.recv()
        if message["type"] == "ack":
            acked.add(message["server_revision"])
        else:
            assert message["type"] == "push", message
            assert message["server_revision"] in acked, "a push came before its ack"
            pushed += 1
