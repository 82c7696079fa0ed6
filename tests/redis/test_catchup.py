"""Catch-up by change on Redis: hello since R reads the writes after R, across restarts."""

from __future__ import annotations

from syncserver import serve
from tests.redis.conftest import Clients


async def test_hello_since_reads_only_later_writes_after_a_restart(
    redis_url: str, clients: Clients
) -> None:
    """A server started again on the same Redis answers hello since R with exactly
    the registers written after R, newest revision each, oldest first; an
    up-to-date hello gets nothing and a full one every register once."""
    async with serve(backend=redis_url) as server:
        client = await clients(server.url)
        await client.hello(device_id=4)
        for index, key in enumerate(["a", "b", "c", "d", "b", "e", "a"]):
            await client.set(key, index, request_id=index)
    async with serve(backend=redis_url) as server:
        assert server.revision == 7
        assert server.state().values_total == 5
        client = await clients(server.url)
        snapshot = await client.hello(device_id=4, since=3, epoch=server.epoch)
        assert [(e["key"], e["server_revision"]) for e in snapshot["values"]] == [
            ("d", 4),
            ("b", 5),
            ("e", 6),
            ("a", 7),
        ]
        assert (await client.hello(device_id=4, since=7, epoch=server.epoch))["values"] == []
        full = await client.hello(device_id=4)
        assert [(e["key"], e["value"]) for e in full["values"]] == [
            ("c", 2),
            ("d", 3),
            ("b", 4),
            ("e", 5),
            ("a", 6),
        ]
